"""The CLI end to end on a tiny export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedrt import Encoder
from embedrt.cli import export_model_main, main


def test_encode_streams_to_npy_in_chunks(tiny_bert, tmp_path, capsys):
    _, export_dir = tiny_bert
    texts = [f"line {i} about the model" for i in range(23)] + ["", "last"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "emb.npy"
    assert (
        main(
            [
                "encode",
                str(export_dir),
                "--input",
                str(src),
                "--output",
                str(out),
                "--chunk-size",
                "4",
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    got = np.load(out)
    np.testing.assert_allclose(got, Encoder(export_dir, device="cpu").encode(texts), atol=1e-6)
    assert not list(tmp_path.glob("*.partial*"))


def test_search_prints_hits_and_json(tiny_bert, tmp_path, capsys):
    _, export_dir = tiny_bert
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the model\nhello world\na guitar on stage\n", encoding="utf-8")
    js = tmp_path / "hits.json"
    assert (
        main(
            [
                "search",
                str(export_dir),
                "--corpus",
                str(corpus),
                "--query",
                "hello world",
                "--top-k",
                "2",
                "--json",
                str(js),
            ]
        )
        == 0
    )
    hits = json.loads(js.read_text())
    assert hits[0]["hits"][0]["text"] == "hello world" and len(hits[0]["hits"]) == 2
    assert "Query: hello world" in capsys.readouterr().out


def test_errors_exit_2_with_typed_message(tmp_path, capsys):
    assert main(["encode", str(tmp_path / "missing"), "--input", "x", "--output", "y"]) == 2
    assert "ArtifactError" in capsys.readouterr().err
    assert export_model_main([str(tmp_path / "nope"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "ModelNotFoundError" in err and "Tried" in err
    assert not (tmp_path / "out").exists()


def test_export_model_cli(tiny_factory, tmp_path, capsys):
    st_dir, _ = tiny_factory(export=False, arch="distilbert")
    assert export_model_main([str(st_dir), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    for step in ("resolve", "load", "trace", "verify", "write"):
        assert f"] {step}" in out
    assert "max abs diff" in out and (tmp_path / "out" / "model.onnx").is_file()


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        export_model_main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--output", "--force", "--atol", "--opset", "--quiet"):
        assert flag in text
