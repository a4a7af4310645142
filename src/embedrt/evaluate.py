"""STS evaluation in numpy: Spearman x100 of cosine similarity against gold scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError
from .textfile import iter_lines


def read_sts(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """Read ``score<TAB>sentence1<TAB>sentence2`` lines (a header line is skipped). Fields are unquoted.

    Raises:
        InputError: the file is missing or not UTF-8, or a line does not have three tab-separated fields.
    """
    path = Path(path)
    s1, s2, scores = [], [], []
    for n, line in enumerate(iter_lines(path, "STS file"), 1):
        fields = line.split("\t")
        if len(fields) != 3:
            raise InputError(
                f"{path}:{n}: expected score<TAB>sentence1<TAB>sentence2, got {len(fields)} fields"
            )
        try:
            score = float(fields[0])
        except ValueError:
            if n == 1:
                continue  # header
            raise InputError(f"{path}:{n}: score {fields[0]!r} is not a number") from None
        scores.append(score)
        s1.append(fields[1])
        s2.append(fields[2])
    return s1, s2, np.asarray(scores, dtype=np.float64)


def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks with ties, as scipy.stats.rankdata(method='average')."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation."""
    ra, rb = _rank(np.asarray(a, np.float64)), _rank(np.asarray(b, np.float64))
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum()))


def sts_spearman(emb1: np.ndarray, emb2: np.ndarray, gold: np.ndarray) -> float:
    """Spearman x100 of row-wise cosine similarity against gold scores."""
    e1 = np.asarray(emb1, np.float64)
    e2 = np.asarray(emb2, np.float64)
    cos = (e1 * e2).sum(1) / np.maximum(np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1), 1e-30)
    return 100.0 * spearman(cos, gold)
