"""The OpenVINO peers of `embedrt bench` (sentence-transformers' OpenVINO backend, fp32 and static int8)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedrt.bench import orchestrate, worker
from helpers import run_bench_cli

REPO = Path(__file__).resolve().parents[2]


def test_registry_lists_the_openvino_peers():
    for name in ("st-openvino", "st-openvino-default", "st-openvino-int8"):
        peer = worker.PEERS[name]
        assert name in orchestrate.PEERS
        assert "embedding" in peer.runners and "cross-encoder" not in peer.runners
        assert "openvino" in peer.requires and peer.prepare is not None and not peer.onnx_copy
    # the other peers make no copy of their own
    assert all(worker.PEERS[p].prepare is None for p in ("st-torch", "st-onnx", "fastembed"))


def test_the_fp32_peer_asks_openvino_for_f32(monkeypatch):
    """OpenVINO's CPU plugin computes in bf16 by default where the CPU has AVX512_BF16 or AMX: the fp32 peer
    must ask for f32, the default peer must not."""
    import types

    seen = []

    class FakeST:
        def __init__(self, path, **kwargs):
            seen.append(kwargs)

    monkeypatch.setitem(
        sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=FakeST)
    )
    cfg = {"openvino_model_dir": "unused"}
    worker.PEERS["st-openvino"].runners["embedding"](cfg)
    worker.PEERS["st-openvino-default"].runners["embedding"](cfg)
    worker.PEERS["st-openvino-int8"].runners["embedding"](cfg)
    assert seen[0]["model_kwargs"]["ov_config"] == {"INFERENCE_PRECISION_HINT": "f32"}
    assert "model_kwargs" not in seen[1]
    assert seen[2]["model_kwargs"] == {"file_name": worker.OPENVINO_INT8_FILE}


def test_probe_names_the_missing_openvino(tmp_path):
    if importlib.util.find_spec("openvino") is not None:
        pytest.skip("openvino is installed here")
    res = orchestrate.call_worker(
        sys.executable, {"mode": "probe", "runner": "st-openvino"}, tmp_path, "probe", 600
    )
    assert res["ok"] is False
    assert any(m.startswith("openvino (ModuleNotFoundError") for m in res["missing"]), res


def test_bench_skips_the_openvino_peer_with_its_reason(tiny_bert, tmp_path):
    if importlib.util.find_spec("openvino") is not None:
        pytest.skip("openvino is installed here")
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world\nthe model is a vector\n", encoding="utf-8")
    _, export_dir = tiny_bert
    report, md = run_bench_cli(
        export_dir, "--corpus", corpus, tmp_path, "--limit", "2", "--peers", "st-openvino", "--repeats", "1"
    )
    (skip,) = report["skipped"]
    assert skip["runner"] == "st-openvino" and skip["reason"].startswith("not installed: ")
    assert "openvino (ModuleNotFoundError" in skip["reason"]
    assert "Skipped st-openvino: not installed" in md
    assert "prepared" not in report


def _peer_python() -> str:
    """The interpreter with sentence-transformers' OpenVINO backend: EMBEDRT_PEER_PYTHON, else skip."""
    python = os.environ.get("EMBEDRT_PEER_PYTHON")
    if not python:
        pytest.skip("EMBEDRT_PEER_PYTHON (a venv with sentence-transformers[openvino]) is not set")
    code = "import openvino, nncf, optimum.intel.openvino"
    probe = subprocess.run([python, "-c", code], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot import openvino, nncf and optimum.intel")
    return python


@pytest.mark.slow  # NOTE: OpenVINO conversion, calibration and runs, each in a process of the peers' venv
def test_openvino_peers_run_in_the_peer_venv(tmp_path):
    python = _peer_python()
    from embedrt import export_model

    model = tmp_path / "model"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "make_shape_model.py"), "bert-base", "-o", str(model)]
        + ["--layers", "2", "--hidden", "64", "--heads", "4", "--ffn", "128", "--max-seq-length", "64"],
        check=True,
        capture_output=True,
    )
    export_dir = tmp_path / "export"
    export_model(str(model), export_dir)
    corpus = tmp_path / "c.txt"
    corpus.write_text(
        "\n".join(["hello world", "the index of a model", "who wrote the theory of relativity?"] * 3) + "\n",
        encoding="utf-8",
    )
    report, md = run_bench_cli(
        export_dir,
        "--corpus",
        corpus,
        tmp_path,
        "--limit",
        "9",
        "--repeats",
        "1",
        "--peers",
        "st-torch,st-openvino,st-openvino-int8",
        "--peer-python",
        python,
    )
    assert report["skipped"] == []
    assert [r["label"] for r in report["runs"]] == [
        "embedrt-fp32",
        "st-torch",
        "st-openvino",
        "st-openvino-int8",
    ]
    assert all(r["ok"] for r in report["runs"]), report["runs"]
    prepared = report["prepared"]
    assert prepared["st-openvino"]["convert_s"] > 0  # converted once, before the runs
    assert prepared["st-openvino-int8"]["int8_calibration_samples"] == 9
    assert (tmp_path / "work" / "st-openvino" / worker.OPENVINO_INT8_FILE).is_file()
    fp32 = report["summary"]["st-openvino"]["agreement"]
    assert fp32["max_abs_diff"] < 1e-3 and fp32["min_cosine"] > 0.9999
    assert report["summary"]["st-openvino-int8"]["agreement"]["min_cosine"] > 0.9
    assert report["summary"]["st-openvino"]["provider"] == "OpenVINO-CPU"
    assert "| st-openvino |" in md and "Prepared st-openvino" in md
