"""Cross-encoders on the command line: export-model --cross-encoder, search --rerank."""

from __future__ import annotations

import json

import pytest

from embedrt import CrossEncoder, Encoder, semantic_search
from embedrt.cli import export_model_main, main

CORPUS = [
    "Albert Einstein published the theory of relativity.",
    "A man is playing a guitar on stage.",
    "The cat sat on the mat.",
    "Pizza is a dish from Italy.",
    "who wrote the theory of relativity?",
    "the model reads every token",
    "café naïve 日本語",
    "hello world",
]


def test_export_model_cross_encoder_flag(cross_factory, tmp_path, capsys):
    model_dir, _ = cross_factory(export=False, arch="roberta", num_labels=3)
    assert export_model_main([str(model_dir), "-o", str(tmp_path / "out"), "--cross-encoder"]) == 0
    out = capsys.readouterr().out
    for step in ("resolve", "load", "trace", "verify", "write"):
        assert f"] {step}" in out
    assert "exported cross-encoder" in out and "3 label(s), identity" in out
    assert CrossEncoder(tmp_path / "out", device="cpu").num_labels == 3


def test_export_model_task_embedding_on_a_cross_encoder_fails_typed(cross_factory, tmp_path, capsys):
    model_dir, _ = cross_factory(export=False, arch="bert", num_labels=1)
    assert export_model_main([str(model_dir), "-o", str(tmp_path / "out"), "--task", "embedding", "-q"]) == 2
    assert "UnsupportedModelError" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture()
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    return path


def test_search_rerank(tiny_bert, tiny_cross, corpus_file, tmp_path, capsys):
    _, bi_dir = tiny_bert
    _, cross_dir = tiny_cross
    js = tmp_path / "hits.json"
    query = "who wrote relativity?"
    assert (
        main(
            [
                "search",
                str(bi_dir),
                "--corpus",
                str(corpus_file),
                "--query",
                query,
                "--top-k",
                "3",
                "--rerank",
                str(cross_dir),
                "--rerank-top-k",
                "5",
                "--json",
                str(js),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    hits = json.loads(js.read_text())[0]["hits"]
    # the same pipeline by hand: retrieve 5 with the bi-encoder, rank them with the cross-encoder, keep 3
    enc, ce = Encoder(bi_dir, device="cpu"), CrossEncoder(cross_dir, device="cpu")
    retrieved = semantic_search(enc.encode([query]), enc.encode(CORPUS), top_k=5)[0]
    ranked = ce.rank(query, [CORPUS[h["corpus_id"]] for h in retrieved], top_k=3)
    assert [h["corpus_id"] for h in hits] == [retrieved[r["corpus_id"]]["corpus_id"] for r in ranked]
    assert [h["score"] for h in hits] == pytest.approx([r["score"] for r in ranked], abs=1e-6)
    assert [h["retrieval_rank"] for h in hits] == [r["corpus_id"] for r in ranked]
    assert all(h["text"] == CORPUS[h["corpus_id"]] for h in hits)
    out = capsys.readouterr()
    assert "(retrieval " in out.out and "reranked 5 pairs" in out.err


def test_search_rerank_errors(tiny_bert, corpus_file, tmp_path, capsys):
    _, bi_dir = tiny_bert
    assert (
        main(["search", str(bi_dir), "--corpus", str(corpus_file), "--query", "q", "--rerank", str(bi_dir)])
        == 2
    )
    assert "not a cross-encoder" in capsys.readouterr().err
    assert (
        main(
            [
                "search",
                str(bi_dir),
                "--corpus",
                str(corpus_file),
                "--query",
                "q",
                "--rerank",
                str(tmp_path / "missing"),
            ]
        )
        == 2
    )
    assert "ArtifactError" in capsys.readouterr().err


def test_help_documents_the_new_flags(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = capsys.readouterr().out
    assert "--rerank CROSS_EXPORT_DIR" in text and "--rerank-top-k" in text
    with pytest.raises(SystemExit):
        export_model_main(["--help"])
    text = capsys.readouterr().out
    assert "--cross-encoder" in text and "--task {auto,embedding,cross-encoder,sparse,multi-vector}" in text
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "--pairs-from FILE" in capsys.readouterr().out


def test_retrieve_rerank_example(tiny_bert, tiny_cross, corpus_file):
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "retrieve_rerank.py"
    out = subprocess.run(
        [
            sys.executable,
            str(example),
            str(tiny_bert[1]),
            str(tiny_cross[1]),
            "--corpus",
            str(corpus_file),
            "--query",
            "who wrote relativity?",
            "--retrieve-k",
            "4",
            "--top-k",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert f"{len(CORPUS)} documents, 1 queries" in out.stdout
    assert out.stdout.count("(bi-encoder ") == 2
