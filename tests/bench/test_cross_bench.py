"""`embedrt bench` on a tiny cross-encoder export: schema, pairs/s ratios from measured runs, agreement."""

from __future__ import annotations

import sys

import pytest

from embedrt.cli import main
from helpers import run_bench_cli


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench-cross") / "pairs.tsv"
    rows = [
        "score\tsentence1\tsentence2",
        "5.0\tA man is playing a guitar.\tSomeone plays an instrument.",
        "0.5\thello world\tthe model",
        "1.0\t\tan empty first side",
        "2.0\tcafé naïve 日本語\t🍕 pizza",
        "3.0\t" + "the theory " * 30 + "\tshort",
        "only one field",
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _bench(export_dir, pairs_file, tmp_path, *extra):
    return run_bench_cli(export_dir, "--pairs-from", pairs_file, tmp_path, *extra)


@pytest.mark.slow  # NOTE: two repetitions with the sentence-transformers PyTorch peer, each in a process
def test_cross_bench_schema_ratios_and_agreement(tiny_cross, pairs_file, tmp_path):
    _, export_dir = tiny_cross
    report, md = _bench(export_dir, pairs_file, tmp_path, "--peers", "st-torch,fastembed")
    assert report["schema"] == "embedrt-bench-cross/1" and report["config"]["task"] == "cross-encoder"
    assert report["config"]["n_pairs"] == 5  # header and the one-field line skipped
    assert report["config"]["real_tokens"] > 5 * 3 and report["config"]["corpus_gflop"] > 0
    labels = [r["label"] for r in report["runs"]]
    assert labels == ["embedrt-fp32", "st-torch", "embedrt-fp32", "st-torch"]  # alternating A B A B
    for run in report["runs"]:
        assert run["ok"], run
        assert set(run["throughput"]) == {"1", "4"} and run["latency_ms"]["n"] == 5
        assert run["throughput"]["4"]["n_pairs"] == 5
    by = {(r["label"], r["rep"]): r for r in report["runs"]}
    expected = sorted(
        by[("embedrt-fp32", k)]["throughput"]["4"]["pairs_per_s"]
        / by[("st-torch", k)]["throughput"]["4"]["pairs_per_s"]
        for k in range(2)
    )
    assert report["ratios"]["embedrt-fp32"]["st-torch"]["throughput"] == pytest.approx(sum(expected) / 2)
    s = report["summary"]
    assert s["embedrt-fp32"]["agreement"]["max_abs_diff"] <= 1e-5
    assert s["st-torch"]["agreement"]["max_abs_diff"] == 0.0
    assert s["embedrt-fp32"]["pairs_per_s"] > 0 and s["embedrt-fp32"]["gflops"] > 0
    assert {x["runner"]: x["reason"] for x in report["skipped"]}["fastembed"].startswith(
        "no cross-encoder runner"
    )
    assert "| embedrt-fp32 |" in md and "vs st-torch" in md and "pairs/s" in md and "Skipped fastembed" in md


def test_cross_bench_missing_peer_is_skipped(tiny_cross, pairs_file, tmp_path):
    _, export_dir = tiny_cross
    report, md = _bench(
        export_dir,
        pairs_file,
        tmp_path,
        "--peers",
        "st-onnx",
        "--peer-python",
        sys.executable + "-does-not-exist",
    )
    assert [x["runner"] for x in report["skipped"]] == ["st-onnx"]
    assert [r["label"] for r in report["runs"]] == ["embedrt-fp32", "embedrt-fp32"]
    assert "Skipped st-onnx" in md


def test_bench_needs_exactly_one_input_file(tiny_cross, pairs_file, capsys):
    _, export_dir = tiny_cross
    assert main(["bench", str(export_dir)]) == 2
    assert "exactly one of --corpus" in capsys.readouterr().err
