"""How texts are split into graph runs, and the progress bar, shared by every encoder and the server.

One graph run pads every row to its longest text, so a batch that mixes short and long texts does more work
than its texts need. ``length_sorted_batches`` sorts the texts by length (longest first, stable) and cuts them
into consecutive runs that minimise ``sum(run_cost + rows x longest)``, the padded tokens plus a fixed cost
per run (dynamic programming, exact), each within ``batch_size`` rows and ``budget`` padded tokens. Which
texts share a run does not change their vectors: the graphs are batch-invariant (tests/runtime).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor, wait

import numpy as np

#: The fixed cost of one graph run, in padded tokens: what a run costs beyond its rows x longest tokens.
#: NOTE: measured with benchmarks/run_cost.py (a graph run costs a + b x rows x longest; this is a / b) on
#: all-MiniLM-L6-v2, AVX-512 VNNI: about 8 tokens (packed fp32) and 7 (int8) on one onnxruntime thread, 21
#: and 28 on two, where the per-token work halves and the fixed cost does not. 16 sits in between.
RUN_COST_TOKENS = 16


def length_sorted_batches(
    lengths: np.ndarray, batch_size: int, budget: int | None, run_cost: int = RUN_COST_TOKENS
) -> list[np.ndarray]:
    """Index batches, longest first: the split of the length-sorted texts that costs least.

    Args:
        lengths: tokens of each text (as it is fed: special tokens and prompt included).
        batch_size: rows per graph run, at most.
        budget: padded tokens (rows x longest) per graph run, at most; a single row always runs.
            None: no bound.
        run_cost: the fixed cost of one run, in padded tokens; 0 splits wherever it saves a padded token.

    Returns:
        Index arrays into ``lengths``, one per graph run, longest texts first. Of equally cheap splits the one
        whose runs are full from the longest end is taken (texts of one length: ``batch_size`` rows per run,
        the remainder last).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if n == 0:
        return []
    order = np.argsort(-lengths, kind="stable")
    longest = np.maximum(lengths[order], 1)  # NOTE: sorted longest first, so a run [i, j) is longest[i] wide
    if budget is not None:
        window = max(1, min(batch_size, int(budget // int(longest[-1]))))
    else:
        window = batch_size
    best = np.zeros(n + 1, dtype=np.int64)
    cut = np.zeros(n + 1, dtype=np.int64)
    big = np.iinfo(np.int64).max // 4
    for j in range(1, n + 1):
        lo = max(0, j - window)
        starts = np.arange(lo, j)
        padded = (j - starts) * longest[lo:j]
        cost = best[lo:j] + run_cost + padded
        if budget is not None:
            cost[:-1][padded[:-1] > budget] = big  # NOTE: one row always fits
        # NOTE: the last minimum (latest start) on ties, so that earlier runs are the full ones
        k = len(cost) - 1 - int(np.argmin(cost[::-1]))
        best[j], cut[j] = cost[k], lo + k
    runs = []
    j = n
    while j > 0:
        runs.append(order[cut[j] : j])
        j = int(cut[j])
    return runs[::-1]


def spread_runs(runs: list[np.ndarray], lengths: np.ndarray, workers: int) -> list[np.ndarray]:
    """``runs`` with the widest ones (rows x longest) cut in two, at the middle row, until there are
    ``workers`` of them or every run is one row: runs that go in parallel need one per worker. A second
    onnxruntime thread does little for one graph run of a few short texts; two such runs side by side, one
    per core, nearly halve it (benchmarks/small_calls.py: int8 all-MiniLM-L6-v2, 2-4 random corpus lines per
    call, 1.35-1.46x). Each part keeps the longest-first order; no text moves between runs otherwise."""
    runs = list(runs)
    while runs and len(runs) < workers:
        widest = max(
            range(len(runs)), key=lambda r: (len(runs[r]) > 1, len(runs[r]) * int(lengths[runs[r][0]]))
        )
        run = runs[widest]
        if len(run) < 2:
            break
        half = (len(run) + 1) // 2
        runs[widest : widest + 1] = [run[:half], run[half:]]
    return runs


def run_batches(
    lengths: np.ndarray,
    batch_size: int,
    budget: int | None,
    run: Callable[[np.ndarray], None],
    show_progress_bar: bool | None = None,
    desc: str = "Encoding",
    unit: str = "text",
    run_cost: int = RUN_COST_TOKENS,
    parallel_run: Callable[[np.ndarray], None] | None = None,
    workers: int = 1,
    pool: Callable[[], Executor] | None = None,
) -> None:
    """Call ``run(indices)`` for each graph run of ``length_sorted_batches``, with a tqdm bar when asked (and
    installed).

    With ``workers`` > 1, a ``parallel_run`` and more than one graph run, ``parallel_run(indices)`` is called
    instead, from ``workers`` threads at once, longest runs first; the runs are independent (each writes its
    own rows). The first error is raised once the runs already started have finished; the runs not yet
    started are cancelled. ``pool()``, when given, returns the executor to run them on (one the caller keeps:
    a pool per call made 12-text calls 1.10x slower); otherwise a pool of
    ``workers`` threads lives for this call.
    """
    bar = None
    if show_progress_bar:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(lengths), desc=desc, unit=unit)
        except ImportError:
            bar = None
    try:
        runs = length_sorted_batches(lengths, batch_size, budget, run_cost)
        if workers > 1 and parallel_run is not None:
            runs = spread_runs(runs, np.asarray(lengths), workers)
        if workers > 1 and parallel_run is not None and len(runs) > 1:
            own = pool is None
            size = min(workers, len(runs))
            executor = ThreadPoolExecutor(size, thread_name_prefix="embedrt-run") if own else pool()
            futures = []
            try:
                futures = [(executor.submit(parallel_run, idx), idx) for idx in runs]
                for future, idx in futures:
                    future.result()
                    if bar is not None:
                        bar.update(len(idx))
            finally:  # NOTE: after an error, cancel the runs not started and wait for the ones that are
                for future, _ in futures:
                    future.cancel()
                wait([f for f, _ in futures])
                if own:
                    executor.shutdown(wait=True)
            return
        for idx in runs:
            run(idx)
            if bar is not None:
                bar.update(len(idx))
    finally:
        if bar is not None:
            bar.close()
