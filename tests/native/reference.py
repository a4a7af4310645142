"""Oracles for the native op: a numpy port of sentence-transformers' Pooling + Normalize, and the same
pooling written as the standard ONNX ops that the exported graph contains."""

from __future__ import annotations

import numpy as np

MODES = ("mean", "mean_sqrt_len", "max", "cls")
OPSET = 17
#: onnx 1.23 writes IR 14 by default; onnxruntime here reads at most 10-13, so set it.
IR_VERSION = 8


def pool_reference(x: np.ndarray, mask: np.ndarray, mode: str, normalize: bool) -> np.ndarray:
    """float64 numpy pooling with sentence-transformers' constants (count clamp 1e-9, normalize eps 1e-12)."""
    x = x.astype(np.float64)
    w = mask.astype(np.float64)[..., None]
    if mode in ("mean", "mean_sqrt_len"):
        count = np.maximum(w.sum(1), 1e-9)
        out = (x * w).sum(1) / (count if mode == "mean" else np.sqrt(count))
    elif mode == "max":
        out = (
            np.where(w != 0, x, -np.inf).max(1) if x.shape[1] else np.full((x.shape[0], x.shape[2]), -np.inf)
        )
    else:
        first = (mask != 0).argmax(1)
        out = x[np.arange(x.shape[0]), first]
    if normalize:
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def fused_model(
    mode: str = "mean",
    normalize: int = 1,
    dtype: str = "float32",
    hidden: int | None = None,
    attrs: bool = True,
) -> bytes:
    """One MeanPoolNormalize node: (x [B,T,H], mask [B,T]) -> y [B,H]."""
    from onnx import TensorProto, helper

    elem = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    kwargs = {"mode": mode, "normalize": normalize} if attrs else {}
    node = helper.make_node("MeanPoolNormalize", ["x", "mask"], ["y"], domain="ai.embedrt", **kwargs)
    graph = helper.make_graph(
        [node],
        "fused_pool",
        [
            helper.make_tensor_value_info("x", elem, ["B", "T", hidden]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["B", "T"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", hidden])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.embedrt", 1)],
        ir_version=IR_VERSION,
    )
    return model.SerializeToString()


def standard_model(mode: str = "mean", normalize: int = 1) -> bytes:
    """The same pooling as the chain of standard ops that embedrt's exported graph holds (mean modes)."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node(
            "Constant", [], ["axis_t"], value=helper.make_tensor("a", TensorProto.INT64, [1], [1])
        ),
        helper.make_node(
            "Constant", [], ["axis_h"], value=helper.make_tensor("h", TensorProto.INT64, [1], [-1])
        ),
        helper.make_node(
            "Constant", [], ["lo"], value=helper.make_tensor("l", TensorProto.FLOAT, [], [1e-9])
        ),
        helper.make_node(
            "Constant", [], ["eps"], value=helper.make_tensor("e", TensorProto.FLOAT, [], [1e-12])
        ),
        helper.make_node("Unsqueeze", ["mask", "axis_h"], ["m3"]),
        helper.make_node("Cast", ["m3"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x", "mf"], ["xm"]),
        helper.make_node("ReduceSum", ["xm", "axis_t"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["mf", "axis_t"], ["count0"], keepdims=0),
        helper.make_node("Clip", ["count0", "lo"], ["count"]),
    ]
    if mode == "mean_sqrt_len":
        nodes += [helper.make_node("Sqrt", ["count"], ["div"])]
    else:
        nodes += [helper.make_node("Identity", ["count"], ["div"])]
    nodes += [helper.make_node("Div", ["total", "div"], ["pooled"])]
    if normalize:
        nodes += [
            helper.make_node("ReduceL2", ["pooled"], ["norm0"], axes=[-1], keepdims=1),
            helper.make_node("Clip", ["norm0", "eps"], ["norm"]),
            helper.make_node("Div", ["pooled", "norm"], ["y"]),
        ]
    else:
        nodes += [helper.make_node("Identity", ["pooled"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "standard_pool",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", "H"]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["B", "T"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "H"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    return model.SerializeToString()


def random_batch(
    rng: np.random.Generator, B: int, T: int, H: int, dtype=np.float32, all_padding_row: bool = False
):
    """Token embeddings and a right-padded mask with random lengths (at least one token per row)."""
    x = rng.standard_normal((B, T, H)).astype(dtype) * 3
    lengths = rng.integers(1, T + 1, size=B) if T else np.zeros(B, dtype=np.int64)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    if all_padding_row and B:
        mask[B // 2] = 0
    return x, mask
