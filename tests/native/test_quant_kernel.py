"""The CPU kernels of ai.embedrt::QuantizePerToken and ai.embedrt::DequantizeRows: bit-identical to numpy
(float32, the same operations in the same order) and to the standard-op chains that the int8 graph holds
(export/quantize.py), on every ISA path this CPU has."""

from __future__ import annotations

import numpy as np
import pytest
from reference import dequantize_custom, dequantize_standard, quantize_custom, quantize_standard
from reference import session as _session

F32 = np.float32


def quantize_numpy(x: np.ndarray, qmax: int = 127) -> tuple[np.ndarray, np.ndarray]:
    s = np.maximum(np.abs(x).max(-1, keepdims=True), F32(1e-12)) / F32(qmax)
    q = (np.round(x / s) + F32(qmax + 1)).astype(np.uint8)  # np.round: half to even, as ONNX Round
    return q, s.astype(F32)


SHAPES = [(1, 1), (3, 5), (2, 7, 16), (4, 33, 384), (5, 1031), (2, 3, 17), (64, 8, 48)]


def _activations(rng, shape):
    x = rng.standard_normal(shape).astype(F32) * F32(3.0)
    x.reshape(-1, shape[-1])[0] = 0.0  # an all-zero row: the eps scale, every byte 128
    rows = x.reshape(-1, shape[-1])
    if len(rows) > 2:
        rows[1, 0] = 250.0  # an outlier
    return x


def test_quantize_matches_numpy_and_the_standard_ops_bit_for_bit(ops_library, isa):
    rng = np.random.default_rng(1)
    for shape in SHAPES:
        x = _activations(rng, shape)
        # exact halves: x / scale lands on .5 for these, which must round to even
        if shape[-1] >= 4:
            x.reshape(-1, shape[-1])[-1, :4] = np.array([127.0, 0.5, 1.5, -2.5], F32)
        q, s = _session(quantize_custom(len(shape)), ops_library).run(None, {"x": x})
        q_std, s_std = _session(quantize_standard(len(shape))).run(None, {"x": x})
        q_np, s_np = quantize_numpy(x)
        assert q.dtype == np.uint8 and q.shape == shape and s.shape == shape[:-1] + (1,)
        np.testing.assert_array_equal(s, s_std)
        np.testing.assert_array_equal(q, q_std)
        np.testing.assert_array_equal(s, s_np)
        np.testing.assert_array_equal(q, q_np)
        assert (q.reshape(-1, shape[-1])[0] == 128).all()


def test_dequantize_matches_numpy_and_the_standard_ops_bit_for_bit(ops_library, isa):
    rng = np.random.default_rng(2)
    for shape in SHAPES:
        for bias in (False, True):
            acc = rng.integers(-(2**20), 2**20, size=shape, dtype=np.int32)
            feeds = {
                "acc": acc,
                "rs": rng.random(shape[:-1] + (1,), dtype=F32),
                "cs": rng.random(shape[-1], dtype=F32) * F32(1e-3),
            }
            if bias:
                feeds["b"] = rng.standard_normal(shape[-1]).astype(F32)
            y = _session(dequantize_custom(len(shape), bias), ops_library).run(None, feeds)[0]
            y_std = _session(dequantize_standard(len(shape), bias)).run(None, feeds)[0]
            y_np = (acc.astype(F32) * feeds["cs"]) * feeds["rs"]
            if bias:
                y_np = y_np + feeds["b"]
            assert y.dtype == F32 and y.shape == shape
            np.testing.assert_array_equal(y, y_std)
            np.testing.assert_array_equal(y, y_np)


def test_empty_rows(ops_library):
    x = np.zeros((0, 7, 16), F32)
    q, s = _session(quantize_custom(3), ops_library).run(None, {"x": x})
    assert q.shape == (0, 7, 16) and s.shape == (0, 7, 1)
    y = _session(dequantize_custom(2, True), ops_library).run(
        None,
        {
            "acc": np.zeros((0, 8), np.int32),
            "rs": np.zeros((0, 1), F32),
            "cs": np.ones(8, F32),
            "b": np.ones(8, F32),
        },
    )[0]
    assert y.shape == (0, 8)


def test_threads_split_rows_without_changing_bytes(ops_library):
    rng = np.random.default_rng(3)
    x = _activations(rng, (64, 128, 384))  # 8 Mi elements: many tasks
    one = _session(quantize_custom(3), ops_library, threads=1).run(None, {"x": x})
    many = _session(quantize_custom(3), ops_library, threads=2).run(None, {"x": x})
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)


def test_shape_inference_keeps_symbolic_dims(ops_library):
    q, s = _session(quantize_custom(3), ops_library).get_outputs()
    assert q.type == "tensor(uint8)" and q.shape == ["d0", "d1", "d2"]
    assert s.type == "tensor(float)" and s.shape == ["d0", "d1", 1]
    (y,) = _session(dequantize_custom(3, False), ops_library).get_outputs()
    assert y.type == "tensor(float)" and y.shape == ["d0", "d1", "d2"]


