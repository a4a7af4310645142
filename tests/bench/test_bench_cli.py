"""`embedrt bench` end to end on a tiny model and a tiny corpus: schema, and ratios from measured values."""

from __future__ import annotations

import sys

import pytest

from embedrt.cli import main
from helpers import run_bench_cli


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "corpus.txt"
    lines = [
        "hello world",
        "the model is a vector",
        "",
        "who wrote the theory of relativity?",
        "a man is playing a guitar on stage " * 3,
        "café naïve 日本語",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _bench(export_dir, corpus, tmp_path, *extra):
    return run_bench_cli(export_dir, "--corpus", corpus, tmp_path, "--limit", "6", *extra)


@pytest.mark.slow  # NOTE: two repetitions with the sentence-transformers PyTorch peer, each in a process
def test_bench_schema_and_ratios(tiny_bert, corpus, tmp_path):
    _, export_dir = tiny_bert
    report, md = _bench(export_dir, corpus, tmp_path, "--peers", "st-torch")
    assert report["schema"] == "embedrt-bench/1"
    keys = ("created", "machine", "config", "versions", "roofline", "runs", "skipped", "summary", "ratios")
    assert all(key in report for key in keys)
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    assert report["config"]["n_texts"] == 6 and report["config"]["real_tokens"] > 6
    assert report["config"]["corpus_gflop"] > 0
    assert report["roofline"]["fp32_gflops"] > 0 and report["roofline"]["int8_gflops"] > 0
    labels = [r["label"] for r in report["runs"]]
    assert labels == ["embedrt-fp32", "st-torch", "embedrt-fp32", "st-torch"]  # alternating A B A B
    for run in report["runs"]:
        assert run["ok"], run
        assert run["cold_start_s"] > 0 and run["peak_rss_mib"] > 0
        assert set(run["throughput"]) == {"1", "4"} and run["latency_ms"]["n"] == 5
    by = {(r["label"], r["rep"]): r for r in report["runs"]}
    # ratios are pair by pair from the measured runs: recompute them here
    expected = sorted(
        by[("embedrt-fp32", k)]["throughput"]["4"]["sentences_per_s"]
        / by[("st-torch", k)]["throughput"]["4"]["sentences_per_s"]
        for k in range(2)
    )
    got = report["ratios"]["embedrt-fp32"]["st-torch"]["throughput"]
    assert got == pytest.approx(sum(expected) / 2)
    assert report["ratios"]["st-torch"]["embedrt-fp32"]["throughput"] == pytest.approx(
        sum(1 / x for x in expected) / 2
    )
    s = report["summary"]["embedrt-fp32"]
    assert s["agreement"]["max_abs_diff"] <= 1e-5 and s["agreement"]["min_cosine"] > 0.9999
    assert report["summary"]["st-torch"]["agreement"]["max_abs_diff"] == 0.0
    assert s["gflops"] > 0 and 0 < s["roofline_fraction"]
    # the roofline is measured once per repetition; the fraction is the median of the per-repetition ones
    roofs = report["roofline"]["reps"]
    assert [r["rep"] for r in roofs] == [0, 1]
    per_rep = sorted(
        report["config"]["corpus_gflop"]
        / 6
        * by[("embedrt-fp32", r["rep"])]["throughput"]["4"]["sentences_per_s"]
        / r["fp32_gflops"]
        for r in roofs
    )
    assert s["roofline_fraction"] == pytest.approx(sum(per_rep) / 2)
    assert "| embedrt-fp32 |" in md and "vs st-torch" in md
    # which graph the embedrt runner ran (native or standard) is reported, with the reason
    assert s["graph"].startswith(("native: ", "standard: ")) and f"embedrt-fp32: {s['graph']}" in md


def test_missing_peers_are_skipped_not_fatal(tiny_bert, corpus, tmp_path):
    _, export_dir = tiny_bert
    report, md = _bench(
        export_dir,
        corpus,
        tmp_path,
        "--peers",
        "st-onnx,fastembed",
        "--peer-python",
        sys.executable + "-does-not-exist",
    )
    assert {x["runner"] for x in report["skipped"]} == {"st-onnx", "fastembed"}
    assert all("not found" in x["reason"] for x in report["skipped"])
    assert [r["label"] for r in report["runs"]] == ["embedrt-fp32", "embedrt-fp32"]
    assert "Skipped st-onnx" in md
    # texts beyond the window are counted (cut at max_seq_length for every runner alike)
    from embedrt import Encoder

    counts = Encoder(export_dir, device="cpu").count_tokens(corpus.read_text(encoding="utf-8").splitlines())
    cut = int((counts > 24).sum())
    assert cut >= 1 and report["config"]["truncated_texts"] == cut
    assert f"({cut} truncated at 24 tokens)" in md


@pytest.mark.slow  # NOTE: two repetitions with the roofline, for one PNG
def test_plot(tiny_bert, corpus, tmp_path):
    pytest.importorskip("matplotlib")
    _, export_dir = tiny_bert
    png = tmp_path / "bench.png"
    _bench(export_dir, corpus, tmp_path, "--peers", "", "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_peer_is_an_input_error(tiny_bert, corpus, tmp_path, capsys):
    _, export_dir = tiny_bert
    assert main(["bench", str(export_dir), "--corpus", str(corpus), "--peers", "nope", "-q"]) == 2
    assert "valid choices" in capsys.readouterr().err
