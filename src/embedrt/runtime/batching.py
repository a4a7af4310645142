"""Length-sorted batching and the progress bar, shared by every encoder."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def length_sorted_batches(lengths: np.ndarray, batch_size: int, budget: int | None) -> list[np.ndarray]:
    """Index batches, longest first (stable); a token budget (rows x longest length) shrinks long batches."""
    order = np.argsort(-lengths, kind="stable")
    batches = []
    start = 0
    n = len(order)
    while start < n:
        rows = batch_size
        if budget is not None:
            rows = max(1, min(batch_size, budget // max(1, int(lengths[order[start]]))))
        batches.append(order[start : start + rows])
        start += rows
    return batches


def run_batches(
    lengths: np.ndarray,
    batch_size: int,
    budget: int | None,
    run: Callable[[np.ndarray], None],
    show_progress_bar: bool | None = None,
    desc: str = "Encoding",
    unit: str = "text",
) -> None:
    """Call ``run(indices)`` for each length-sorted batch, with a tqdm bar when asked (and installed)."""
    bar = None
    if show_progress_bar:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(lengths), desc=desc, unit=unit)
        except ImportError:
            bar = None
    try:
        for idx in length_sorted_batches(lengths, batch_size, budget):
            run(idx)
            if bar is not None:
                bar.update(len(idx))
    finally:
        if bar is not None:
            bar.close()
