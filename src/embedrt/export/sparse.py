"""Sparse (SPLADE) encoders: a sentence-transformers ``SparseEncoder`` -> one ONNX graph (transformer, MLM
head, activation log(1 + ReLU), max or sum pooling over tokens), verified against ``SparseEncoder.encode``.

The graph returns the pooled ``(batch, vocab)`` vectors: the ``batch x tokens x vocab`` logits never leave it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedModelError
from ..modes import Task
from .graph import DEFAULT_OPSET
from .late import Family, load_reference, module_types, run_export, trace_to_onnx
from .verify import probe_texts

OUTPUT = "sparse_embedding"
#: SpladePooling activations and how many log1p they apply after the ReLU.
ACTIVATIONS = {"relu": 1, "log1p_relu": 2}


def _load(model_dir: Path):
    return load_reference("SparseEncoder", model_dir)


def _parts(se):
    modules = list(se._modules.values())
    names = module_types(se)
    if names != ["Transformer", "SpladePooling"] and names != ["MLMTransformer", "SpladePooling"]:
        raise UnsupportedModelError(
            "only SPLADE-style SparseEncoders (a fill-mask Transformer, then SpladePooling) can be "
            "exported; "
            f"this one has modules {names} (Router, SparseStaticEmbedding and SparseAutoEncoder are not "
            "supported)"
        )
    transformer, pooling = modules
    if getattr(transformer, "transformer_task", "fill-mask") != "fill-mask":
        raise UnsupportedModelError(
            f"the Transformer's task is {transformer.transformer_task!r}, not 'fill-mask'"
        )
    return transformer, pooling


def _hf(se):
    transformer, _ = _parts(se)
    return transformer.model if getattr(transformer, "model", None) is not None else transformer.auto_model


def _inspect(se, model_dir: Path) -> dict[str, Any]:
    transformer, pooling = _parts(se)
    if pooling.activation_function not in ACTIVATIONS:
        raise UnsupportedModelError(
            f"SpladePooling activation {pooling.activation_function!r} is not supported"
        )
    hf = _hf(se)
    cfg = hf.config
    dim = int(hf.get_output_embeddings().weight.shape[0])
    max_len = se.max_seq_length
    if max_len is None or max_len > 100_000:
        raise UnsupportedModelError(f"cannot determine the max length of {model_dir}")
    return {
        "architecture": str(getattr(cfg, "model_type", "unknown")),
        "hf_architecture": type(hf).__name__,
        "max_seq_length": int(max_len),
        "dim": dim,
        "pooling": pooling.pooling_strategy,
        "activation": pooling.activation_function,
        "prompts": dict(se.prompts or {}),
        "default_prompt_name": se.default_prompt_name,
        "similarity_fn_name": se.similarity_fn_name,
        "max_active_dims": se.max_active_dims,
        "outputs": {OUTPUT: ["batch", dim]},
        "output": OUTPUT,
    }


def build_sparse_graph(se, fields: dict[str, Any]):
    """(input_ids, attention_mask) -> pooled (batch, vocab), as ``SpladePooling.forward`` in eval mode."""
    import torch

    hf = _hf(se)
    n_log1p = ACTIVATIONS[fields["activation"]]
    use_max = fields["pooling"] == "max"

    class SparseGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = hf

        def forward(self, input_ids, attention_mask):
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            # NOTE: SpladePooling masks the logits (padded positions become 0), applies ReLU and log1p (twice
            # for log1p_relu), then pools. ReLU and log1p are monotone, so they commute with max: max pooling
            # first gives the same numbers with the activation on (batch, vocab) instead of
            # (batch, tokens, vocab), two passes over the logits instead of four (and no transcendental).
            x = logits * attention_mask.unsqueeze(-1).to(logits.dtype)
            if use_max:
                x = torch.relu(x.max(dim=1).values)
                for _ in range(n_log1p):
                    x = torch.log1p(x)
                return x
            x = torch.relu(x)
            for _ in range(n_log1p):
                x = torch.log1p(x)
            return x.sum(dim=1)

    return SparseGraph().eval()


def _trace(se, fields: dict[str, Any], path: Path, opset: int) -> list[str]:
    import onnx

    names = trace_to_onnx(
        build_sparse_graph(se, fields), se.tokenizer, path, [OUTPUT], {OUTPUT: {0: "batch"}}, opset
    )
    model = onnx.load(str(path))
    dims = model.graph.output[0].type.tensor_type.shape.dim
    dims[0].dim_param = "batch"
    dims[1].Clear()
    dims[1].dim_value = fields["dim"]
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return names


def verify_sparse_export(export_dir: Path, se, texts: list[str] | None = None) -> dict[str, Any]:
    """Encode the probe texts with the written export and with ``SparseEncoder.encode`` (dense), and compare
    every dimension: one mixed batch, one text at a time, and every prompt."""
    from ..runtime.sparse import SparseEncoder

    texts = texts if texts is not None else probe_texts()
    ours = SparseEncoder(export_dir, device="cpu")

    def ref(batch, **kw):
        out = se.encode(batch, batch_size=len(batch), convert_to_sparse_tensor=False, **kw)
        return np.asarray(out.cpu().numpy(), dtype=np.float64)

    reference = ref(texts, max_active_dims=None) if se.max_active_dims is None else ref(texts)
    batched = ours.encode(texts, batch_size=len(texts), convert_to_sparse_tensor=False).astype(np.float64)
    singles = np.stack([ours.encode(t, convert_to_sparse_tensor=False) for t in texts]).astype(np.float64)
    diff = np.abs(batched - reference).max(axis=1)
    worst = int(np.argmax(diff))
    result = {
        "n_texts": len(texts),
        "max_abs_diff": float(diff.max()),
        "single_max_abs_diff": float(np.abs(singles - reference).max()),
        "single_vs_batch_max_abs_diff": float(np.abs(singles - batched).max()),
        "active_dims_mean": float((reference > 0).sum(1).mean()),
        "active_dims_differing": int(((batched > 0) != (reference > 0)).sum()),
        "worst_text": texts[worst][:80],
    }
    for name in sorted(se.prompts or {}):
        got = ours.encode(texts[:8], prompt_name=name, convert_to_sparse_tensor=False).astype(np.float64)
        d = float(np.abs(got - ref(texts[:8], prompt_name=name)).max())
        result.setdefault("prompts", {})[name] = d
        result["max_abs_diff"] = max(result["max_abs_diff"], d)
    return result


FAMILY = Family(
    task=Task.SPARSE.value,
    reference="SparseEncoder",
    load=_load,
    inspect=_inspect,
    hf_model=_hf,
    trace=_trace,
    verify=verify_sparse_export,
)


def export_sparse_encoder(
    model: str,
    output: str | os.PathLike,
    *,
    force: bool = False,
    atol: float = 1e-5,
    opset: int = DEFAULT_OPSET,
    log: Callable[[str], None] | None = None,
    variants: tuple[str, ...] | list[str] = ("fp32",),
    optimize: bool = False,
    eval_sts: str | None = None,
    **_ignored: Any,
) -> dict[str, Any]:
    """Export a sentence-transformers ``SparseEncoder`` (or a bare ``*ForMaskedLM``, which it loads as SPLADE
    with max pooling) to one verified ONNX graph plus tokenizer and manifest.

    Raises:
        InputError, ModelNotFoundError, ModelLoadError, UnsupportedModelError, OutputExistsError, ExportError,
        VerificationError. On any error nothing is left at ``output``.
    """
    return run_export(
        FAMILY,
        model,
        output,
        force=force,
        atol=atol,
        opset=opset,
        log=log,
        variants=variants,
        optimize=optimize,
        eval_sts=eval_sts,
    )
