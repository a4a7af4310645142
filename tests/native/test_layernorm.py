"""The CPU kernel of ai.embedrt::AddLayerNorm (csrc/layernorm.h): the residual add and LayerNormalization of
the exported graph, to float rounding, and the following QuantizePerToken bit for bit on its own output; the
same bits on every ISA path this CPU has; batch-invariant; typed errors."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from reference import _model
from reference import session as _session

F32 = np.float32


def _outs():
    return [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("q", TensorProto.UINT8, None),
        helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
    ]


def _ins():
    return [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("x", "r")]


def _params(n, seed=0):
    rng = np.random.default_rng(seed)
    g, b = rng.standard_normal(n).astype(F32), rng.standard_normal(n).astype(F32)
    return [numpy_helper.from_array(g, "g"), numpy_helper.from_array(b, "b")]


def add_layernorm(n: int, eps: float, qmax: int) -> bytes:
    node = helper.make_node(
        "AddLayerNorm", ["x", "r", "g", "b"], ["y", "q", "s"], domain="ai.embedrt", epsilon=eps, qmax=qmax
    )
    return _model([node], _ins(), _outs(), _params(n))


def standard_chain(n: int, eps: float, qmax: int) -> bytes:
    """Add, LayerNormalization (onnxruntime's), then the native QuantizePerToken on its output."""
    nodes = [
        helper.make_node("Add", ["x", "r"], ["v"]),
        helper.make_node("LayerNormalization", ["v", "g", "b"], ["y"], axis=-1, epsilon=eps),
        helper.make_node("QuantizePerToken", ["y"], ["q", "s"], domain="ai.embedrt", qmax=max(qmax, 1)),
    ]
    return _model(nodes, _ins(), _outs(), _params(n))


def quantize_only(qmax: int) -> bytes:
    node = helper.make_node("QuantizePerToken", ["y"], ["q", "s"], domain="ai.embedrt", qmax=qmax)
    return _model(
        [node],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        _outs()[1:],
    )


SHAPES = [
    ((2, 7, 384), (2, 7, 384)),
    ((3, 5, 17), (3, 5, 17)),
    ((4, 33, 384), (1, 33, 384)),
    ((1, 1), (1, 1)),
]


@pytest.mark.parametrize(("xs", "rs"), SHAPES)
@pytest.mark.parametrize("qmax", [127, 63])
def test_add_layernorm_equals_the_graphs_chain(ops_library, isa, xs, rs, qmax):
    rng = np.random.default_rng(len(xs) + xs[-1])
    n = xs[-1]
    feeds = {"x": (rng.standard_normal(xs) * 3).astype(F32), "r": rng.standard_normal(rs).astype(F32)}
    y, q, s = _session(add_layernorm(n, 1e-12, qmax), ops_library).run(None, feeds)
    y_std, _, _ = _session(standard_chain(n, 1e-12, qmax), ops_library).run(None, feeds)
    np.testing.assert_allclose(y, y_std, rtol=0, atol=4e-6 * max(1.0, float(np.abs(y_std).max())))
    # float64 reference
    v = feeds["x"].astype(np.float64) + feeds["r"].astype(np.float64)
    mean = v.mean(-1, keepdims=True)
    ref = (v - mean) / np.sqrt(((v - mean) ** 2).mean(-1, keepdims=True) + 1e-12)
    g, b = (numpy_helper.to_array(t).astype(np.float64) for t in _params(n))
    ref = ref * g + b
    np.testing.assert_allclose(y, ref, rtol=0, atol=4e-6 * max(1.0, float(np.abs(ref).max())))
    # its quantization is QuantizePerToken's of its own y, bit for bit
    q_ref, s_ref = _session(quantize_only(qmax), ops_library).run(None, {"y": y})
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(s, s_ref)


def test_without_quantization_the_extra_outputs_are_empty(ops_library):
    rng = np.random.default_rng(3)
    feeds = {
        "x": rng.standard_normal((2, 3, 32)).astype(F32),
        "r": rng.standard_normal((2, 3, 32)).astype(F32),
    }
    y, q, s = _session(add_layernorm(32, 1e-5, 0), ops_library).run(None, feeds)
    assert y.shape == (2, 3, 32) and q.shape == (2, 3, 0) and s.shape == (2, 3, 0)
    y8, _, _ = _session(add_layernorm(32, 1e-5, 127), ops_library).run(None, feeds)
    np.testing.assert_array_equal(y, y8)


def test_add_layernorm_is_the_same_bits_on_every_isa_path(ops_library, monkeypatch):
    from embedrt.runtime.native import ISAS, cpu_kernels

    paths = ISAS[: ISAS.index(cpu_kernels()["cpu_isa"]) + 1]
    if len(paths) < 2:
        pytest.skip("this CPU has the scalar path only")
    rng = np.random.default_rng(4)
    feeds = {
        "x": rng.standard_normal((3, 9, 389)).astype(F32),
        "r": rng.standard_normal((3, 9, 389)).astype(F32),
    }
    outs = {}
    for path in paths:
        monkeypatch.setenv("EMBEDRT_OPS_ISA", path)
        outs[path] = _session(add_layernorm(389, 1e-12, 127), ops_library).run(None, feeds)
    for path in paths[1:]:
        for a, b in zip(outs[path], outs[paths[0]], strict=True):
            np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=f"{path} vs {paths[0]}")


def test_add_layernorm_is_batch_invariant(ops_library):
    rng = np.random.default_rng(5)
    feeds = {
        "x": rng.standard_normal((8, 5, 384)).astype(F32),
        "r": rng.standard_normal((8, 5, 384)).astype(F32),
    }
    model = add_layernorm(384, 1e-12, 127)
    whole = _session(model, ops_library, threads=2).run(None, feeds)
    one = _session(model, ops_library, threads=1).run(None, {k: v[6:7] for k, v in feeds.items()})
    for a, b in zip(whole, one, strict=True):
        np.testing.assert_array_equal(a[6:7], b)


@pytest.mark.parametrize(
    ("xs", "rs", "message"),
    [((2, 3, 8), (2, 3, 7), "residual must have x's shape"), ((2, 3, 8), (2, 1, 8), "residual must have")],
)
def test_add_layernorm_names_bad_shapes(ops_library, xs, rs, message):
    feeds = {"x": np.zeros(xs, F32), "r": np.zeros(rs, F32)}
    with pytest.raises(Exception, match=message):
        _session(add_layernorm(8, 1e-5, 127), ops_library).run(None, feeds)


def test_add_layernorm_refuses_bad_attributes(ops_library):
    with pytest.raises(Exception, match="qmax must be in"):
        _session(add_layernorm(8, 1e-5, 200), ops_library)
    node = helper.make_node("AddLayerNorm", ["x", "r", "g", "b"], ["y", "q", "s"], domain="ai.embedrt")
    with pytest.raises(Exception, match="attribute epsilon"):
        _session(_model([node], _ins(), _outs(), _params(8)), ops_library)
