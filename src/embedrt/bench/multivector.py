"""``embedrt bench`` for a multi-vector (ColBERT) export: the multi-vector task spec of the one orchestrator
(``orchestrate.run_bench``). Texts/s of ``embedrt.MultiVectorEncoder.encode_document`` against
sentence-transformers' ``MultiVectorEncoder`` (PyTorch, and its ONNX backend where optimum is importable),
each runner in its own process, the order flipping every repetition, with medians, ratios repetition by
repetition, agreement on every token vector and peak RSS.

``run_bench`` uses this spec when the export's manifest says ``task: multi-vector``; texts are the non-blank
``--corpus`` lines, encoded as documents (the indexing workload: the document length and skiplist).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..manifest import Manifest
from .orchestrate import BenchConfig, TaskSpec
from .sparse import text_lengths, texts_title

SCHEMA = "embedrt-bench-multi-vector/1"


def _document_lengths(cfg: BenchConfig, export_dir: Path, manifest: Manifest) -> list[int]:
    """Real tokens of each text as a document: cut at the model's document length where it has one."""
    limit = manifest.multi_vector.document_length
    return [min(n, limit) if limit else n for n in text_lengths(cfg, export_dir, manifest)]


def _compare_token_vectors(values: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Every token vector of every text (the same token counts, or the shapes differ and the orchestrator
    reports that instead): the largest difference."""
    return {"max_abs_diff": float(np.abs(values - reference).max()) if values.size else 0.0}


MULTI_VECTOR_SPEC = TaskSpec(
    task="multi-vector",
    schema=SCHEMA,
    unit="texts",
    count_key="n_texts",
    noun="texts",
    lengths=_document_lengths,
    compare=_compare_token_vectors,
    title=texts_title("Multi-vector encoder", "dim"),
    agreement_columns=(("max abs diff vs st-torch", "max_abs_diff", ".1e"),),
    onnx_copy_dir="st-onnx-multi-vector",
    config_tag={"task": "multi-vector"},
    config_extra=lambda manifest: {"dim": manifest.dim},
    # NOTE: corpus_gflop models the transformer only, and the token projection is small beside it, but the
    # sentence-level FLOP model is the embedding task's: no GFLOP/s and no roofline, as for sparse
    roofline=False,
    flip_order=True,
    rate_format=".1f",
    rate_header="texts/s",
)
