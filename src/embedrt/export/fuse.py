"""The fused-pooling graph: ``model.fused.onnx``, the fp32 graph with pooling (+ Normalize) as one native
``ai.embedrt::MeanPoolNormalize`` node, and ``model.fused.probe.npz``, inputs with the standard graph's
outputs, so that the runtime can check the two graphs agree without torch or onnx.

NOTE: the rewrite happens here, at export time, by tracing the same torch module with the pooling swapped for
the op. The runtime cannot rewrite graphs: it may import only numpy, onnxruntime and tokenizers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..manifest import sha256_file
from .graph import build_graph_module, export_onnx, fused_pooling_plan

FUSED_FILE = "model.fused.onnx"
PROBE_FILE = "model.fused.probe.npz"
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
        The manifest entry (``variants.fp32.fused_pooling``), or None when the pooling has no fused op.
    """
    import onnxruntime as ort
    import torch

    from ..runtime.tokenize import TextTokenizer

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
    tok = TextTokenizer(
        export_dir / "tokenizer.json", spec.max_seq_length, int(st_model.tokenizer.pad_token_id)
    )
    ids, mask = tok.pad(tok.encode_ids(PROBE_TEXTS))
    feeds = {"input_ids": ids, "attention_mask": mask}
    if not spec.include_prompt:
        feeds["prompt_length"] = np.array([1], dtype=np.int64)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    standard = ort.InferenceSession(str(export_dir / standard_file), so, providers=["CPUExecutionProvider"])
    expected = standard.run(["sentence_embedding"], feeds)[0]
    np.savez(export_dir / PROBE_FILE, expected=expected, **{f"input.{k}": v for k, v in feeds.items()})
    return {
        "file": FUSED_FILE,
        "sha256": sha256_file(export_dir / FUSED_FILE),
        "probe": PROBE_FILE,
        "probe_sha256": sha256_file(export_dir / PROBE_FILE),
        "op": "ai.embedrt::MeanPoolNormalize",
        "mode": plan[0],
        "normalize": plan[1],
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
