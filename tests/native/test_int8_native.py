"""The int8 variant's native graph (``model.int8.fused.onnx``: QuantizePerToken, DequantizeRows with the
Linear biases folded in, RequantizeRows, Attention, AddLayerNorm, MeanPoolNormalize): written at export, run
by ``Encoder(variant="int8")``, batch-invariant, and the standard-op ``model.int8.onnx``'s vectors up to an
8-bit activation rounded one step the other way (its float ops are embedrt's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedrt import Encoder, NativeOpsError, export_model
from embedrt.export.fuse import INT8_PROBE_ATOL
from embedrt.export.quantize import Int8Config
from embedrt.export.verify import probe_texts
from embedrt.manifest import read_manifest
from embedrt.runtime import native
from helpers import op_counts

# NOTE: the export's own probe set: empty and blank strings, texts past max_seq_length, unicode, literal
# special tokens, code
TEXTS = probe_texts()


def _export(tiny_factory, tmp_path_factory, name: str, int8: Int8Config | None = None, **kwargs) -> Path:
    st_dir, _ = tiny_factory(export=False, **kwargs)
    out = tmp_path_factory.mktemp(name) / "export"
    export_model(str(st_dir), out, variants=["fp32", "int8"], int8=int8)
    return out


@pytest.fixture(scope="module")
def tiny_int8(tiny_factory, tmp_path_factory):
    return _export(
        tiny_factory, tmp_path_factory, "int8n", arch="bert", pooling="mean", normalize=True, seed=21
    )


def test_export_writes_the_int8_native_graph(tiny_int8):
    m = json.loads((tiny_int8 / "embedrt.json").read_text())
    entry = m["variants"]["int8"]["native"]
    assert entry["file"] == "model.int8.fused.onnx" and entry["cpu_only"] is True
    assert entry["folded_bias"] == 12  # 2 layers x 6 Linears, each with its bias
    standard, fused = op_counts(tiny_int8 / "model.int8.onnx"), op_counts(tiny_int8 / entry["file"])
    # the standard int8 graph keeps standard ops only
    assert not {"QuantizePerToken", "DequantizeRows", "MeanPoolNormalize"} & set(standard)
    # Q/K/V share one quantization: 4 groups per layer; 6 Linears per layer; the FFN's rescale, GELU and
    # requantization are one RequantizeRows (one per layer), which replaces a DequantizeRows and a
    # QuantizePerToken
    assert entry["requantized"] == 2 and fused["RequantizeRows"] == 2
    # each residual Add + LayerNormalization (the embeddings' and two per layer) is one AddLayerNorm, which
    # also quantizes the input of the Q/K/V and FFN groups: only the attention contexts' QuantizePerToken stay
    assert entry["add_layernorms"] == 5 and fused["AddLayerNorm"] == 5 and "LayerNormalization" not in fused
    assert fused["QuantizePerToken"] == 8 - 2 - 4 and fused["DequantizeRows"] == 12 - 2
    assert fused["MatMulInteger"] == 12 and fused["MeanPoolNormalize"] == 1
    assert "Erf" not in fused and standard["Erf"] == 2
    # each layer's softmax attention is one Attention: no Softmax, no float MatMul left
    assert entry["attention"] == 2 and fused["Attention"] == 2
    assert "Softmax" not in fused and "MatMul" not in fused and standard["Softmax"] == 2
    # the elementwise chains are gone
    for op in ("Round", "Abs", "ReduceMax"):
        assert op not in fused, op
    # the +128 offsets, the folded bias Adds, the GELU's + 1, the attention's mask Add, the residual Adds
    assert fused["Add"] == standard["Add"] - 8 - 12 - 2 - 2 - 5
    assert standard["Cast"] - fused["Cast"] >= 8 + 12  # uint8 casts, int32 -> float casts
    assert standard["Mul"] - fused["Mul"] >= 2 * 12  # column and row rescales
    # the attention: Q, K, V rescaled heads-first and the context quantized from heads-first (2 layers x 4);
    # the keys' last-two-dims Transpose went into Attention; the Reshape targets constant
    assert entry["head_layouts"] == 8 and entry["constant_reshapes"] >= 8
    assert "Transpose" not in fused and standard["Transpose"] == 8
    assert fused["Reshape"] < standard["Reshape"] and fused["Shape"] < standard["Shape"]


def _close_to_the_standard_graph(a: np.ndarray, b: np.ndarray, export: Path) -> None:
    """The native int8 graph against the standard one: its float ops are embedrt's, so an 8-bit activation
    may round a step the other way: close (INT8_PROBE_ATOL, cosine >= 0.99), and gated against fp32 itself."""
    m = json.loads((export / "embedrt.json").read_text())
    entry = m["variants"]["int8"]["native"]
    # the library is built here: the probe holds the graph's own outputs, checked to float rounding at load
    assert entry["probe_of"] == "this graph" and entry["probe_atol"] == 1e-6
    assert entry["quality"]["mean_cosine"] >= m["variants"]["int8"]["thresholds"]["min_mean_cosine"]
    assert entry["quality"]["min_cosine"] >= m["variants"]["int8"]["thresholds"]["min_cosine"]
    assert entry["quality"]["batch_invariance_min_cosine"] >= 0.99999
    assert np.abs(a - b).max() <= INT8_PROBE_ATOL
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    assert cos.min() >= 0.99


def test_export_writes_the_packed_int8_twin(ops_library, tiny_int8):
    native = json.loads((tiny_int8 / "embedrt.json").read_text())["variants"]["int8"]["native"]
    packed = native["packed"]
    assert packed["file"] == "model.int8.packed.onnx" and packed["op"] == "ai.embedrt::PackedMatMulInteger"
    # it shares the native graph's probe, and gave its outputs bit for bit at export
    assert packed["probe"] == native["probe"] and packed["export_check_max_abs_diff"] == 0.0
    ops, fused = op_counts(tiny_int8 / packed["file"]), op_counts(tiny_int8 / native["file"])
    assert (
        "MatMulInteger" not in ops and ops["PackedMatMulInteger"] == fused["MatMulInteger"] == packed["gemms"]
    )
    assert {k: v for k, v in ops.items() if k != "PackedMatMulInteger"} == {
        k: v for k, v in fused.items() if k != "MatMulInteger"
    }


def test_the_packed_int8_twin_gives_the_same_bits(ops_library, tiny_int8, monkeypatch):
    monkeypatch.setenv(
        "EMBEDRT_PACKED_MATMUL", "1"
    )  # on every CPU with AVX2, not only where it is the default
    from embedrt.runtime import native

    if native.int8_packed_off():
        pytest.skip(native.int8_packed_off())
    packed = Encoder(tiny_int8, device="cpu", variant="int8")
    assert "model.int8.packed.onnx" in str(packed.graph_status), str(packed.graph_status)
    monkeypatch.setenv("EMBEDRT_PACKED_MATMUL", "0")
    fused = Encoder(tiny_int8, device="cpu", variant="int8")
    assert "model.int8.fused.onnx" in str(fused.graph_status), str(fused.graph_status)
    a = packed.encode(TEXTS)
    np.testing.assert_array_equal(a, fused.encode(TEXTS))
    np.testing.assert_array_equal(np.stack([packed.encode(t) for t in TEXTS]), a)  # batch-invariant


def test_encoder_runs_it_and_is_close_to_the_standard_int8_graph(ops_library, tiny_int8):
    native_enc = Encoder(tiny_int8, device="cpu", variant="int8")
    standard = Encoder(tiny_int8, device="cpu", variant="int8", native=False)
    assert native_enc.native is True and str(native_enc.graph_status).startswith("native:")
    a, b = native_enc.encode(TEXTS), standard.encode(TEXTS)
    _close_to_the_standard_graph(a, b, tiny_int8)
    # still batch-invariant: the quantization scale of a token depends on that token only
    alone = np.stack([native_enc.encode(t) for t in TEXTS])
    assert np.abs(alone - a).max() <= 1e-6


def test_prompt_excluded_from_pooling(ops_library, tiny_factory, tmp_path_factory):
    out = _export(
        tiny_factory,
        tmp_path_factory,
        "int8p",
        arch="bert",
        pooling="mean",
        normalize=True,
        include_prompt=False,
        prompts={"query": "query: "},
        seed=22,
    )
    a = Encoder(out, device="cpu", variant="int8", native=True).encode(TEXTS, prompt_name="query")
    b = Encoder(out, device="cpu", variant="int8", native=False).encode(TEXTS, prompt_name="query")
    _close_to_the_standard_graph(a, b, out)


def test_pooling_without_a_fused_op_still_gets_native_quantization(
    ops_library, tiny_factory, tmp_path_factory
):
    out = _export(
        tiny_factory, tmp_path_factory, "int8c", arch="mpnet", pooling="cls", normalize=False, seed=23
    )
    m = json.loads((out / "embedrt.json").read_text())
    # fp32's native graph is model.onnx with packed Linears only; int8 is quantized from model.onnx, not from
    # it
    assert m["variants"]["fp32"]["native"]["packed_only"] is True
    entry = m["variants"]["int8"]["native"]
    ops = op_counts(out / entry["file"])
    assert ops["MatMulInteger"] == 12 and "PackedMatMul" not in ops
    assert "MeanPoolNormalize" not in entry["op"] and "MeanPoolNormalize" not in ops
    a = Encoder(out, device="cpu", variant="int8", native=True).encode(TEXTS)
    b = Encoder(out, device="cpu", variant="int8", native=False).encode(TEXTS)
    _close_to_the_standard_graph(a, b, out)


def test_smoothing_and_exclusions_carry_over(ops_library, tiny_factory, tmp_path_factory):
    cfg = Int8Config(exclude_roles=("ffn_down",), smooth_alpha=0.5, smooth_roles=("ffn_up",))
    out = _export(
        tiny_factory, tmp_path_factory, "int8s", cfg, arch="bert", pooling="mean", normalize=True, seed=24
    )
    entry = json.loads((out / "embedrt.json").read_text())["variants"]["int8"]["native"]
    assert op_counts(out / entry["file"])["MatMulInteger"] == 10
    a = Encoder(out, device="cpu", variant="int8", native=True).encode(TEXTS)
    b = Encoder(out, device="cpu", variant="int8", native=False).encode(TEXTS)
    _close_to_the_standard_graph(a, b, out)


def test_cpu_only_graph_is_not_used_on_a_gpu(ops_library, tiny_int8):
    entry = read_manifest(tiny_int8).variants["int8"]
    fused, why = native.resolve("auto", tiny_int8, entry, True, cpu=False)
    assert fused is None and "run on the CPU only" in why
    with pytest.raises(NativeOpsError, match="CPU only"):
        native.resolve(True, tiny_int8, entry, True, cpu=False)
    # the fp32 graph's pooling op has a CUDA kernel: not refused for that reason
    fp32_entry = read_manifest(tiny_int8).variants["fp32"]
    fused, why = native.resolve("auto", tiny_int8, fp32_entry, True, cpu=False)
    assert fused is not None and why == "pending"


def test_without_the_library_int8_runs_the_standard_graph(tiny_int8, monkeypatch, tmp_path):
    monkeypatch.setenv("EMBEDRT_OPS_LIBRARY", str(tmp_path / "nope.so"))
    enc = Encoder(tiny_int8, device="cpu", variant="int8")
    assert enc.native is False and "libembedrt_ops.so not found" in str(enc.graph_status)
    assert enc.encode(TEXTS).shape == (len(TEXTS), 32)
