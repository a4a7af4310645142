"""The CPU kernel of ai.embedrt::Attention (csrc/attention.h): what the exported graph's MatMul(Q, K^T),
Mul, Add(mask bias), Softmax, MatMul(P, V) compute, to float rounding; the same bits on every ISA path this
CPU has; batch-invariant; typed errors for bad shapes."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from reference import _model
from reference import session as _session

F32 = np.float32
MASKED = np.finfo(F32).min  # what transformers adds for a padded key


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _io():
    ins = [_vi("q", None), _vi("k", None), _vi("v", None), _vi("bias", None)]
    return ins, [_vi("y", None)]


def attention_custom(scale: float) -> bytes:
    ins, outs = _io()
    node = helper.make_node("Attention", ["q", "k", "v", "bias"], ["y"], domain="ai.embedrt", scale=scale)
    return _model([node], ins, outs)


def attention_standard(scale: float) -> bytes:
    ins, outs = _io()
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Mul", ["s", "c"], ["s2"]),
        helper.make_node("Add", ["s2", "bias"], ["s3"]),
        helper.make_node("Softmax", ["s3"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["y"]),
    ]
    c = numpy_helper.from_array(np.array(scale, F32), "c")
    return _model(nodes, ins, outs, [c], custom=False)


def _feeds(rng, B, H, S, D, bias_shape, pad=3):
    f = {n: (rng.standard_normal((B, H, S, D)) * 2).astype(F32) for n in ("q", "k", "v")}
    bias = np.zeros(bias_shape, F32)
    if pad and S > pad:
        bias[..., S - pad :] = MASKED  # the last keys padded (every row of a broadcast bias)
    f["bias"] = bias
    return f


CASES = [
    (2, 12, 32, 32, "b11s"),
    (1, 2, 1, 16, "b11s"),  # one token
    (3, 4, 17, 32, "b11s"),  # a sequence that is not a multiple of the vector width
    (2, 3, 40, 24, "b1ss"),  # a head size that is not either; a [B, 1, S, S] bias
    (2, 2, 70, 64, "11 1s"),  # a bias broadcast over the batch
]


def _bias_shape(kind, B, S):
    return {"b11s": (B, 1, 1, S), "b1ss": (B, 1, S, S), "11 1s": (1, 1, 1, S)}[kind]


@pytest.mark.parametrize(("B", "H", "S", "D", "kind"), CASES)
def test_attention_equals_the_graphs_chain(ops_library, isa, B, H, S, D, kind):
    rng = np.random.default_rng(S * D)
    scale = float(1 / np.sqrt(D))
    feeds = _feeds(rng, B, H, S, D, _bias_shape(kind, B, S))
    got = _session(attention_custom(scale), ops_library).run(None, feeds)[0]
    want = _session(attention_standard(scale)).run(None, feeds)[0]
    assert got.shape == (B, H, S, D)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * max(1.0, float(np.abs(want).max())))
    # a float64 reference of the same formula
    s = np.einsum("bhid,bhjd->bhij", feeds["q"].astype(np.float64), feeds["k"].astype(np.float64)) * scale
    s = s + feeds["bias"].astype(np.float64)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    ref = np.einsum("bhij,bhjd->bhid", p, feeds["v"].astype(np.float64))
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6 * max(1.0, float(np.abs(ref).max())))


def test_attention_is_the_same_bits_on_every_isa_path(ops_library, monkeypatch):
    from embedrt.runtime.native import ISAS, cpu_kernels

    paths = ISAS[: ISAS.index(cpu_kernels()["cpu_isa"]) + 1]
    if len(paths) < 2:
        pytest.skip("this CPU has the scalar path only")
    rng = np.random.default_rng(7)
    feeds = _feeds(rng, 2, 3, 37, 32, (2, 1, 1, 37))
    outs = {}
    for path in paths:
        monkeypatch.setenv("EMBEDRT_OPS_ISA", path)
        outs[path] = _session(attention_custom(0.17), ops_library).run(None, feeds)[0].view(np.uint32)
    for path in paths[1:]:
        np.testing.assert_array_equal(outs[path], outs[paths[0]], err_msg=f"{path} vs {paths[0]}")


def test_attention_is_batch_and_thread_invariant(ops_library):
    rng = np.random.default_rng(8)
    feeds = _feeds(rng, 6, 4, 29, 32, (6, 1, 1, 29))
    model = attention_custom(0.2)
    whole = _session(model, ops_library, threads=2).run(None, feeds)[0]
    one = _session(model, ops_library, threads=1).run(None, {k: v[4:5] for k, v in feeds.items()})[0]
    np.testing.assert_array_equal(whole[4:5], one)


def test_padded_keys_get_no_weight(ops_library):
    rng = np.random.default_rng(9)
    feeds = _feeds(rng, 1, 2, 8, 16, (1, 1, 1, 8), pad=3)
    got = _session(attention_custom(0.25), ops_library).run(None, feeds)[0]
    feeds["v"][..., 5:, :] = 1e6  # the padded keys' values: not seen
    again = _session(attention_custom(0.25), ops_library).run(None, feeds)[0]
    np.testing.assert_array_equal(got, again)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"k": (2, 3, 5, 16)}, "q, k and v must all be"),
        ({"bias": (2, 1, 1, 5)}, "bias must be"),
        ({"bias": (3, 1, 1, 4)}, "bias must be"),
        ({"q": (2, 3, 4)}, "q, k and v must all be"),
    ],
)
def test_attention_names_bad_shapes(ops_library, shapes, message):
    dims = {"q": (2, 3, 4, 16), "k": (2, 3, 4, 16), "v": (2, 3, 4, 16), "bias": (2, 1, 1, 4)} | shapes
    feeds = {n: np.zeros(s, F32) for n, s in dims.items()}
    with pytest.raises(Exception, match=message):
        _session(attention_custom(1.0), ops_library).run(None, feeds)


def test_attention_needs_its_scale(ops_library):
    ins, outs = _io()
    model = _model(
        [helper.make_node("Attention", ["q", "k", "v", "bias"], ["y"], domain="ai.embedrt")], ins, outs
    )
    with pytest.raises(Exception, match="attribute scale"):
        _session(model, ops_library)
