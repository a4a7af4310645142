"""Oracles for the native ops: a numpy port of sentence-transformers' Pooling + Normalize, the same pooling
written as the standard ONNX ops that the exported graph contains, and the int8 graph's standard-op chains
(per-token quantize, rescale) beside single-node graphs of the ops that replace them. Shared by the tests and
the benchmarks/ scripts."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

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


# ------------------------------------------------------------------ the int8 ops (QuantizePerToken,
# DequantizeRows)
def _model(nodes, inputs, outputs, inits=(), custom=True) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("ai.embedrt", 1)] if custom else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION).SerializeToString()


def session(model: bytes, library=None, threads: int = 0) -> ort.InferenceSession:
    """A CPU session on ``model``, with the custom-op library registered when given."""
    so = ort.SessionOptions()
    if library is not None:
        so.register_custom_ops_library(str(library))
    so.intra_op_num_threads = threads
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _vi(name, elem, rank):
    return helper.make_tensor_value_info(name, elem, [f"d{i}" for i in range(rank)])


def quantize_custom(rank: int, **attrs: int) -> bytes:
    node = helper.make_node("QuantizePerToken", ["x"], ["q", "s"], domain="ai.embedrt", **attrs)
    return _model(
        [node],
        [_vi("x", TensorProto.FLOAT, rank)],
        [
            helper.make_tensor_value_info("q", TensorProto.UINT8, None),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
        ],
    )


def quantize_standard(rank: int) -> bytes:
    """Abs, ReduceMax, Max, Div, Div, Round, Add, Cast: the chain quantize_int8 writes at opset 17."""
    c = [
        numpy_helper.from_array(np.array(v, np.float32), name)
        for name, v in (("eps", 1e-12), ("c127", 127.0), ("c128", 128.0))
    ]
    nodes = [
        helper.make_node("Abs", ["x"], ["abs"]),
        helper.make_node("ReduceMax", ["abs"], ["amax"], axes=[-1], keepdims=1),
        helper.make_node("Max", ["amax", "eps"], ["amax_eps"]),
        helper.make_node("Div", ["amax_eps", "c127"], ["s"]),
        helper.make_node("Div", ["x", "s"], ["xq"]),
        helper.make_node("Round", ["xq"], ["xr"]),
        helper.make_node("Add", ["xr", "c128"], ["xo"]),
        helper.make_node("Cast", ["xo"], ["q"], to=TensorProto.UINT8),
    ]
    return _model(
        nodes,
        [_vi("x", TensorProto.FLOAT, rank)],
        [
            helper.make_tensor_value_info("q", TensorProto.UINT8, None),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
        ],
        c,
        custom=False,
    )


def dequantize_custom(rank: int, bias: bool, **attrs: int) -> bytes:
    node = helper.make_node(
        "DequantizeRows", ["acc", "rs", "cs"] + (["b"] if bias else []), ["y"], domain="ai.embedrt", **attrs
    )
    inputs = [
        _vi("acc", TensorProto.INT32, rank),
        _vi("rs", TensorProto.FLOAT, rank),
        _vi("cs", TensorProto.FLOAT, 1),
    ] + ([_vi("b", TensorProto.FLOAT, 1)] if bias else [])
    return _model([node], inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])


def dequantize_standard(rank: int, bias: bool) -> bytes:
    """Cast, Mul (columns), Mul (rows), then the Linear's bias Add."""
    nodes = [
        helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["accf", "cs"], ["ycol"]),
        helper.make_node("Mul", ["ycol", "rs"], ["y0" if bias else "y"]),
    ] + ([helper.make_node("Add", ["y0", "b"], ["y"])] if bias else [])
    inputs = [
        _vi("acc", TensorProto.INT32, rank),
        _vi("rs", TensorProto.FLOAT, rank),
        _vi("cs", TensorProto.FLOAT, 1),
    ] + ([_vi("b", TensorProto.FLOAT, 1)] if bias else [])
    return _model(nodes, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], custom=False)


def dense_custom(
    w: np.ndarray, bias: np.ndarray | None, rank: int, weight_input: bool = False, **attrs: int
) -> bytes:
    """One PackedMatMul node: x [d0.., K] @ w (+ bias). ``weight_input`` makes W a graph input (packed per
    call) instead of an initializer (packed at load)."""
    inputs = ["x", "W"] + (["b"] if bias is not None else [])
    node = helper.make_node("PackedMatMul", inputs, ["y"], domain="ai.embedrt", **attrs)
    inits = [] if weight_input else [numpy_helper.from_array(w, "W")]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "b"))
    graph_inputs = [_vi("x", TensorProto.FLOAT, rank)]
    if weight_input:
        graph_inputs.append(_vi("W", TensorProto.FLOAT, 2))
    return _model([node], graph_inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)


def dense_standard(w: np.ndarray, bias: np.ndarray | None, rank: int) -> bytes:
    """The Linear as the traced graph holds it: MatMul by the weight initializer, then the bias Add."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm" if bias is not None else "y"])]
    inits = [numpy_helper.from_array(w, "W")]
    if bias is not None:
        nodes.append(helper.make_node("Add", ["mm", "b"], ["y"]))
        inits.append(numpy_helper.from_array(bias, "b"))
    return _model(
        nodes,
        [_vi("x", TensorProto.FLOAT, rank)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
        custom=False,
    )


# ------------------------------------------------------------------ RequantizeRows
def requantize_custom(rank: int, bias: bool, **attrs) -> bytes:
    node = helper.make_node(
        "RequantizeRows",
        ["acc", "rs", "cs"] + (["b"] if bias else []),
        ["q", "s"],
        domain="ai.embedrt",
        **attrs,
    )
    inputs = [
        _vi("acc", TensorProto.INT32, rank),
        _vi("rs", TensorProto.FLOAT, rank),
        _vi("cs", TensorProto.FLOAT, 1),
    ] + ([_vi("b", TensorProto.FLOAT, 1)] if bias else [])
    outputs = [
        helper.make_tensor_value_info("q", TensorProto.UINT8, None),
        helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
    ]
    return _model([node], inputs, outputs)


def requantize_chain(rank: int, bias: bool, n: int, gelu: bool, qmax: int = 127) -> bytes:
    """DequantizeRows, then (gelu) PackedMatMul by the identity with activation="gelu" (the GELU alone: each
    sum is one exact product by 1 plus zeros), then QuantizePerToken: the three ops RequantizeRows fuses."""
    nodes = [
        helper.make_node(
            "DequantizeRows", ["acc", "rs", "cs"] + (["b"] if bias else []), ["y"], domain="ai.embedrt"
        )
    ]
    inits = []
    if gelu:
        nodes.append(
            helper.make_node("PackedMatMul", ["y", "I"], ["g"], domain="ai.embedrt", activation="gelu")
        )
        inits.append(numpy_helper.from_array(np.eye(n, dtype=np.float32), "I"))
    nodes.append(
        helper.make_node(
            "QuantizePerToken", ["g" if gelu else "y"], ["q", "s"], domain="ai.embedrt", qmax=qmax
        )
    )
    inputs = [
        _vi("acc", TensorProto.INT32, rank),
        _vi("rs", TensorProto.FLOAT, rank),
        _vi("cs", TensorProto.FLOAT, 1),
    ] + ([_vi("b", TensorProto.FLOAT, 1)] if bias else [])
    outputs = [
        helper.make_tensor_value_info("q", TensorProto.UINT8, None),
        helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
    ]
    return _model(nodes, inputs, outputs, inits)
