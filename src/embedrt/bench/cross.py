"""``embedrt bench`` for a cross-encoder export: the cross-encoder task spec of the one orchestrator
(``orchestrate.run_bench``). Pairs/s of ``embedrt.CrossEncoder`` against sentence-transformers'
``CrossEncoder`` (PyTorch, and its ONNX backend where optimum is importable), every runner in its own
process, alternating, with medians, pair-by-pair ratios and score agreement.

``run_bench`` uses this spec when the export's manifest says ``task: cross-encoder``; the pairs come from the
``--pairs-from``/``--corpus`` file (the last two tab-separated fields of each line, e.g. stsb-dev.tsv).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..manifest import Manifest
from .orchestrate import BenchConfig, TaskSpec
from .worker import read_pairs  # NOTE: the worker's own parser, so both sides read the same pairs

SCHEMA = "embedrt-bench-cross/1"


def _pair_lengths(cfg: BenchConfig, export_dir: Path, manifest: Manifest) -> list[int]:
    """Real tokens of every pair.

    Raises:
        InputError: a pairs file with no pair in it.
    """
    from ..runtime.cross_encoder import PairTokenizer
    from ..runtime.session import load_tokenizer

    pairs = read_pairs(cfg.corpus, cfg.limit)
    if not pairs:
        raise InputError(f"no pairs in {cfg.corpus}: expected lines with at least two tab-separated fields")
    tok = load_tokenizer(manifest, cls=PairTokenizer)
    return [len(r) for r in tok.encode_pairs(pairs)[0]]


def _compare_scores(scores: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    return {"max_abs_diff": float(np.abs(scores - reference).max())}


def _title(report: dict[str, Any]) -> str:
    cfg, m = report["config"], report["machine"]
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['isa']}); {report['created']}. Cross-encoder "
        f"{Path(cfg['model_dir']).name}: {cfg['n_pairs']} pairs from {Path(cfg['corpus']).name}, "
        f"{cfg['real_tokens']} real tokens ({cfg['mean_tokens']:.1f}/pair), "
        f"batch {cfg['headline_batch_size']}, median of {cfg['repeats']} alternating repetitions."
    )


CROSS = TaskSpec(
    task="cross-encoder",
    schema=SCHEMA,
    unit="pairs",
    count_key="n_pairs",
    noun="pairs",
    lengths=_pair_lengths,
    compare=_compare_scores,
    title=_title,
    agreement_columns=(("max abs diff vs st-torch", "max_abs_diff", ".1e"),),
    onnx_copy_dir="st-onnx-cross",
    config_tag={"task": "cross-encoder"},
    # NOTE: one roofline measurement before the repetitions, as this report has always had it
    roofline_per_repetition=False,
    rate_format=".1f",
    rate_header="pairs/s",
)
