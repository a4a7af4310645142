"""The steps shared by the sparse (SPLADE) and multi-vector (ColBERT) exports: resolve, load the
sentence-transformers reference, trace one graph, verify it with our own runtime, write atomically.

Each family (``sparse.py``, ``multivector.py``) supplies its loader, graph, verification and manifest fields.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelLoadError, VerificationError
from ..manifest import FORMAT_VERSION, sha256_file, write_manifest
from .graph import DEFAULT_OPSET, position_limit
from .pipeline import MODEL_FILE
from .resolve import resolve_model
from .staging import Steps as _Steps
from .staging import check_target as _check_target
from .staging import eager_attention, finish, staging
from .staging import save_tokenizer as _save_tokenizer
from .staging import versions as _versions
from .staging import weights_sha256 as _weights_sha256


@dataclass
class Family:
    """One model class: how to load it, trace it, verify it and describe it in the manifest."""

    task: str  #: the manifest's ``task``
    reference: str  #: the sentence-transformers class name, for messages
    load: Callable[[Path], Any]  #: model dir -> the loaded reference model
    inspect: Callable[[Any, Path], dict[str, Any]]  #: -> manifest fields (refuses what it cannot export)
    hf_model: Callable[[Any], Any]  #: the Hugging Face model inside (for eager attention)
    trace: Callable[[Any, dict[str, Any], Path, int], list[str]]  #: writes the graph, returns input names
    verify: Callable[[Path, Any], dict[str, Any]]  #: written export vs the reference -> figures


def load_reference(cls_name: str, model_dir: Path):
    """Load ``sentence_transformers.<cls_name>`` from ``model_dir`` on CPU in eval mode.

    Raises:
        ModelLoadError: weights or configs are unreadable, or sentence-transformers is missing.
    """
    try:
        import sentence_transformers as st
    except ImportError as e:  # pragma: no cover
        raise ModelLoadError("exporting needs sentence-transformers: pip install 'embedrt[export]'") from e
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = getattr(st, cls_name)(str(model_dir), device="cpu", local_files_only=True)
    except Exception as e:  # noqa: BLE001 - surfaced as a typed error that names the model
        raise ModelLoadError(f"could not load {model_dir} as a {cls_name}: {type(e).__name__}: {e}") from e
    model.eval()
    return model


def run_export(
    family: Family,
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
) -> dict[str, Any]:
    """Export ``model`` as ``family``: one fp32 graph, verified to ``atol``; nothing is left on failure."""
    output = Path(output).expanduser().absolute()
    extra = [v for v in dict.fromkeys(variants) if v != "fp32"]
    if extra:
        raise InputError(
            f"variants {extra} are not available for {family.task} encoders yet; valid choices: ['fp32']"
        )
    if optimize or eval_sts:
        raise InputError(
            f"--optimize and --eval-sts apply to embedding exports only, not to {family.task} encoders"
        )
    _check_target(output, force)
    steps = _Steps(log, total=5)
    with steps.step("resolve", model):
        resolved = resolve_model(model)
        if log:
            log(f"      found {resolved.model_id} via {resolved.source} at {resolved.path} ({family.task})")
    with steps.step("load", f"sentence-transformers {family.reference} reference"):
        ref = family.load(resolved.path)
        fields = family.inspect(ref, resolved.path)
    with staging(output) as tmp:  # NOTE: removed on any error: nothing is left on failure
        with steps.step("trace", f"{fields.get('architecture')}, {family.task}"):
            import torch

            with eager_attention(family.hf_model(ref)), torch.no_grad():
                input_names = family.trace(ref, fields, tmp / MODEL_FILE, opset)
            manifest = {
                "format": "embedrt",
                "format_version": FORMAT_VERSION,
                "task": family.task,
                "source": {
                    "model": resolved.model_id,
                    "resolved_from": resolved.source,
                    "path": str(resolved.path),
                    "weights_sha256": _weights_sha256(resolved.path),
                },
                **fields,
                # NOTE: the reader refuses a max_seq_length (or query/document length) beyond it
                "position_limit": position_limit(family.hf_model(ref)),
                # NOTE: the tokenizer entry carries the file's sha256, checked before every load
                "tokenizer": _save_tokenizer(ref, tmp),
                "inputs": input_names,
                "opset": opset,
                "versions": _versions(),
                "variants": {
                    "fp32": {
                        "file": MODEL_FILE,
                        "precision": "fp32",
                        "sha256": sha256_file(tmp / MODEL_FILE),
                        "batch_invariant": True,
                    }
                },
            }
            write_manifest(tmp, manifest)
        with steps.step("verify", f"against {family.reference}.encode, atol={atol:g}"):
            figures = family.verify(tmp, ref)
            manifest["variants"]["fp32"]["verification"] = figures
            if log:
                log(
                    f"      max abs diff {figures['max_abs_diff']:.2e}, single vs batch "
                    f"{figures['single_vs_batch_max_abs_diff']:.2e} on {figures['n_texts']} probes"
                )
            worst = max(figures["max_abs_diff"], figures["single_max_abs_diff"])
            if not worst <= atol:  # NOTE: also catches NaN
                raise VerificationError(
                    f"{family.task} graph differs from {family.reference}.encode by max abs {worst:.3e} > "
                    "atol "
                    f"{atol:g} (worst text: {figures.get('worst_text')!r}); nothing was written"
                )
        finish(steps, tmp, output, manifest)
    return manifest


def trace_to_onnx(
    module, tokenizer, path: Path, outputs: list[str], axes: dict[str, dict[int, str]], opset: int
) -> list[str]:
    """Trace ``module(input_ids, attention_mask)`` with dynamic batch and sequence axes."""
    import torch

    # NOTE: a padded two-row sample, so tracing sees both real and padded positions.
    sample = tokenizer(["an example sentence to trace with", "short"], padding=True, return_tensors="pt")
    args = (sample["input_ids"].to(torch.int64), sample["attention_mask"].to(torch.int64))
    names = ["input_ids", "attention_mask"]
    dyn = {n: {0: "batch", 1: "sequence"} for n in names} | axes
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=names,
            output_names=outputs,
            dynamic_axes=dyn,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    return names


def module_types(ref) -> list[str]:
    return [type(m).__name__ for m in ref._modules.values()]
