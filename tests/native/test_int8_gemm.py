"""ai.embedrt::PackedMatMulInteger: exactly onnxruntime's MatMulInteger (u8 x s8 -> int32) and a numpy int64
product, bit for bit, on every ISA path this CPU has, for every shape the tiles split (rows not a multiple of
the 4-row tile, columns not a multiple of the 16-column panel, K not a multiple of the 4-byte quad); and its
typed errors."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from reference import session

SHAPES = [  # (leading dims of A, K, N)
    ((1,), 1, 1),
    ((3,), 5, 7),
    ((2, 7), 16, 16),
    ((4, 33), 384, 384),
    ((27,), 384, 1536),
    ((5,), 1031, 17),
    ((2, 3), 1536, 40),
    ((130,), 64, 33),
]


def _model(
    K: int, N: int, w: np.ndarray | None, zp: int | None, rank: int, op: str, const_w: bool = True
) -> bytes:
    domain = "ai.embedrt" if op == "PackedMatMulInteger" else ""
    inputs = ["a", "w"] + (["zp"] if zp is not None else [])
    inits = []
    # NOTE: K symbolic, so that a mismatch reaches the kernel rather than onnxruntime's input check
    graph_inputs = [
        helper.make_tensor_value_info("a", TensorProto.UINT8, [f"d{i}" for i in range(rank - 1)] + ["k"])
    ]
    if const_w:
        inits.append(numpy_helper.from_array(w, "w"))
    else:
        graph_inputs.append(helper.make_tensor_value_info("w", TensorProto.INT8, [K, N]))
    if zp is not None:
        inits.append(numpy_helper.from_array(np.array(zp, np.uint8), "zp"))
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["y"], domain=domain)],
        "g",
        graph_inputs,
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        inits,
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def _reference(a: np.ndarray, w: np.ndarray, zp: int) -> np.ndarray:
    return ((a.astype(np.int64) - zp) @ w.astype(np.int64)).astype(np.int32)


@pytest.mark.parametrize("weight_max", [63, 127])
def test_packed_int8_gemm_is_matmulinteger_bit_for_bit(ops_library, isa, weight_max):
    # weight_max 63: the w7a8 weights, on the pmaddubsw tile; 127 (and -128): weights that could saturate
    # pmaddubsw, which the kernel must notice when it packs them and compute exactly on its portable path
    rng = np.random.default_rng(7)
    for lead, K, N in SHAPES:
        w = rng.integers(-weight_max, weight_max + 1, (K, N)).astype(np.int8)
        if weight_max == 127:
            w[0, 0] = -128
        a = rng.integers(0, 256, lead + (K,)).astype(np.uint8)
        a.reshape(-1, K)[0] = 255  # a row at the top of the range: the largest pairs the tile can meet
        w[: min(2, K), : min(3, N)] = weight_max  # and weights at the top of theirs
        for zp in (128, 0, None):
            rank = len(lead) + 1
            got = session(_model(K, N, w, zp, rank, "PackedMatMulInteger"), ops_library).run(None, {"a": a})[
                0
            ]
            want = _reference(a, w, zp or 0)
            assert got.dtype == np.int32 and got.shape == lead + (N,)
            np.testing.assert_array_equal(got, want, err_msg=f"{lead} K={K} N={N} zp={zp} isa={isa}")
        if weight_max == 63:  # onnxruntime is exact here too (weights that cannot saturate, on every ISA)
            rank = len(lead) + 1
            ort_y = session(_model(K, N, w, 128, rank, "MatMulInteger")).run(None, {"a": a})[0]
            got = session(_model(K, N, w, 128, rank, "PackedMatMulInteger"), ops_library).run(None, {"a": a})[
                0
            ]
            np.testing.assert_array_equal(got, ort_y)


def test_packed_int8_gemm_is_the_same_on_every_thread_count_and_with_weights_given_per_call(ops_library):
    rng = np.random.default_rng(8)
    K, N = 384, 1536
    w = rng.integers(-63, 64, (K, N)).astype(np.int8)
    a = rng.integers(0, 256, (2, 37, K)).astype(np.uint8)
    want = _reference(a, w, 128)
    for threads in (1, 2, 3):
        got = session(_model(K, N, w, 128, 3, "PackedMatMulInteger"), ops_library, threads).run(
            None, {"a": a}
        )[0]
        np.testing.assert_array_equal(got, want)
    per_call = session(_model(K, N, w, 128, 3, "PackedMatMulInteger", const_w=False), ops_library)
    np.testing.assert_array_equal(per_call.run(None, {"a": a, "w": w})[0], want)


def test_packed_int8_gemm_rejects_bad_inputs_with_a_message(ops_library):
    rng = np.random.default_rng(9)
    w = rng.integers(-63, 64, (8, 4)).astype(np.int8)
    s = session(_model(8, 4, w, 128, 2, "PackedMatMulInteger"), ops_library)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="does not match B"):
        s.run(None, {"a": np.zeros((2, 7), np.uint8)})
    s = session(_model(8, 4, w, 128, 2, "PackedMatMulInteger", const_w=False), ops_library)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="does not match B"):
        s.run(None, {"a": np.zeros((2, 6), np.uint8), "w": w})
    # a per-row zero point (allowed by MatMulInteger) is not what this op takes
    graph = helper.make_graph(
        [helper.make_node("PackedMatMulInteger", ["a", "w", "zp"], ["y"], domain="ai.embedrt")],
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.UINT8, [2, 8]),
            helper.make_tensor_value_info("zp", TensorProto.UINT8, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.embedrt", 1)]
    ).SerializeToString()
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="a_zero_point must be one"):
        session(model, ops_library).run(None, {"a": np.zeros((2, 8), np.uint8), "zp": np.zeros(2, np.uint8)})


def test_an_empty_batch_gives_an_empty_result(ops_library):
    w = np.ones((8, 4), np.int8)
    y = session(_model(8, 4, w, 128, 2, "PackedMatMulInteger"), ops_library).run(
        None, {"a": np.zeros((0, 8), np.uint8)}
    )[0]
    assert y.shape == (0, 4) and y.dtype == np.int32
