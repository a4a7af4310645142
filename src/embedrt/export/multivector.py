"""Multi-vector (ColBERT-style late interaction) encoders: a sentence-transformers ``MultiVectorEncoder`` ->
one ONNX graph returning the per-token vectors after the model's projection and normalisation, verified
against ``MultiVectorEncoder.encode``.

Which tokens count (the scoring mask: real tokens plus a query's expansion positions, minus the skiplist,
within the allowlist) is decided from the token ids at run time, as ``MultiVectorMask`` does, so the graph
returns the vectors of every position plus the attention mask it ran with. Query expansion (ColBERT's [MASK]
padding of queries) is a tokenizer-side step too: the runtime fills the ids and the attention mask.
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

TOKENS = "token_embeddings"
MASK = "token_mask"
POST_MODULES = ("Dense", "Normalize")


def _load(model_dir: Path):
    return load_reference("MultiVectorEncoder", model_dir)


def _transformer(mve):
    return list(mve._modules.values())[0]


def _hf(mve):
    t = _transformer(mve)
    return t.model if getattr(t, "model", None) is not None else t.auto_model


def _post(mve) -> list:
    names = module_types(mve)
    if not names or names[0] != "Transformer":
        raise UnsupportedModelError(f"the first module must be a Transformer, got {names}")
    # NOTE: the mask only rewrites the attention mask for scoring, and Dense and Normalize act on each token
    # alone, so where it sits among them changes no vector: sentence-transformers puts it before Normalize
    # when it loads PyLate and Stanford ColBERT checkpoints, and at the end in its own saves
    if names.count("MultiVectorMask") > 1:
        raise UnsupportedModelError(f"more than one MultiVectorMask module: {names}")
    tail = [n for n in names[1:] if n != "MultiVectorMask"]
    bad = [n for n in tail if n not in POST_MODULES]
    if bad:
        raise UnsupportedModelError(
            f"modules {bad} are not supported in a multi-vector export; supported after "
            f"the Transformer: {', '.join(POST_MODULES)} and one MultiVectorMask"
        )
    modules = [m for m in list(mve._modules.values())[1:] if type(m).__name__ != "MultiVectorMask"]
    for m in modules:
        if type(m).__name__ == "Dense" and getattr(m, "module_input_name", TOKENS) != TOKENS:
            raise UnsupportedModelError(
                "a Dense module that reads sentence_embedding has no place in a multi-vector model"
            )
    return modules


def _mask_module(mve):
    masks = [m for m in mve._modules.values() if type(m).__name__ == "MultiVectorMask"]
    return masks[0] if masks else None


def _inspect(mve, model_dir: Path) -> dict[str, Any]:
    t = _transformer(mve)
    if getattr(t, "transformer_task", "feature-extraction") != "feature-extraction":
        raise UnsupportedModelError(
            f"the Transformer's task is {t.transformer_task!r}, not feature-extraction"
        )
    post = _post(mve)
    mask = _mask_module(mve)
    keep_only = getattr(mask, "keep_only_token_ids", None) if mask is not None else None
    skip = getattr(mask, "_skiplist_ids", None) if mask is not None else None
    hf = _hf(mve)
    dim = int(hf.config.hidden_size)
    for m in post:
        if type(m).__name__ == "Dense":
            dim = int(m.linear.out_features)
    max_len = mve.max_seq_length
    if max_len is None or max_len > 100_000:
        raise UnsupportedModelError(f"cannot determine the max length of {model_dir}")
    return {
        "architecture": str(getattr(hf.config, "model_type", "unknown")),
        "hf_architecture": type(hf).__name__,
        "max_seq_length": int(max_len),
        "query_length": t.query_length,
        "document_length": t.document_length,
        "dim": dim,
        "post_modules": [type(m).__name__ for m in post],
        "skiplist_ids": sorted(int(i) for i in skip.tolist()) if skip is not None else [],
        "skiplist_tasks": list(getattr(mask, "skiplist_tasks", ["document"])) if mask is not None else [],
        "query_expansion": _query_expansion(t, mve.tokenizer, mask),
        "keep_only_token_ids": sorted(int(i) for i in keep_only) if keep_only else None,
        "prompts": dict(mve.prompts or {}),
        "default_prompt_name": mve.default_prompt_name,
        "similarity_fn_name": mve.similarity_fn_name,
        "outputs": {TOKENS: ["batch", "sequence", dim], MASK: ["batch", "sequence"]},
        "output": TOKENS,
    }


def _query_expansion(transformer, tokenizer, mask) -> dict[str, Any] | None:
    """The Transformer's ``query_expansion`` with its token resolved to an id, as ``Transformer.preprocess``
    resolves it: the given token, else the tokenizer's mask token, else its end-of-sequence token, else none
    (the pads stay pads)."""
    qe = getattr(transformer, "query_expansion", None)
    if qe is None:
        return None
    if mask is None:
        raise UnsupportedModelError("query_expansion needs a MultiVectorMask module to score the expansion")
    if qe.get("strategy") not in ("fixed", "min"):
        raise UnsupportedModelError(f"query_expansion strategy {qe.get('strategy')!r} is not supported")
    if qe.get("token") is not None:
        token_id = tokenizer.convert_tokens_to_ids(qe["token"])
    else:
        token_id = tokenizer.mask_token_id
        if token_id is None:
            token_id = tokenizer.eos_token_id
    if token_id is None:
        token_id = tokenizer.pad_token_id
    return {
        "strategy": qe["strategy"],
        "attend": bool(qe.get("attend", False)),
        "length": int(qe["length"]),
        "token_id": int(token_id),
    }


def build_multivector_graph(mve):
    """(input_ids, attention_mask) -> (per-token vectors after Dense/Normalize, the attention mask)."""
    import torch

    hf = _hf(mve)
    post = torch.nn.ModuleList(_post(mve))

    class MultiVectorGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = hf
            self.post = post

        def forward(self, input_ids, attention_mask):
            tokens = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
            features = {TOKENS: tokens, "attention_mask": attention_mask}
            for module in self.post:
                features = module(features)
            return features[TOKENS], attention_mask

    return MultiVectorGraph().eval()


def _trace(mve, fields: dict[str, Any], path: Path, opset: int) -> list[str]:
    import onnx

    names = trace_to_onnx(
        build_multivector_graph(mve),
        mve.tokenizer,
        path,
        [TOKENS, MASK],
        {TOKENS: {0: "batch", 1: "sequence"}, MASK: {0: "batch", 1: "sequence"}},
        opset,
    )
    model = onnx.load(str(path))
    dims = model.graph.output[0].type.tensor_type.shape.dim
    dims[2].Clear()
    dims[2].dim_value = fields["dim"]
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return names


def _diff(ours: list[np.ndarray], ref: list) -> float:
    worst = 0.0
    for a, b in zip(ours, ref, strict=True):
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return float("inf")
        worst = max(worst, float(np.abs(a - b).max()) if a.size else 0.0)
    return worst


def verify_multivector_export(export_dir: Path, mve, texts: list[str] | None = None) -> dict[str, Any]:
    """Encode the probe texts with the written export and with ``MultiVectorEncoder`` (encode, encode_query,
    encode_document), and compare every token vector; one mixed batch and one text at a time."""
    from ..runtime.multivector import MultiVectorEncoder

    texts = texts if texts is not None else probe_texts()
    ours = MultiVectorEncoder(export_dir, device="cpu")
    result: dict[str, Any] = {"n_texts": len(texts)}
    worst = 0.0
    for fn in ("encode", "encode_query", "encode_document"):
        ref = getattr(mve, fn)(texts, batch_size=len(texts), convert_to_numpy=True)
        got = getattr(ours, fn)(texts, batch_size=len(texts))
        result[f"{fn}_max_abs_diff"] = d = _diff(got, ref)
        worst = max(worst, d)
    batched = ours.encode(texts, batch_size=len(texts))
    singles = [ours.encode(t) for t in texts]
    result["max_abs_diff"] = worst
    result["single_max_abs_diff"] = _diff(singles, mve.encode(texts, convert_to_numpy=True))
    result["single_vs_batch_max_abs_diff"] = _diff(singles, batched)
    return result


FAMILY = Family(
    task=Task.MULTI_VECTOR.value,
    reference="MultiVectorEncoder",
    load=_load,
    inspect=_inspect,
    hf_model=_hf,
    trace=_trace,
    verify=verify_multivector_export,
)


def export_multi_vector_encoder(
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
    """Export a sentence-transformers ``MultiVectorEncoder`` to one verified ONNX graph plus tokenizer and
    manifest.

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
