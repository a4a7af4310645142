"""The exact GELU of the native epilogues (csrc/gelu.h): PackedMatMul(activation="gelu") and RequantizeRows.
Within an ulp of erf of the true GELU, bit-identical on every ISA path this CPU has, and RequantizeRows equal
to the three ops it fuses, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from reference import dense_custom, requantize_chain, requantize_custom
from reference import session as _session

F32 = np.float32
scipy_special = pytest.importorskip("scipy.special")


def _sweep() -> np.ndarray:
    rng = np.random.default_rng(0)
    edges = [0.0, -0.0, 1e-30, -1e-30, 0.921875 / 0.70710677, 5 / 0.70710677, 40.0, -40.0, 1e30, -1e30]
    x = np.concatenate(
        [
            np.linspace(-12, 12, 1 << 17, dtype=F32),
            (rng.standard_normal(1 << 16) * 3).astype(F32),
            np.array(edges, F32),
        ]
    )
    return np.concatenate([x, np.zeros((-len(x)) % 64, F32)]).reshape(-1, 64)


def _gelu(x: np.ndarray, library) -> np.ndarray:
    # NOTE: x @ I is exactly x (one product by 1, the rest zeros), so this is the epilogue alone
    model = dense_custom(np.eye(x.shape[-1], dtype=F32), None, 2, activation="gelu")
    return _session(model, library).run(None, {"x": x})[0]


def _graph_ops_reference(x: np.ndarray) -> np.ndarray:
    """The graph's float32 operations with a correctly rounded erf."""
    a = x * F32(0.70710677)
    e = scipy_special.erf(a.astype(np.float64)).astype(F32)
    return (x * (e + F32(1))) * F32(0.5)


def test_gelu_is_within_an_ulp_of_erf_of_the_graphs_operations(ops_library, isa):
    x = _sweep()
    y = _gelu(x, ops_library)
    ref = _graph_ops_reference(x)
    # erf within 1 ulp (<= 6e-8 near |erf| = 1) moves the result by at most |x| * 0.5 * 1.2e-7, plus the
    # rounding of the two multiplications
    bound = np.abs(x) * 6e-8 + 2 * np.spacing(np.abs(ref))
    assert np.all(np.abs(y.astype(np.float64) - ref) <= bound)
    assert np.all(y[x == 0] == 0)
    big = x > 6
    np.testing.assert_array_equal(y[big], x[big])  # erf = 1: Gelu(x) = x
    assert np.all(y[x < -6] == 0)


def test_gelu_agrees_with_torch(ops_library):
    torch = pytest.importorskip("torch")
    x = _sweep()
    x = x[np.abs(x).max(-1) < 100]
    ref = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    # NOTE: torch's own vectorised erf is the less exact of the two (up to ~12 ulp near |erf| = 1, where
    # 1 + erf cancels): about 1.2e-6 at x = -3.3
    np.testing.assert_allclose(_gelu(x, ops_library), ref, rtol=0, atol=2e-6)


def test_gelu_is_the_same_bits_on_every_isa_path(ops_library, monkeypatch):
    from embedrt.runtime.native import ISAS, cpu_kernels

    best = cpu_kernels()["cpu_isa"]
    paths = ISAS[: ISAS.index(best) + 1]
    if len(paths) < 2:
        pytest.skip(f"this CPU has the scalar path only ({best})")
    x = _sweep()
    outs = {}
    for path in paths:
        monkeypatch.setenv("EMBEDRT_OPS_ISA", path)
        outs[path] = _gelu(x, ops_library).view(np.uint32)
    for path in paths[1:]:
        np.testing.assert_array_equal(outs[path], outs[paths[0]], err_msg=f"{path} vs {paths[0]}")


