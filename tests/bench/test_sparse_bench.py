"""`embedrt bench` on a tiny sparse export: schema, texts/s ratios from measured runs, agreement."""

from __future__ import annotations

import json

import pytest

from embedrt.cli import main


@pytest.fixture(scope="module")
def sparse_export(tmp_path_factory):
    from embedrt import export_model
    from tiny_models import build_tiny_sparse

    base = tmp_path_factory.mktemp("bench-sparse")
    st_dir = build_tiny_sparse(base / "st", arch="bert")
    export_model(str(st_dir), base / "export")
    corpus = base / "corpus.txt"
    corpus.write_text(
        "\n".join(
            [
                "hello world",
                "a man is playing a guitar",
                "",
                "café naïve 日本語",
                "the theory " * 30,
                "who wrote the theory of relativity?",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return base / "export", corpus


@pytest.mark.slow
def test_sparse_bench_schema_ratios_and_agreement(sparse_export, tmp_path):
    export_dir, corpus = sparse_export
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    assert (
        main(
            [
                "bench",
                str(export_dir),
                "--corpus",
                str(corpus),
                "--batch-sizes",
                "1,4",
                "--headline-batch-size",
                "4",
                "--repeats",
                "2",
                "--latency-calls",
                "3",
                "--peers",
                "st-torch,fastembed",
                "--workdir",
                str(tmp_path / "work"),
                "--json",
                str(out),
                "--markdown",
                str(md),
                "-q",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["schema"] == "embedrt-bench-sparse/1" and report["config"]["n_texts"] == 5
    s = report["summary"]
    assert set(s) == {"embedrt-fp32", "st-torch"}
    assert s["embedrt-fp32"]["runs_ok"] == s["st-torch"]["runs_ok"] == 2
    ratio = report["ratios"]["embedrt-fp32"]["st-torch"]
    assert len(ratio["per_repetition"]) == 2 and ratio["throughput"] > 0
    ag = s["embedrt-fp32"]["agreement"]
    assert ag["max_abs_diff"] <= 1e-5 and ag["active_dims_differing"] == 0 and ag["mean_active_dims"] > 0
    assert {x["runner"] for x in report["skipped"]} == {"fastembed"}
    text = md.read_text()
    assert "| embedrt-fp32 |" in text and "vs st-torch" in text
    assert (
        main(
            [
                "bench",
                str(export_dir),
                "--corpus",
                str(corpus),
                "--plot",
                str(tmp_path / "p.png"),
                "--peers",
                "",
                "--repeats",
                "1",
                "--latency-calls",
                "1",
                "--batch-sizes",
                "1",
                "-q",
            ]
        )
        == 2
    )
