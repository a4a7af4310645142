"""The native graphs of an export, each with a probe (inputs with the standard graph's outputs, so that the
runtime can check the two graphs agree without torch or onnx):

- ``model.fused.onnx``: the fp32 graph with pooling (+ Normalize) as one ``ai.embedrt::MeanPoolNormalize``;
- ``model.packed.onnx``: that graph with every fp32 Linear (a ``MatMul`` by a weight initializer, and the
  ``Add`` of its bias) as one ``ai.embedrt::PackedMatMul``, which packs the weights once at load: the CPU
  graph of the fp32 variant on AVX-512 machines (made from ``model.onnx``, with ``model.packed.probe.npz``,
  when the pooling has no fused op);
- ``model.int8.fused.onnx``: the int8 graph built from it, with each per-token quantization chain as one
  ``ai.embedrt::QuantizePerToken`` and each rescale (+ bias) as one ``ai.embedrt::DequantizeRows`` (these two
  writing and reading the attention heads-first, the Reshape targets constant), and each FFN's rescale, GELU
  and requantization as one ``ai.embedrt::RequantizeRows``, each layer's softmax attention as one
  ``ai.embedrt::Attention``, each residual Add + LayerNormalization (+ the next quantization) as one
  ``ai.embedrt::AddLayerNorm``. Every float operation of this graph is then embedrt's, each the same bits on
  every ISA path (csrc/gelu.h, attention.h, layernorm.h), and the integer GEMMs are exact: its vectors do not
  depend on the x86 CPU that serves them. They may differ from ``model.int8.onnx``'s, whose float kernels are
  onnxruntime's, by an 8-bit activation rounded one step the other way (``INT8_PROBE_ATOL``).

NOTE: the rewrite happens here, at export time, by tracing the same torch module with the pooling swapped for
the op. The runtime cannot rewrite graphs: it may import only numpy, onnxruntime and tokenizers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..manifest import sha256_file
from ..modes import DequantizeOp, QuantizeOp
from ..runtime.native import INT8_PACKED_OP
from .graph import build_graph_module, export_onnx, fused_pooling_plan
from .rewrites import (
    fold_head_transposes,
    fold_reshapes,
    fuse_add_layernorms,
    fuse_attention,
    fuse_gelu_epilogues,
    fuse_requantize,
    pack_linears,
)

FUSED_FILE = "model.fused.onnx"
PROBE_FILE = "model.fused.probe.npz"
PACKED_FILE = "model.packed.onnx"
#: the packed graph's own probe, when it is made from model.onnx (no fused-pooling graph to share one with)
PACKED_PROBE_FILE = "model.packed.probe.npz"
PACKED_OP = "ai.embedrt::PackedMatMul"
INT8_FUSED_FILE = "model.int8.fused.onnx"
INT8_PROBE_FILE = "model.int8.fused.probe.npz"
#: The int8 native graph with its MatMulIntegers as ai.embedrt::PackedMatMulInteger: the int8 CPU graph on
#: AVX2 CPUs without AVX-512 (runtime.native.int8_packed_off says where and why).
INT8_PACKED_FILE = "model.int8.packed.onnx"
#: The int8 native graph's probe tolerance (``probe_atol`` in its manifest entry) when its probe holds the
#: standard int8 graph's outputs (the library was not built at export). Its float ops are embedrt's and the
#: standard graph's onnxruntime's: a one-ulp difference before a QuantizePerToken can move an 8-bit
#: activation by one step, which moves the vectors by up to about 1e-2 (all-MiniLM-L6-v2's probe);
#: a wrong kernel moves them by far more.
INT8_PROBE_ATOL = 5e-2

#: A mixed-length, padded batch (the runtime runs it once per Encoder, so it stays small).
PROBE_TEXTS = [
    "",
    "Hello world",
    "A man is playing a guitar on stage.",
    "naïve café, 日本語, 🍕",
    "the model reads every token once and pools them into one vector " * 4,
    "a",
]


def write_fused(export_dir: Path, st_model, spec, opset: int, standard_file: str) -> dict[str, Any] | None:
    """Trace the fused graph and write it with its probe into ``export_dir``.

    Returns:
        The manifest entry (``variants.fp32.native``), or None when the pooling has no fused op.
    """
    import torch

    plan = fused_pooling_plan(spec)
    if plan is None:
        return None
    graph = build_graph_module(st_model, spec, fused_pooling=True)
    with torch.no_grad():
        export_onnx(
            graph,
            st_model.tokenizer,
            export_dir / FUSED_FILE,
            with_prompt_length=not spec.include_prompt,
            dim=spec.dim,
            opset=opset,
            custom_opsets={"ai.embedrt": 1},
        )
    write_probe(
        export_dir,
        export_dir / standard_file,
        export_dir / PROBE_FILE,
        spec.max_seq_length,
        int(st_model.tokenizer.pad_token_id),
        spec.include_prompt,
    )
    return {
        "file": FUSED_FILE,
        "sha256": sha256_file(export_dir / FUSED_FILE),
        "probe": PROBE_FILE,
        "probe_sha256": sha256_file(export_dir / PROBE_FILE),
        "op": "ai.embedrt::MeanPoolNormalize",
        "mode": plan[0],
        "normalize": plan[1],
    }


def write_packed(
    export_dir: Path,
    source_file: str,
    gelu_epilogue: bool = True,
    attention: bool = True,
    add_layernorm: bool = False,
) -> dict[str, Any] | None:
    """Write ``model.packed.onnx``: ``source_file`` with its fp32 Linears as ``ai.embedrt::PackedMatMul``
    (each FFN's GELU as its epilogue, unless ``gelu_epilogue`` is False), each attention as
    ``ai.embedrt::Attention`` (``attention``) and each residual Add + LayerNorm as
    ``ai.embedrt::AddLayerNorm`` (``add_layernorm``).

    Returns:
        The manifest entry (``variants.fp32.native.packed``), or None when the graph has no Linear.
    """
    import onnx

    model = onnx.load(str(export_dir / source_file))
    reshapes = fold_reshapes(model)
    linears, biases = pack_linears(model)
    heads = fold_head_transposes(model.graph)
    if linears == 0:
        return None
    # NOTE: the FFN's GELU as PackedMatMul's epilogue: 1.036x at 32 x 32 tokens, 1.012x at 8 x 256 on
    # all-MiniLM-L6-v2 (benchmarks/bench_int8_fusions.py, one thread)
    gelus = fuse_gelu_epilogues(model.graph) if gelu_epilogue else 0
    # NOTE: each attention as one Attention: 0.98-1.00x at 32 x 32 tokens and 1.03-1.06x at 8 x 256 on one
    # thread (benchmarks/bench_int8_fusions.py, all-MiniLM-L6-v2), 1.08-1.11x on passages with two
    # (benchmarks/export_ab.py); each Add + LayerNorm as AddLayerNorm is no faster than onnxruntime's
    # own SkipLayerNormalization fusion (0.98-1.01x), so not by default
    attentions = fuse_attention(model.graph) if attention else 0
    add_layernorms = fuse_add_layernorms(model.graph) if add_layernorm else 0
    if not any(o.domain == "ai.embedrt" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("ai.embedrt", 1))
    onnx.save(model, str(export_dir / PACKED_FILE))
    return {
        "file": PACKED_FILE,
        "sha256": sha256_file(export_dir / PACKED_FILE),
        "op": PACKED_OP,
        "linears": linears,
        "folded_bias": biases,
        "constant_reshapes": reshapes,
        "head_layouts": heads,
        "gelu_epilogues": gelus,
        "attentions": attentions,
        "add_layernorms": add_layernorms,
    }


def write_probe(
    export_dir: Path,
    standard: Path,
    probe: Path,
    max_seq_length: int,
    pad_token_id: int,
    include_prompt: bool,
    library: Path | None = None,
) -> np.ndarray:
    """Run ``standard`` (a graph with native ops when ``library`` is given) on PROBE_TEXTS (one padded batch)
    and store inputs and outputs in ``probe``; returns the outputs."""
    import onnxruntime as ort

    from ..runtime.tokenize import TextTokenizer

    tok = TextTokenizer(export_dir / "tokenizer.json", max_seq_length, pad_token_id)
    ids, mask = tok.pad(tok.encode_ids(PROBE_TEXTS))
    feeds = {"input_ids": ids, "attention_mask": mask}
    if not include_prompt:
        feeds["prompt_length"] = np.array([1], dtype=np.int64)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if library is not None:
        from ..runtime import native

        native.register(so, library)
    session = ort.InferenceSession(str(standard), so, providers=["CPUExecutionProvider"])
    expected = session.run(["sentence_embedding"], feeds)[0]
    np.savez(probe, expected=expected, **{f"input.{k}": v for k, v in feeds.items()})
    return expected


#: The int8 graph's fusions, in the order they are applied (``write_int8_fused(fusions=...)``; all by
#: default).
INT8_FUSIONS = ("requantize", "attention", "add_layernorm")


def write_int8_fused(
    export_dir: Path, manifest: dict[str, Any], cfg, smooth, fusions: tuple[str, ...] = INT8_FUSIONS
) -> dict[str, Any]:
    """Build ``model.int8.fused.onnx`` (native quantization ops, on top of the fused-pooling graph when the
    export has one) with the same int8 config and smoothing statistics as ``model.int8.onnx``, and its probe.
    ``fusions`` picks which of ``INT8_FUSIONS`` to apply (benchmarks/bench_int8_fusions.py measures each).

    Returns:
        The manifest entry (``variants.int8.native``).
    """
    from dataclasses import replace

    from .quantize import quantize_int8

    fp32 = manifest["variants"]["fp32"]
    # NOTE: model.int8.onnx was quantized from model.onnx; model.fused.onnx is the same graph only when
    # model.onnx was not rewritten by --optimize (the fused-pooling graph is traced, never optimised)
    optimized = (fp32.get("optimization") or {}).get("kept")
    pooled = None if optimized else fp32.get("native")
    if pooled and pooled.get("packed_only"):  # model.onnx with packed Linears: no pooling op to build on
        pooled = None
    import onnx

    source = export_dir / (pooled["file"] if pooled else fp32["file"])
    # NOTE: the Reshape targets are made constant on the fp32 graph (the shape arithmetic must be runnable
    # without the native ops), then the quantizer builds on it, then the heads-first layouts go in
    staged = export_dir / "model.int8.staged.onnx"
    model = onnx.load(str(source))
    reshapes = fold_reshapes(model)
    onnx.save(model, str(staged))
    try:
        native = replace(cfg, quantize_op=QuantizeOp.NATIVE, dequantize_op=DequantizeOp.NATIVE)
        scheme = quantize_int8(staged, export_dir / INT8_FUSED_FILE, native, smooth=smooth)
    finally:
        staged.unlink(missing_ok=True)
    model = onnx.load(str(export_dir / INT8_FUSED_FILE))
    heads = fold_head_transposes(model.graph)
    requantized = fuse_requantize(model.graph) if "requantize" in fusions else 0
    attention = fuse_attention(model.graph) if "attention" in fusions else 0
    layernorms = fuse_add_layernorms(model.graph) if "add_layernorm" in fusions else 0
    onnx.save(model, str(export_dir / INT8_FUSED_FILE))
    include_prompt = "prompt_length" not in manifest["inputs"]
    probe_args = (int(manifest["max_seq_length"]), int(manifest["tokenizer"]["pad_token_id"]), include_prompt)
    standard = write_probe(
        export_dir,
        export_dir / manifest["variants"]["int8"]["file"],
        export_dir / INT8_PROBE_FILE,
        *probe_args,
    )
    from ..runtime import native as native_ops

    library = native_ops.library_path()
    vs_standard = None
    if library is not None:
        # NOTE: the probe holds this graph's own outputs: every float op of it is embedrt's, the same bits on
        # every ISA path, so any CPU must reproduce them to float rounding (1e-6), and the check at load
        # proves it does. Its distance to the standard int8 graph is recorded (an 8-bit step, or a few).
        own = write_probe(
            export_dir, export_dir / INT8_FUSED_FILE, export_dir / INT8_PROBE_FILE, *probe_args, library
        )
        cos = (own * standard).sum(-1) / np.maximum(
            np.linalg.norm(own, axis=-1) * np.linalg.norm(standard, axis=-1), 1e-12
        )
        vs_standard = {"max_abs_diff": float(np.abs(own - standard).max()), "min_cosine": float(cos.min())}
    ops = ["ai.embedrt::QuantizePerToken", "ai.embedrt::DequantizeRows"]
    if requantized:
        ops.append("ai.embedrt::RequantizeRows")
    if attention:
        ops.append("ai.embedrt::Attention")
    if layernorms:
        ops.append("ai.embedrt::AddLayerNorm")
    entry: dict[str, Any] = {
        "file": INT8_FUSED_FILE,
        "sha256": sha256_file(export_dir / INT8_FUSED_FILE),
        "probe": INT8_PROBE_FILE,
        "probe_sha256": sha256_file(export_dir / INT8_PROBE_FILE),
        "op": ", ".join(ops + (["ai.embedrt::MeanPoolNormalize"] if pooled else [])),
        # NOTE: the int8 ops have CPU kernels only; on a GPU the runtime keeps the standard graph.
        "cpu_only": True,
        "folded_bias": scheme["folded_bias"],
        "constant_reshapes": reshapes,
        "head_layouts": heads,
        "requantized": requantized,
        "attention": attention,
        "add_layernorms": layernorms,
        # its own outputs (library built at export), else the standard graph's, a step of 8 bits away
        "probe_of": "this graph" if vs_standard is not None else "model.int8.onnx",
        "probe_atol": 1e-6 if vs_standard is not None else INT8_PROBE_ATOL,
    }
    if vs_standard is not None:
        entry["export_check_vs_standard"] = vs_standard
    if pooled:
        entry.update(mode=pooled["mode"], normalize=pooled["normalize"])
    return entry


def write_int8_packed(export_dir: Path, int8_native: dict[str, Any]) -> dict[str, Any] | None:
    """Write ``model.int8.packed.onnx``: the int8 native graph (``int8_native``, its manifest entry) with each
    ``MatMulInteger`` as ``ai.embedrt::PackedMatMulInteger`` (rewrites.pack_int8_gemms). It shares the native
    graph's probe: the integer sums are exact, so its outputs are the same bits.

    Returns:
        The manifest entry (``variants.int8.native.packed``), or None when the graph has no such node.
    """
    import onnx

    from .rewrites import pack_int8_gemms

    model = onnx.load(str(export_dir / int8_native["file"]))
    gemms = pack_int8_gemms(model)
    if gemms == 0:
        return None
    onnx.save(model, str(export_dir / INT8_PACKED_FILE))
    return {
        "file": INT8_PACKED_FILE,
        "sha256": sha256_file(export_dir / INT8_PACKED_FILE),
        "op": INT8_PACKED_OP,
        "gemms": gemms,
        "cpu_only": True,
        "probe": int8_native["probe"],
        "probe_sha256": int8_native["probe_sha256"],
        "probe_atol": int8_native.get("probe_atol", 1e-6),
    }


def check_fused(export_dir: Path, entry: dict[str, Any]) -> float | None:
    """Max (scaled) abs diff of the fused graph against the probe, or None when the library is not built."""
    import onnxruntime as ort

    from ..runtime import native

    library = native.library_path()
    if library is None:
        return None
    so = ort.SessionOptions()
    native.register(so, library)
    session = ort.InferenceSession(str(export_dir / entry["file"]), so, providers=["CPUExecutionProvider"])
    return native.probe_difference(session, export_dir / entry["probe"])
