"""The export's graph rewrites for the native graphs (export/rewrites.py), on hand-built graphs:
fold_reshapes gives computed Reshape targets constant ones with the same meaning (0 = the input's dim,
-1 = the rest), leaves the ones it cannot express, and the rewritten graph computes the same thing at every
size."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from embedrt.export.rewrites import fold_reshapes


def _i64(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _model(nodes, inits, outputs):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _graph():
    """x = float(ids)[b, s, 1] * ones[8]: then four Reshapes whose targets come from Shape arithmetic."""
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["f", "ax2"], ["f3"]),
        helper.make_node("Mul", ["f3", "ones8"], ["x"]),  # [b, s, 8]
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "i0"], ["b"]),
        helper.make_node("Gather", ["shape", "i1"], ["s"]),
        helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
        helper.make_node("Unsqueeze", ["s", "ax0"], ["s1"]),
        # heads: [b, s, 2, 4] -> constant [0, 0, 2, 4]
        helper.make_node("Concat", ["b1", "s1", "c2", "c4"], ["t_heads"], axis=0),
        helper.make_node("Reshape", ["x", "t_heads"], ["heads"]),
        # flatten: [b*s, 8] -> [-1, 8]
        helper.make_node("Mul", ["b1", "s1"], ["bs"]),
        helper.make_node("Concat", ["bs", "c8"], ["t_flat"], axis=0),
        helper.make_node("Reshape", ["x", "t_flat"], ["flat"]),
        # two dims that vary and match nothing: [b*s, 1, 8] -> [s*b, 1, 8] is fine, but [s, b, 8] on [b, s, 8]
        # moves both: only one -1 is allowed, so this target stays computed
        helper.make_node("Concat", ["s1", "b1", "c8"], ["t_swap"], axis=0),
        helper.make_node("Reshape", ["x", "t_swap"], ["swap"]),
        # an already-constant target is left alone
        helper.make_node("Reshape", ["x", "t_const"], ["const"]),
    ]
    inits = [
        numpy_helper.from_array(np.ones(8, np.float32), "ones8"),
        _i64("ax0", [0]),
        _i64("ax2", [2]),
        _i64("i0", 0),
        _i64("i1", 1),
        _i64("c2", [2]),
        _i64("c4", [4]),
        _i64("c8", [8]),
        _i64("t_const", [0, -1]),
    ]
    return _model(nodes, inits, ["heads", "flat", "swap", "const"])


def _run(model, ids):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input_ids": ids})


def test_fold_reshapes_makes_targets_constant_with_the_same_meaning():
    model = _graph()
    sizes = ((1, 1), (2, 7), (5, 3))
    before = [_run(model, np.arange(b * s, dtype=np.int64).reshape(b, s)) for b, s in sizes]
    assert fold_reshapes(model) == 2
    targets = {n.output[0]: n.input[1] for n in model.graph.node if n.op_type == "Reshape"}
    consts = {t.name: numpy_helper.to_array(t).tolist() for t in model.graph.initializer}
    assert consts[targets["heads"]] == [0, 0, 2, 4]
    assert consts[targets["flat"]] == [-1, 8]
    assert targets["swap"] == "t_swap" and targets["const"] == "t_const"
    # the Concat of the folded targets is gone; the one still used by "swap" stays
    concats = [n.output[0] for n in model.graph.node if n.op_type == "Concat"]
    assert concats == ["t_swap"]
    # at sizes other than the three it evaluated: the same outputs
    for (b, s), ref in zip(sizes, before, strict=True):
        got = _run(model, np.arange(b * s, dtype=np.int64).reshape(b, s))
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_array_equal(g, r)


def test_fold_reshapes_without_computed_targets_is_a_no_op():
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["f", "t"], ["y"]),
    ]
    model = _model(nodes, [_i64("t", [-1])], ["y"])
    assert fold_reshapes(model) == 0
    assert [n.op_type for n in model.graph.node] == ["Cast", "Reshape"]
