"""The fixed cost of one graph run, in padded tokens: what ``embedrt.runtime.batching.RUN_COST_TOKENS`` is.

Run: python benchmarks/run_cost.py EXPORT_DIR [--variant fp32 int8] [--threads 1] [--reps 5]

For each variant it times the graph run ``Encoder`` makes (padding included) on token rows of R rows x L
tokens, for R in --rows and L in --lengths, the shapes alternating within each repetition, and takes the
median of each. It then fits ``t = a + b x (R x L)`` by least squares of the relative error over the
shapes (and, beside it, the fit with an attention term ``+ c x R x L^2``), and prints ``a / b``: the tokens'
worth of one run's fixed cost. The dynamic programme of ``length_sorted_batches`` charges that many tokens
per run.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from embedrt import Encoder


def time_shapes(enc: Encoder, shapes: list[tuple[int, int]], reps: int) -> dict[tuple[int, int], float]:
    """Median seconds of one graph run (pad + session run) per (rows, length), shapes alternating."""
    vocab_low, vocab_high = 1000, 2000  # NOTE: ordinary word-piece ids; the values do not change the time
    rng = np.random.default_rng(0)
    cls, sep = enc.tokenizer.encode_ids([""])[0]
    rows = {
        (r, n): [[cls, *rng.integers(vocab_low, vocab_high, n - 2).tolist(), sep] for _ in range(r)]
        for r, n in shapes
    }
    times: dict[tuple[int, int], list[float]] = {s: [] for s in shapes}
    for s in shapes:  # warm-up: every shape once
        enc._run(*enc.tokenizer.pad(rows[s]), None)
    for _ in range(reps):
        for s in shapes:
            t0 = time.perf_counter()
            ids, mask = enc.tokenizer.pad(rows[s])
            enc._run(ids, mask, None)
            times[s].append(time.perf_counter() - t0)
    return {s: float(np.median(v)) for s, v in times.items()}


def fit(medians: dict[tuple[int, int], float]) -> dict[str, float]:
    """Least squares (relative) of t = a + b R L, and of t = a + b R L + c R L^2."""
    shapes = list(medians)
    t = np.array([medians[s] for s in shapes])
    rl = np.array([r * n for r, n in shapes], dtype=np.float64)
    rl2 = np.array([r * n * n for r, n in shapes], dtype=np.float64)
    # NOTE: weighted by 1/t (relative errors), so that the small runs, where the fixed cost shows, count as
    # much as the large ones, whose absolute noise would otherwise decide the intercept
    w = 1.0 / t
    lin = np.stack([np.ones_like(rl), rl], 1)
    quad = np.stack([np.ones_like(rl), rl, rl2], 1)
    (a, b), *_ = np.linalg.lstsq(lin * w[:, None], t * w, rcond=None)
    (a2, b2, c2), *_ = np.linalg.lstsq(quad * w[:, None], t * w, rcond=None)
    resid = t - (a + b * rl)
    return {
        "a_ms": 1e3 * a,
        "b_us_per_token": 1e6 * b,
        "run_cost_tokens": a / b,
        "rel_rmse": float(np.sqrt(np.mean((resid / t) ** 2))),
        "quad_a_ms": 1e3 * a2,
        "quad_b_us_per_token": 1e6 * b2,
        "quad_c_ns_per_token2": 1e9 * c2,
        "quad_run_cost_tokens": a2 / b2,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir")
    ap.add_argument("--variant", nargs="+", default=["fp32", "int8"])
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--lengths", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    shapes = list(itertools.product(args.rows, args.lengths))
    for variant in args.variant:
        enc = Encoder(args.export_dir, device="cpu", variant=variant, intra_op_threads=args.threads)
        medians = time_shapes(enc, shapes, args.reps)
        f = fit(medians)
        print(f"{variant} ({enc.graph_status}), {args.threads} thread(s), median of {args.reps}:")
        for (r, n), s in medians.items():
            print(f"  rows {r:3d} x {n:3d} tokens: {1e3 * s:8.3f} ms")
        print(
            f"  fit t = a + b*R*L: a {f['a_ms']:.3f} ms, b {f['b_us_per_token']:.2f} us/token, "
            f"a/b = {f['run_cost_tokens']:.1f} tokens (relative RMS error {100 * f['rel_rmse']:.1f}%)"
        )
        print(
            f"  with attention term: a {f['quad_a_ms']:.3f} ms, b {f['quad_b_us_per_token']:.2f} us/token, "
            f"c {f['quad_c_ns_per_token2']:.2f} ns/token^2, a/b = {f['quad_run_cost_tokens']:.1f} tokens"
        )


if __name__ == "__main__":
    main()
