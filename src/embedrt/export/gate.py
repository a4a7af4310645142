"""The quality gate for reduced-precision variants: drift against fp32, measured at export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .verify import compare, probe_texts

#: A built-in sample of ordinary sentences (written for embedrt), used when no --calibration file is given.
SAMPLE_SENTENCES = [
    "A man is playing a guitar on a small stage.",
    "Someone is performing music in front of an audience.",
    "The cat is sleeping on the warm windowsill.",
    "A dog runs across the park chasing a ball.",
    "How do I reset my password if I forgot my email address?",
    "What is the capital city of Australia?",
    "Canberra was chosen as a compromise between Sydney and Melbourne.",
    "The stock market fell sharply after the interest rate announcement.",
    "Central banks raised rates to fight persistent inflation.",
    "She painted the kitchen walls a pale shade of green.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Which planet in the solar system has the most moons?",
    "The committee postponed the vote until next Tuesday.",
    "Heavy rain caused flooding in several low-lying neighbourhoods.",
    "Who wrote the novel that begins with the line about a truth universally acknowledged?",
    "Add two cups of flour and stir until the dough is smooth.",
    "The new smartphone has a larger battery and a brighter screen.",
    "Researchers found that regular exercise improves sleep quality.",
    "The train to Berlin was delayed by forty minutes.",
    "Is it safe to drink tap water in most European cities?",
    "The museum reopened after a two-year renovation.",
    "A group of children are building a sandcastle on the beach.",
    "Kids play in the sand near the ocean.",
    "The software update fixed a bug that drained the battery overnight.",
    "Vaccines train the immune system to recognise a pathogen.",
    "What year did the first person walk on the moon?",
    "The orchestra tuned their instruments before the concert began.",
    "He forgot his umbrella and got soaked on the way home.",
    "Solar panels on the roof now cover most of the house's electricity needs.",
    "The river freezes every winter, and people skate on it.",
    "Can you recommend a good book about the history of mathematics?",
    "The goalkeeper saved a penalty in the final minute of the match.",
    "Mix the paint thoroughly before applying the second coat.",
    "The company announced record profits for the third quarter.",
    "A woman is slicing tomatoes on a wooden cutting board.",
    "Someone is cutting vegetables in the kitchen.",
    "The library extended its opening hours during exam season.",
    "Glaciers in the Alps have lost a large share of their volume since 1900.",
    "Where can I find the nearest charging station for an electric car?",
    "The senator introduced a bill to expand public transport funding.",
]


@dataclass
class GateThresholds:
    min_mean_cosine: float = 0.99
    min_cosine: float = 0.95


def _top10_overlap(a: np.ndarray, b: np.ndarray, n_queries: int = 10) -> float:
    """Mean overlap of the top-10 neighbours of the first queries, fp32 against the variant."""

    def top(e):
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        s = e[:n_queries] @ e.T
        s[np.arange(n_queries), np.arange(n_queries)] = -np.inf
        return np.argsort(-s, axis=1, kind="stable")[:, :10]

    ta, tb = top(a), top(b)
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(ta, tb, strict=True)]))


def measure_variant(
    export_dir: Path,
    variant: str,
    sentences: list[str] | None = None,
    sts_file: str | None = None,
    sts_baseline: float | None = None,
    native: bool = False,
) -> dict[str, Any]:
    """Drift of ``variant`` against the fp32 graph on the probe set and a sample of real sentences; of the
    variant's native graph when ``native`` (it must exist and run: ``native=True`` raises otherwise)."""
    from ..runtime.encoder import Encoder

    sample = list(sentences or SAMPLE_SENTENCES)
    texts = probe_texts() + sample
    fp32 = Encoder(export_dir, device="cpu", variant="fp32", native=False)
    var = Encoder(export_dir, device="cpu", variant=variant, native=True if native else False)
    ref = fp32.encode(texts)
    got = var.encode(texts)
    figures = compare(got, ref)
    figures["n_probe"] = len(probe_texts())
    figures["n_sample"] = len(sample)
    figures["worst_text"] = texts[int(np.argmin(_cos(got, ref)))][:80]
    figures["top10_overlap"] = _top10_overlap(fp32.encode(sample), var.encode(sample))
    alone = np.stack([var.encode(t) for t in texts])
    figures["batch_invariance_min_cosine"] = float(_cos(alone, got).min())
    if sts_file:
        from ..evaluate import read_sts, sts_spearman

        s1, s2, gold = read_sts(sts_file)
        base = (
            sts_baseline if sts_baseline is not None else sts_spearman(fp32.encode(s1), fp32.encode(s2), gold)
        )
        mine = sts_spearman(var.encode(s1), var.encode(s2), gold)
        figures["sts"] = {
            "file": str(sts_file),
            "fp32_spearman": base,
            "spearman": mine,
            "delta": mine - base,
        }
    return figures


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def gate_failures(figures: dict[str, Any], t: GateThresholds) -> list[str]:
    out = []
    if not figures["mean_cosine"] >= t.min_mean_cosine:
        out.append(f"mean cosine {figures['mean_cosine']:.5f} < {t.min_mean_cosine}")
    if not figures["min_cosine"] >= t.min_cosine:
        out.append(
            f"min cosine {figures['min_cosine']:.5f} < {t.min_cosine} (worst text {figures['worst_text']!r})"
        )
    return out