def test_bad_column_scales_are_a_clear_error(ops_library):
    s = _session(dequantize_custom(2, False), ops_library)
    feeds = {"acc": np.zeros((3, 8), np.int32), "rs": np.ones((3, 1), F32), "cs": np.ones(7, F32)}
    with pytest.raises(Exception, match=r"col_scale must be \[8\] to match acc \[3, 8\], got \[7\]"):
        s.run(None, feeds)


def test_bad_row_scales_and_bias_are_clear_errors(ops_library):
    s = _session(dequantize_custom(2, True), ops_library)
    feeds = {
        "acc": np.zeros((3, 8), np.int32),
        "rs": np.ones((2, 1), F32),
        "cs": np.ones(8, F32),
        "b": np.ones(8, F32),
    }
    with pytest.raises(Exception, match=r"row_scale must be acc's shape with the last dim 1"):
        s.run(None, feeds)
    feeds["rs"] = np.ones((3, 1), F32)
    feeds["b"] = np.ones(5, F32)
    with pytest.raises(Exception, match=r"bias must be float \[8\] to match acc \[3, 8\], got \[5\]"):
        s.run(None, feeds)


def test_head_layouts_are_pure_data_movement(ops_library, isa):
    # DequantizeRows(head_size=D) = DequantizeRows then Reshape + Transpose to [B, H, S, D];
    # QuantizePerToken(heads_in=1) on [B, H, S, D] = Transpose + Reshape to [B, S, H*D] then QuantizePerToken
    from reference import dequantize_custom, quantize_custom

    rng = np.random.default_rng(13)
    B, S, H, D = 3, 7, 4, 16
    N = H * D
    acc = rng.integers(-20000, 20000, (B, S, N), dtype=np.int32)
    rs = rng.random((B, S, 1), dtype=F32) * F32(1e-3)
    cs, bias = rng.random(N, dtype=F32), rng.standard_normal(N).astype(F32)
    feeds = {"acc": acc, "rs": rs, "cs": cs, "b": bias}
    plain = _session(dequantize_custom(3, True), ops_library).run(None, feeds)[0]
    heads = _session(dequantize_custom(3, True, head_size=D), ops_library).run(None, feeds)[0]
    assert heads.shape == (B, H, S, D)
    np.testing.assert_array_equal(heads, plain.reshape(B, S, H, D).transpose(0, 2, 1, 3))
    x = _activations(rng, (B, H, S, D))
    q, s = _session(quantize_custom(4, heads_in=1), ops_library).run(None, {"x": x})
    q_ref, s_ref = _session(quantize_custom(3), ops_library).run(
        None, {"x": x.transpose(0, 2, 1, 3).reshape(B, S, N)}
    )
    assert q.shape == (B, S, N) and s.shape == (B, S, 1)
    np.testing.assert_array_equal(q, q_ref)
    np.testing.assert_array_equal(s, s_ref)


def test_head_layout_errors(ops_library):
    from reference import dequantize_custom, quantize_custom

    with pytest.raises(Exception, match="heads_in must be 0 or 1, got 3"):
        _session(quantize_custom(4, heads_in=3), ops_library)
    with pytest.raises(Exception, match=r"heads_in=1 needs x \[batch, heads, sequence, head_size\]"):
        _session(quantize_custom(3, heads_in=1), ops_library).run(None, {"x": np.ones((2, 3, 4), F32)})
    sess = _session(dequantize_custom(3, False, head_size=16), ops_library)
    with pytest.raises(Exception, match="head_size 16 needs acc"):
        sess.run(
            None,
            {"acc": np.ones((1, 2, 24), np.int32), "rs": np.ones((1, 2, 1), F32), "cs": np.ones(24, F32)},
        )


def test_quantize_at_7_bits_matches_numpy_bit_for_bit(ops_library, isa):
    # qmax = 63 (the w8a7 scheme): q - 64 in [-63, 63], stored as u8 in [1, 127]
    rng = np.random.default_rng(4)
    for shape in SHAPES:
        x = _activations(rng, shape)
        q, s = _session(quantize_custom(len(shape), qmax=63), ops_library).run(None, {"x": x})
        q_np, s_np = quantize_numpy(x, 63)
        np.testing.assert_array_equal(s, s_np)
        np.testing.assert_array_equal(q, q_np)
        assert q.min() >= 1 and q.max() <= 127 and (q.reshape(-1, shape[-1])[0] == 64).all()
    with pytest.raises(Exception, match=r"qmax must be in \[1, 127\], got 128"):
        _session(quantize_custom(2, qmax=128), ops_library)
