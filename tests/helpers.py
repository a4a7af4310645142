"""Small helpers shared by the test files (fixtures live in conftest.py, model builders in tiny_models.py,
native-op references and graph builders in native/reference.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def op_counts(path: Path) -> Counter:
    """How many nodes of each op type the ONNX graph at ``path`` has."""
    import onnx

    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def dims(value_info) -> list:
    """The shape of a graph input or output: dim names where symbolic, sizes where fixed."""
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def leftovers(parent: Path, name: str = "out") -> list[str]:
    """What an export to ``parent / name`` left in ``parent``: the target, or temporary siblings of it."""
    return [p.name for p in parent.iterdir() if name in p.name]


def run_bench_cli(export_dir: Path, input_flag: str, input_path: Path, tmp_path: Path, *extra: str):
    """``embedrt bench`` on ``export_dir`` with a tiny, fast configuration: the JSON report and markdown."""
    from embedrt.cli import main

    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    argv = [
        "bench",
        str(export_dir),
        input_flag,
        str(input_path),
        "--batch-sizes",
        "1,4",
        "--headline-batch-size",
        "4",
        "--repeats",
        "2",
        "--latency-calls",
        "5",
        "--workdir",
        str(tmp_path / "work"),
        "--json",
        str(out),
        "--markdown",
        str(md),
        "-q",
        *extra,
    ]
    assert main(argv) == 0
    return json.loads(out.read_text()), md.read_text()


def assert_texts_bench_against_st_torch(report: dict, n_texts: int, batch: str = "4", repeats: int = 2):
    """What every texts task's bench report (sparse, multi-vector) holds for embedrt-fp32 against st-torch:
    the order flipping every repetition, every run ok over all texts, and the ratios taken repetition by
    repetition from the runs' own rates."""
    import pytest

    order = ["embedrt-fp32", "st-torch"]
    flipped = [x for k in range(repeats) for x in (order if k % 2 == 0 else order[::-1])]
    assert [r["label"] for r in report["runs"]] == flipped
    for run in report["runs"]:
        assert run["ok"], run
        assert run["throughput"][batch]["n_texts"] == n_texts and run["latency_ms"]["n"] == 5
    s = report["summary"]
    assert set(s) == set(order)
    assert s["embedrt-fp32"]["runs_ok"] == s["st-torch"]["runs_ok"] == repeats
    assert s["embedrt-fp32"]["texts_per_s"] > 0 and s["embedrt-fp32"]["peak_rss_mib"] > 0
    by = {(r["label"], r["rep"]): r for r in report["runs"]}
    expected = [
        by[("embedrt-fp32", k)]["throughput"][batch]["texts_per_s"]
        / by[("st-torch", k)]["throughput"][batch]["texts_per_s"]
        for k in range(repeats)
    ]
    ratio = report["ratios"]["embedrt-fp32"]["st-torch"]
    assert ratio["per_repetition"] == pytest.approx(expected)
    assert ratio["throughput"] == pytest.approx(sum(expected) / repeats)
