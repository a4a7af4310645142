"""`embedrt bench` on a tiny multi-vector export: schema, texts/s ratios from measured runs, agreement on
every token vector."""

from __future__ import annotations

import string

import pytest

from helpers import assert_texts_bench_against_st_torch, run_bench_cli


@pytest.fixture(scope="module")
def multi_export(tmp_path_factory):
    from embedrt import export_model
    from tiny_models import build_tiny_multivector

    base = tmp_path_factory.mktemp("bench-multi")
    st_dir = build_tiny_multivector(
        base / "st",
        skiplist_words=list(string.punctuation),
        document_length=16,
        query_expansion={"strategy": "fixed", "length": 12},
    )
    export_model(str(st_dir), base / "export")
    corpus = base / "corpus.txt"
    corpus.write_text(
        "hello world\na man is playing a guitar.\n\ncafé naïve 日本語\n" + "the theory " * 30 + "\nwho?\n",
        encoding="utf-8",
    )
    return base / "export", corpus


@pytest.mark.slow  # NOTE: two repetitions with the sentence-transformers PyTorch peer, each in a process
def test_multivector_bench_schema_ratios_and_agreement(multi_export, tmp_path):
    export_dir, corpus = multi_export
    report, md = run_bench_cli(export_dir, "--corpus", corpus, tmp_path, "--peers", "st-torch,fastembed")
    assert report["schema"] == "embedrt-bench-multi-vector/1"
    assert report["config"]["task"] == "multi-vector" and report["config"]["dim"] == 16
    assert report["config"]["n_texts"] == 5  # the blank line left out
    # the long text counts as a document: cut at the document length (16), not max_seq_length (24)
    assert report["config"]["real_tokens"] <= 5 * 16
    assert_texts_bench_against_st_torch(report, n_texts=5)
    s = report["summary"]
    # the same token vectors (same count per text: the skiplist applied alike), to 1e-5
    assert s["embedrt-fp32"]["agreement"]["max_abs_diff"] <= 1e-5
    assert s["st-torch"]["agreement"]["max_abs_diff"] == 0.0
    assert "roofline" not in report and "gflops" not in s["embedrt-fp32"]
    assert {x["runner"]: x["reason"] for x in report["skipped"]}["fastembed"].startswith(
        "no multi-vector runner"
    )
    assert "Multi-vector encoder" in md and "| embedrt-fp32 |" in md and "vs st-torch" in md
