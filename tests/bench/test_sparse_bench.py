"""`embedrt bench` on a tiny sparse export: schema, texts/s ratios from measured runs, agreement."""

from __future__ import annotations

import pytest

from embedrt.cli import main
from helpers import assert_texts_bench_against_st_torch, run_bench_cli


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


@pytest.mark.slow  # NOTE: two repetitions with the sentence-transformers PyTorch peer, each in a process
def test_sparse_bench_schema_ratios_and_agreement(sparse_export, tmp_path):
    export_dir, corpus = sparse_export
    report, md = run_bench_cli(export_dir, "--corpus", corpus, tmp_path, "--peers", "st-torch,fastembed")
    assert report["schema"] == "embedrt-bench-sparse/1" and report["config"]["task"] == "sparse"
    assert report["config"]["n_texts"] == 5 and report["config"]["vocab"] > 0  # the blank line left out
    assert_texts_bench_against_st_torch(report, n_texts=5)
    s = report["summary"]
    ag = s["embedrt-fp32"]["agreement"]
    assert ag["max_abs_diff"] <= 1e-5 and ag["active_dims_differing"] == 0 and ag["mean_active_dims"] > 0
    assert s["st-torch"]["agreement"]["max_abs_diff"] == 0.0
    # no FLOP model of the MLM head: neither GFLOP/s nor a roofline, rather than wrong ones
    assert "roofline" not in report and "gflops" not in s["embedrt-fp32"]
    assert {x["runner"]: x["reason"] for x in report["skipped"]}["fastembed"].startswith("no sparse runner")
    assert "| embedrt-fp32 |" in md and "vs st-torch" in md and "active dims (mean)" in md
    assert "GFLOP/s" not in md and "Skipped fastembed" in md
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
