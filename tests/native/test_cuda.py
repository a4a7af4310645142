"""The CUDA kernel: compiled whenever nvcc is present (compile only on machines without a GPU); executed by
the `gpu` tests, which skip without a CUDA provider and have never run where this was written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from reference import MODES, fused_model, pool_reference, random_batch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # NOTE: an nvcc build of the library
@pytest.mark.skipif(shutil.which("nvcc") is None and not os.environ.get("CUDACXX"), reason="nvcc not found")
def test_cuda_kernel_compiles_and_the_library_still_serves_cpu(tmp_path):
    import onnxruntime as ort

    build = tmp_path / "build"
    cfg = subprocess.run(
        [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build),
            "-DEMBEDRT_CUDA=ON",
            "-DEMBEDRT_REQUIRE_NATIVE=ON",
            "-DCMAKE_BUILD_TYPE=Release",
        ],
        capture_output=True,
        text=True,
    )
    assert cfg.returncode == 0, cfg.stdout[-3000:] + cfg.stderr[-3000:]
    assert "CUDA kernel ON" in cfg.stdout
    out = subprocess.run(["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "mean_pool_cuda.cu" in out.stdout
    lib = build / "libembedrt_ops.so"
    from embedrt.runtime.native import build_info

    assert build_info(lib)["cuda"] == "1"
    # NOTE: SASS for T4 (sm_75) up to H100/H200 (sm_90), and compute_90 PTX for newer GPUs to JIT
    flags = (build / "CMakeFiles" / "embedrt_ops.dir" / "flags.make").read_text()
    for sm in (75, 80, 86, 89):
        assert f"--generate-code=arch=compute_{sm},code=[sm_{sm}]" in flags
    assert "--generate-code=arch=compute_90,code=[compute_90,sm_90]" in flags
    # NOTE: static cudart, so the CUDA-enabled library needs no CUDA library to load, and its CPU kernel runs.
    so = ort.SessionOptions()
    so.register_custom_ops_library(str(lib))
    s = ort.InferenceSession(fused_model("mean", 1), so, providers=["CPUExecutionProvider"])
    x, mask = random_batch(np.random.default_rng(0), 4, 9, 33)
    np.testing.assert_allclose(
        s.run(["y"], {"x": x, "mask": mask})[0], pool_reference(x, mask, "mean", True), atol=1e-6
    )


def _cuda_session(library, model: bytes, profile_dir: Path | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.register_custom_ops_library(str(library))
    if profile_dir is not None:
        so.enable_profiling = True
        so.profile_file_prefix = str(profile_dir / "embedrt")
    return ort.InferenceSession(model, so, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


def _providers_of(profile: Path, op: str) -> set[str]:
    events = json.loads(profile.read_text())
    return {
        e["args"].get("provider")
        for e in events
        if e.get("cat") == "Node"
        and e.get("args", {}).get("op_name") == op
        and "provider" in e.get("args", {})
    }


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cuda_kernel_matches_numpy_and_runs_on_cuda(ops_library, tmp_path, mode, dtype):
    s = _cuda_session(ops_library, fused_model(mode, 1, dtype=dtype), tmp_path)
    rng = np.random.default_rng(1)
    for B, T, H in [(1, 1, 1), (8, 33, 384), (3, 2000, 1031), (5, 7, 2049)]:
        x, mask = random_batch(
            rng,
            B,
            T,
            H,
            dtype=np.float16 if dtype == "float16" else np.float32,
            all_padding_row=mode in ("mean", "mean_sqrt_len"),
        )
        got = s.run(["y"], {"x": x, "mask": mask})[0]
        ref = pool_reference(x, mask, mode, True)
        assert np.abs(got - ref).max() <= 1e-5, (B, T, H)
    assert _providers_of(Path(s.end_profiling()), "MeanPoolNormalize") == {"CUDAExecutionProvider"}


@pytest.mark.gpu
def test_encoder_fused_graph_runs_the_op_on_cuda(ops_library, tiny_bert, tmp_path):
    import onnxruntime as ort

    from embedrt import Encoder

    _, export_dir = tiny_bert
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "enc")
    enc = Encoder(export_dir, device="cuda", session_options=so, native=True)
    texts = ["hello world", "", "a longer text about the model " * 5]
    a = enc.encode(texts)
    b = Encoder(export_dir, device="cuda", native=False).encode(texts)
    assert np.abs(a - b).max() <= 1e-6
    assert _providers_of(Path(enc._session.end_profiling()), "MeanPoolNormalize") == {"CUDAExecutionProvider"}
