"""The CPU kernel of ai.embedrt::MeanPoolNormalize against the numpy oracle and the standard-op graph."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
from reference import MODES, fused_model, pool_reference, random_batch, standard_model
from reference import session as _session


def _run(session, x, mask):
    return session.run(["y"], {"x": x, "mask": mask})[0]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("normalize", [0, 1])
def test_random_shapes_match_numpy(ops_library, isa, mode, normalize):
    rng = np.random.default_rng(hash((mode, normalize)) % 2**32)
    session = _session(fused_model(mode, normalize), ops_library)
    for B, T, H in [(1, 1, 1), (3, 7, 5), (8, 33, 384), (5, 128, 17), (2, 3, 1031), (64, 16, 48)]:
        x, mask = random_batch(rng, B, T, H)
        got = _run(session, x, mask)
        ref = pool_reference(x, mask, mode, bool(normalize))
        assert got.dtype == np.float32 and got.shape == (B, H)
        tol = 1e-6 * max(1.0, float(np.abs(ref).max()))
        assert np.abs(got - ref).max() <= tol, (B, T, H, np.abs(got - ref).max())


@pytest.mark.parametrize("mode", ["mean", "mean_sqrt_len"])
@pytest.mark.parametrize("normalize", [0, 1])
def test_matches_standard_op_graph(ops_library, isa, mode, normalize):
    rng = np.random.default_rng(7)
    fused = _session(fused_model(mode, normalize), ops_library)
    standard = ort.InferenceSession(standard_model(mode, normalize), providers=["CPUExecutionProvider"])
    for B, T, H in [(32, 128, 384), (7, 1, 64), (4, 9, 4099), (16, 256, 768)]:
        x, mask = random_batch(rng, B, T, H, all_padding_row=True)
        a, b = _run(fused, x, mask), _run(standard, x, mask)
        assert np.abs(a - b).max() <= 1e-6 * max(1.0, float(np.abs(b).max())), (B, T, H)


def test_edge_cases(ops_library, isa):
    rng = np.random.default_rng(3)
    s = _session(fused_model("mean", 1), ops_library)
    # T = 1
    x, mask = random_batch(rng, 4, 1, 32)
    np.testing.assert_allclose(_run(s, x, mask), pool_reference(x, mask, "mean", True), atol=1e-6)
    # an all-padding row: count clamped at 1e-9, the sum is 0, so the row is 0 (and stays 0 after normalize)
    x, mask = random_batch(rng, 5, 6, 32, all_padding_row=True)
    got = _run(s, x, mask)
    assert np.all(got[2] == 0) and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, pool_reference(x, mask, "mean", True), atol=1e-6)
    # B = 0
    out = _run(s, np.zeros((0, 6, 32), np.float32), np.zeros((0, 6), np.int64))
    assert out.shape == (0, 32) and out.dtype == np.float32
    # large H, not a multiple of any vector width
    x, mask = random_batch(rng, 3, 5, 65537)
    np.testing.assert_allclose(_run(s, x, mask), pool_reference(x, mask, "mean", True), atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_fp16_input_accumulates_in_fp32(ops_library, isa, mode):
    rng = np.random.default_rng(11)
    s = _session(fused_model(mode, 1, dtype="float16"), ops_library)
    x, mask = random_batch(rng, 6, 200, 391, dtype=np.float16)
    got = _run(s, x, mask)
    assert got.dtype == np.float32
    # NOTE: the oracle pools the same fp16 values in float64: only fp32 accumulation error remains.
    assert np.abs(got - pool_reference(x, mask, mode, True)).max() <= 1e-6


def test_multithreaded_rows_equal_single_thread(ops_library):
    rng = np.random.default_rng(5)
    x, mask = random_batch(rng, 256, 64, 384)
    one = _run(_session(fused_model("mean", 1), ops_library, threads=1), x, mask)
    many = _run(_session(fused_model("mean", 1), ops_library, threads=2), x, mask)
    assert np.array_equal(one, many)


def test_defaults_are_mean_without_normalize(ops_library):
    rng = np.random.default_rng(2)
    x, mask = random_batch(rng, 3, 4, 8)
    got = _run(_session(fused_model(attrs=False), ops_library), x, mask)
    np.testing.assert_allclose(got, pool_reference(x, mask, "mean", False), atol=1e-6)


def test_bad_mask_shape_is_a_clear_error(ops_library):
    s = _session(fused_model(), ops_library)
    x = np.zeros((3, 5, 8), np.float32)
    with pytest.raises(
        Exception, match=r"attention_mask must be \[batch, sequence\] = \[3, 5\].*got \[3, 4\]"
    ):
        _run(s, x, np.ones((3, 4), np.int64))


def test_bad_rank_is_a_clear_error(ops_library):
    from onnx import TensorProto, helper
    from reference import IR_VERSION, OPSET

    node = helper.make_node("MeanPoolNormalize", ["x", "mask"], ["y"], domain="ai.embedrt")
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "H"]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["B", "T"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.embedrt", 1)],
        ir_version=IR_VERSION,
    )
    # NOTE: onnxruntime does not fail a session on a custom op's shape-inference error (it leaves the shape
    # unknown), so the kernel's own check is what the user sees.
    s = _session(model.SerializeToString(), ops_library)
    assert s.get_outputs()[0].shape == []
    with pytest.raises(
        Exception, match=r"token_embeddings must be \[batch, sequence, hidden\], got shape \[2, 8\]"
    ):
        _run(s, np.zeros((2, 8), np.float32), np.ones((2, 3), np.int64))


def test_unknown_mode_lists_valid_choices(ops_library):
    with pytest.raises(
        Exception, match=r"unknown mode 'median'; valid choices: 'mean', 'mean_sqrt_len', 'max', 'cls'"
    ):
        _session(fused_model("median"), ops_library)


def test_shape_inference_gives_batch_by_hidden(ops_library):
    from onnx import TensorProto, helper
    from reference import IR_VERSION, OPSET

    node = helper.make_node("MeanPoolNormalize", ["x", "mask"], ["y"], domain="ai.embedrt")
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["B", "T", 16]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["B", "T"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )  # no declared shape
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.embedrt", 1)],
        ir_version=IR_VERSION,
    )
    out = _session(model.SerializeToString(), ops_library).get_outputs()[0]
    assert out.type == "tensor(float)" and out.shape == ["B", 16]


@pytest.mark.skipif(shutil.which("nm") is None, reason="nm (binutils) not installed")
def test_library_exports_only_its_entry_points(ops_library):
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(ops_library)], capture_output=True, text=True, check=True
    ).stdout
    symbols = [line.split()[-1] for line in out.splitlines() if line.strip()]
    # NOTE: EmbedrtOpsBuildInfo tells the runtime (ctypes) whether the CUDA kernel is in (docs/gpu.md, item
    # 7);
    # the three Embedrt*Isa/Features functions are what runtime/native.py cpu_kernels() reads
    assert sorted(symbols) == [
        "EmbedrtCpuFeatures",
        "EmbedrtCpuIsa",
        "EmbedrtKernelIsa",
        "EmbedrtOpsBuildInfo",
        "RegisterCustomOps",
    ]
    needed = subprocess.run(["readelf", "-d", str(ops_library)], capture_output=True, text=True).stdout
    assert (
        "onnxruntime" not in needed
    )  # NOTE: not linked against libonnxruntime; the API comes at registration
