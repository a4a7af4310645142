"""Is an int8 graph's integer arithmetic exact on the CPU that runs it?

Every ``MatMulInteger`` of embedrt's int8 graph should give the exact int32 product
``(a - a_zero_point) @ w``. onnxruntime's u8 x s8 kernel does so with VNNI (and on ARM64), but on x86 CPUs
without VNNI (AVX2, AVX-512 without VNNI) it adds adjacent u8 * s8 products in a saturating int16
(pmaddubsw): with 8-bit weights and 8-bit activations a pair reaches 255 * 127 * 2 = 64,770 > 32,767 and the
sum is cut. The schemes ``w7a8`` and ``w8a7`` (export/quantize.py) keep every pair below 32,767.

Two checks, both against a numpy int64 product, bit for bit:

- ``capture_graph``: the int8 graph's own ``MatMulInteger`` inputs and outputs on real inputs (the export's
  probe batch), read as extra graph outputs, plus worst-case rows against each node's weights: every
  activation at the top of its range, at the bottom, and signed to match one column's weights (the largest
  sums that column can reach).
- ``check_scheme``: one ``MatMulInteger`` node at a scheme's extremes: weights at +-max (random signs, and
  whole columns of one sign) against activations at the top and the bottom of their range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .quantize import int8_scheme


def _run_one_node(a_u8: np.ndarray, w_s8: np.ndarray, zero_point: int) -> np.ndarray:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w", "az"], ["y"])],
        "matmulinteger",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, a_u8.shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [None, w_s8.shape[1]])],
        [numpy_helper.from_array(w_s8, "w"), numpy_helper.from_array(np.array(zero_point, np.uint8), "az")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"a": a_u8})[0]


def _compare(
    name: str, a_u8: np.ndarray, w_s8: np.ndarray, zero_point: int, got: np.ndarray
) -> dict[str, Any]:
    # NOTE: float64 products of integers: exact while every partial sum stays below 2**53 (here at most
    # 255 * 128 * K), and BLAS-fast, where numpy's int64 matmul is a naive loop
    if 255 * 128 * a_u8.shape[-1] >= 2**53:
        raise ValueError(f"K = {a_u8.shape[-1]} is too large for an exact float64 product")
    exact = np.rint(
        (a_u8.reshape(-1, a_u8.shape[-1]).astype(np.float64) - zero_point) @ w_s8.astype(np.float64)
    ).astype(np.int64)
    got = got.reshape(exact.shape).astype(np.int64)
    err = np.abs(got - exact)
    return {
        "node": name,
        "rows": int(exact.shape[0]),
        "max_abs_error": int(err.max()) if err.size else 0,
        "wrong_fraction": float(np.mean(err > 0)) if err.size else 0.0,
    }


def worst_case_rows(w_s8: np.ndarray, zero_point: int, columns: int = 4) -> np.ndarray:
    """u8 rows that push ``(a - zero_point) @ w`` to its extremes: all at the top of the range
    (zero_point + max), all at the bottom (zero_point - max), and, for the first column and the ``columns``
    columns with the largest sum |w|, the top where w > 0 and the bottom elsewhere, and the reverse."""
    act_max = zero_point - 1
    top, bottom = zero_point + act_max, zero_point - act_max
    k = w_s8.shape[0]
    rows = [np.full(k, top), np.full(k, bottom)]
    picks = [0, *np.argsort(-np.abs(w_s8.astype(np.int64)).sum(axis=0))[:columns]]
    for n in picks:
        pos = w_s8[:, n] > 0
        rows.append(np.where(pos, top, bottom))
        rows.append(np.where(pos, bottom, top))
    return np.stack(rows).astype(np.uint8)


def capture_graph(
    model_path: Path, feeds: dict[str, np.ndarray], worst_case: bool = True, register=None
) -> list[dict[str, Any]]:
    """Every ``MatMulInteger`` of the graph at ``model_path`` on ``feeds``, compared with numpy; then, with
    ``worst_case``, each node's weights against ``worst_case_rows``. One dict per check:
    ``{"node", "rows", "max_abs_error", "wrong_fraction"}`` (exact: max_abs_error 0).

    ``register(so)`` registers a custom-op library on the session options (for native graphs).
    """
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    inits = {i.name: i for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    if not nodes:
        raise ValueError(f"{model_path} has no MatMulInteger node")
    specs = []
    outputs = {o.name for o in model.graph.output}
    for node in nodes:
        w = numpy_helper.to_array(inits[node.input[1]])
        zp = int(numpy_helper.to_array(inits[node.input[2]])) if len(node.input) > 2 and node.input[2] else 0
        specs.append((node.name, node.input[0], w, zp, node.output[0]))
        for t in (node.input[0], node.output[0]):
            if t not in outputs:
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
                outputs.add(t)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if register is not None:
        register(so)
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = sorted({t for _, a, _, _, y in specs for t in (a, y)})
    values = dict(zip(names, sess.run(names, feeds), strict=True))
    out = [_compare(name, values[a], w, zp, values[y]) for name, a, w, zp, y in specs]
    if worst_case:
        for name, _, w, zp, _ in specs:
            rows = worst_case_rows(w, zp)
            out.append(_compare(name + " (worst-case rows)", rows, w, zp, _run_one_node(rows, w, zp)))
    return out


def scheme_extremes(
    scheme: str, k: int = 384, n: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, int]:
    """(u8 activations, s8 weights, zero point) at the extremes of ``scheme``'s ranges."""
    sch = int8_scheme(scheme)
    rng = np.random.default_rng(seed)
    wmax, zp = sch.weight_max, sch.act_zero_point
    w = rng.choice([-wmax, wmax], size=(k, n))
    w[:, 0], w[:, 1] = wmax, -wmax  # whole columns of one sign
    w[:, 2] = rng.integers(-wmax, wmax + 1, k)
    top, bottom = zp + sch.act_max, zp - sch.act_max
    a = rng.integers(bottom, top + 1, (16, k))
    a[0], a[1] = top, bottom
    a[2] = np.where(w[:, 3] > 0, top, bottom)
    a[3] = np.where(w[:, 3] > 0, bottom, top)
    return a.astype(np.uint8), w.astype(np.int8), zp


def check_scheme(scheme: str) -> dict[str, Any]:
    """One MatMulInteger node at ``scheme``'s extremes on this CPU, against numpy."""
    a, w, zp = scheme_extremes(scheme)
    return _compare(f"MatMulInteger at the extremes of {scheme}", a, w, zp, _run_one_node(a, w, zp))
