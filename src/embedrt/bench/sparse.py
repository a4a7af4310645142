"""``embedrt bench`` for a sparse (SPLADE) export: the sparse task spec of the one orchestrator
(``orchestrate.run_bench``). Texts/s of ``embedrt.SparseEncoder`` against sentence-transformers'
``SparseEncoder`` (PyTorch, and its ONNX backend where optimum is importable), every runner in its own
process, the order flipping every repetition, with medians, ratios repetition by repetition, agreement on the
active dimensions and peak RSS.

``run_bench`` uses this spec when the export's manifest says ``task: sparse``; texts are the non-blank
``--corpus`` lines.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..manifest import Manifest
from .orchestrate import BenchConfig, TaskSpec
from .worker import read_nonblank_texts  # NOTE: the worker's own reader, so both sides read the same texts

SCHEMA = "embedrt-bench-sparse/1"


def text_lengths(cfg: BenchConfig, export_dir: Path, manifest: Manifest) -> list[int]:
    from ..runtime.session import load_tokenizer

    tok = load_tokenizer(manifest)  # NOTE: checked against its sha256, as every runtime load
    return [len(r) for r in tok.encode_ids(read_nonblank_texts(cfg.corpus, cfg.limit))]


def _compare_active_dims(values: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Every dimension of the agreement texts: the largest difference, and how many dimensions are active in
    one and not the other."""
    return {
        "max_abs_diff": float(np.abs(values - reference).max()),
        "active_dims_differing": int(((values > 0) != (reference > 0)).sum()),
        "mean_active_dims": float((values > 0).sum(1).mean()),
    }


def texts_title(kind: str, size: str) -> Callable[[dict[str, Any]], str]:
    """The markdown's first line for a task over corpus texts: ``kind`` names the model, ``size`` the config
    key of its width (``vocab``, ``dim``)."""

    def title(report: dict[str, Any]) -> str:
        cfg, m = report["config"], report["machine"]
        return (
            f"Machine: {m['cpu']}, {m['cores']} cores ({m['isa']}). {kind} {Path(cfg['model_dir']).name} "
            f"({size} {cfg[size]}): {cfg['n_texts']} texts from {Path(cfg['corpus']).name}, "
            f"{cfg['real_tokens']} real tokens ({cfg['mean_tokens']:.1f}/text), batch "
            f"{cfg['headline_batch_size']}, median of {cfg['repeats']} alternating repetitions."
        )

    return title


SPARSE_SPEC = TaskSpec(
    task="sparse",
    schema=SCHEMA,
    unit="texts",
    count_key="n_texts",
    noun="texts",
    lengths=text_lengths,
    compare=_compare_active_dims,
    title=texts_title("Sparse encoder", "vocab"),
    agreement_columns=(
        ("max abs diff vs st-torch", "max_abs_diff", ".1e"),
        ("active dims (mean)", "mean_active_dims", ".0f"),
    ),
    onnx_copy_dir="st-onnx-sparse",
    config_tag={"task": "sparse"},
    config_extra=lambda manifest: {"vocab": manifest.dim},
    # NOTE: corpus_gflop models the transformer only, not the vocabulary-wide MLM head, which costs about as
    # much again: no GFLOP/s and no roofline rather than a wrong one
    roofline=False,
    flip_order=True,
    rate_format=".1f",
    rate_header="texts/s",
)
