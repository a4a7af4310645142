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