def test_gelu_epilogue_equals_the_matmul_then_gelu(ops_library, isa):
    rng = np.random.default_rng(3)
    for m, k, n in ((1, 384, 1536), (27, 384, 1536), (5, 17, 50), (3, 0, 40)):
        w = rng.standard_normal((k, n)).astype(F32) * F32(0.05)
        b = rng.standard_normal(n).astype(F32)
        x = rng.standard_normal((m, k)).astype(F32)
        plain = _session(dense_custom(w, b, 2), ops_library).run(None, {"x": x})[0]
        fused = _session(dense_custom(w, b, 2, activation="gelu"), ops_library).run(None, {"x": x})[0]
        np.testing.assert_array_equal(fused, _gelu(plain, ops_library))


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"activation": "relu"}, 'activation must be "gelu"'),
        ({"activation": "gelu", "head_size": 16}, "needs the plain layout"),
    ],
)
def test_packed_matmul_refuses_bad_activations(ops_library, attrs, message):
    w = np.ones((32, 32), F32)
    with pytest.raises(Exception, match=message):
        _session(dense_custom(w, None, 3, **attrs), ops_library)


def _int8_feeds(rng, shape, bias):
    feeds = {
        "acc": rng.integers(-(2**18), 2**18, size=shape, dtype=np.int32),
        "rs": rng.random(shape[:-1] + (1,), dtype=F32) * F32(0.05),
        "cs": rng.random(shape[-1], dtype=F32) * F32(1e-3),
    }
    if bias:
        feeds["b"] = rng.standard_normal(shape[-1]).astype(F32)
    return feeds


@pytest.mark.parametrize("gelu", [True, False])
@pytest.mark.parametrize("qmax", [127, 63])
def test_requantize_equals_dequantize_gelu_quantize_bit_for_bit(ops_library, isa, gelu, qmax):
    rng = np.random.default_rng(4)
    for shape in ((1, 1), (3, 5), (2, 7, 1536), (4, 33, 384), (2, 3, 17)):
        for bias in (False, True):
            feeds = _int8_feeds(rng, shape, bias)
            attrs = {"qmax": qmax} | ({"activation": "gelu"} if gelu else {})
            q, s = _session(requantize_custom(len(shape), bias, **attrs), ops_library).run(None, feeds)
            q_ref, s_ref = _session(
                requantize_chain(len(shape), bias, shape[-1], gelu, qmax), ops_library
            ).run(None, feeds)
            assert q.dtype == np.uint8 and q.shape == shape and s.shape == shape[:-1] + (1,)
            np.testing.assert_array_equal(s, s_ref)
            np.testing.assert_array_equal(q, q_ref)
            assert q.max() <= 2 * qmax + 1


def test_requantize_is_batch_invariant_and_thread_invariant(ops_library):
    rng = np.random.default_rng(5)
    feeds = _int8_feeds(rng, (64, 9, 1536), True)
    model = requantize_custom(3, True, activation="gelu")
    whole = _session(model, ops_library, threads=2).run(None, feeds)
    one = _session(model, ops_library, threads=1).run(
        None, {k: (v[3:4] if v.ndim == 3 else v) for k, v in feeds.items()}
    )
    np.testing.assert_array_equal(whole[0][3:4], one[0])
    np.testing.assert_array_equal(whole[1][3:4], one[1])


@pytest.mark.parametrize(
    ("attrs", "message"),
    [({"activation": "tanh"}, 'activation must be "gelu"'), ({"qmax": 128}, "qmax must be in")],
)
def test_requantize_refuses_bad_attributes(ops_library, attrs, message):
    with pytest.raises(Exception, match=message):
        _session(requantize_custom(2, False, **attrs), ops_library)


def test_requantize_names_a_bad_input(ops_library):
    sess = _session(requantize_custom(2, False), ops_library)
    feeds = {"acc": np.zeros((2, 8), np.int32), "rs": np.ones((2, 1), F32), "cs": np.ones(7, F32)}
    with pytest.raises(Exception, match=r"RequantizeRows: col_scale must be \[8\]"):
        sess.run(None, feeds)
