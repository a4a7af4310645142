"""The CPU kernel of ai.embedrt::PackedMatMul (csrc/dense_cpu.cc): a float64-accurate Linear on every ISA
path,
bit-identical across ISA paths, thread counts, batch sizes and weight packing (at load or per call), its
attention layouts pure data movement, and bad inputs refused with a message."""

from __future__ import annotations

import numpy as np
import pytest
from reference import dense_custom, dense_standard
from reference import session as _session

F32 = np.float32
# (x shape, N): one text of MiniLM (27 rows), a batch, tails of every kind (rows not a multiple of the 14-row
# tile, N not a multiple of the 32-column panel, odd K), a single row, and a 2-D input
CASES = [
    ((1, 27, 384), 384),
    ((1, 27, 384), 1536),
    ((2, 19, 1536), 384),
    ((3, 5, 17), 45),
    ((1, 1, 8), 8),
    ((4, 33, 64), 96),
    ((7, 50), 33),
    ((2, 3, 40), 1),
]


def _linear(rng, k, n, bias=True):
    w = (rng.standard_normal((k, n)) / np.sqrt(max(k, 1))).astype(F32)
    return w, (rng.standard_normal(n).astype(F32) if bias else None)


def _run(model, x, library, threads=0, **feeds):
    return _session(model, library, threads).run(None, {"x": x, **feeds})[0]


@pytest.mark.parametrize("bias", [True, False])
def test_matches_float64_and_the_standard_linear(ops_library, isa, bias):
    rng = np.random.default_rng(3)
    for shape, n in CASES:
        x = rng.standard_normal(shape).astype(F32)
        w, b = _linear(rng, shape[-1], n, bias)
        got = _run(dense_custom(w, b, len(shape)), x, ops_library)
        exact = x.astype(np.float64) @ w.astype(np.float64) + (b if b is not None else 0.0)
        standard = _run(dense_standard(w, b, len(shape)), x, None)
        assert got.shape == shape[:-1] + (n,) and got.dtype == F32
        # fp32 sums of K terms against the float64 result: a few ulps of the terms' magnitude
        scale = np.abs(x).max() * np.abs(w).max() * np.sqrt(shape[-1]) + 1.0
        assert np.abs(got - exact).max() <= 1e-6 * scale, (shape, n)
        assert np.abs(got - standard).max() <= 1e-6 * scale, (shape, n)


def test_isa_paths_threads_and_packing_are_bit_identical(ops_library, monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 29, 96)).astype(F32)
    w, b = _linear(rng, 96, 80)
    base = _run(dense_custom(w, b, 3), x, ops_library, threads=1)
    for isa in ("scalar", "avx2", "avx512"):
        monkeypatch.setenv("EMBEDRT_OPS_ISA", isa)
        np.testing.assert_array_equal(
            _run(dense_custom(w, b, 3), x, ops_library, threads=2), base, err_msg=isa
        )
    monkeypatch.delenv("EMBEDRT_OPS_ISA")
    # W as a graph input: packed per call, the same numbers
    np.testing.assert_array_equal(_run(dense_custom(w, b, 3, weight_input=True), x, ops_library, W=w), base)


def test_rows_do_not_depend_on_the_batch(ops_library):
    # NOTE: each output element is one k-ordered sum whatever the tiling: a row alone equals the row in any
    # batch, bit for bit (MLAS does not promise that)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((70, 384)).astype(F32)
    w, b = _linear(rng, 384, 384)
    sess = _session(dense_custom(w, b, 2), ops_library)
    full = sess.run(None, {"x": x})[0]
    for m in (1, 2, 13, 14, 15, 27, 56, 57):
        np.testing.assert_array_equal(sess.run(None, {"x": x[:m]})[0], full[:m], err_msg=str(m))


def test_head_layouts_are_pure_data_movement(ops_library):
    rng = np.random.default_rng(9)
    B, S, K, H, D = 3, 11, 48, 4, 32
    x = rng.standard_normal((B, S, K)).astype(F32)
    w, b = _linear(rng, K, H * D)
    plain = _run(dense_custom(w, b, 3), x, ops_library)
    heads = _run(dense_custom(w, b, 3, head_size=D), x, ops_library)
    assert heads.shape == (B, H, S, D)
    np.testing.assert_array_equal(heads, plain.reshape(B, S, H, D).transpose(0, 2, 1, 3))
    w2, b2 = _linear(rng, H * D, 40)
    merged = _run(dense_custom(w2, b2, 4, heads_in=1), heads, ops_library)
    assert merged.shape == (B, S, 40)
    np.testing.assert_array_equal(merged, _run(dense_custom(w2, b2, 3), plain, ops_library))


def test_an_empty_sum_gives_the_bias(ops_library):
    # K = 0: x @ W is all zeros, so y is the bias in every row (and zeros without one), as MatMul + Add
    rng = np.random.default_rng(12)
    w, b = np.zeros((0, 24), F32), rng.standard_normal(24).astype(F32)
    x = np.zeros((2, 3, 0), F32)
    got = _run(dense_custom(w, b, 3, weight_input=True), x, ops_library, W=w)
    assert got.shape == (2, 3, 24)
    np.testing.assert_array_equal(got, np.broadcast_to(b, (2, 3, 24)))
    np.testing.assert_array_equal(_run(dense_custom(w, None, 3, weight_input=True), x, ops_library, W=w), 0)


def test_bad_inputs_are_refused_with_a_message(ops_library):
    rng = np.random.default_rng(11)
    w, b = _linear(rng, 16, 32)
    with pytest.raises(Exception, match=r"PackedMatMul: x \[2, 5, 12\] does not match W \[16, 32\]"):
        _run(dense_custom(w, b, 3), rng.standard_normal((2, 5, 12)).astype(F32), ops_library)
    with pytest.raises(Exception, match="head_size must be 0 or a positive multiple of 16, got 8"):
        _session(dense_custom(w, b, 3, head_size=8), ops_library)
    with pytest.raises(Exception, match="heads_in must be 0 or 1"):
        _session(dense_custom(w, b, 3, heads_in=2), ops_library)
    with pytest.raises(Exception, match=r"heads_in=1 needs x \[batch, heads, sequence, head_size\]"):
        _run(dense_custom(w, b, 3, heads_in=1), rng.standard_normal((2, 5, 16)).astype(F32), ops_library)
    with pytest.raises(Exception, match=r"bias must be float \[32\]"):
        model = dense_custom(w, rng.standard_normal(31).astype(F32), 3)
        _run(model, rng.standard_normal((2, 5, 16)).astype(F32), ops_library)
