"""Small ``encode`` calls, as a server's dynamic batches make them: N random corpus lines per call, with and
without two pieces of the parallel-runs path, in one process, alternating.

    python benchmarks/small_calls.py minilm.embedrt --corpus ../shared/data/corpus-qnli.txt --texts 2 3 4 8
    python benchmarks/small_calls.py minilm.embedrt --corpus C --texts 12 --calls 400 --compare pool

``--compare spread`` (default): each call as the encoder runs it against the same call without
``runtime.batching.spread_runs`` (a call of a few texts in one run, not one run per worker).
``--compare pool``: the encoder's kept worker threads against a thread pool started for each call.
Prints ms per call (median of the rounds) and the ratio, and checks that both ways give the same vectors
bit for bit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export_dir")
    ap.add_argument("--corpus", required=True, help="text file, one text per line")
    ap.add_argument("--variant", default="int8")
    ap.add_argument("--texts", type=int, nargs="+", default=[2, 3, 4, 8, 16], help="texts per call")
    ap.add_argument("--calls", type=int, default=300, help="calls per round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--compare", choices=("spread", "pool"), default="spread")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        lines = [t for t in Path(args.corpus).read_text(encoding="utf-8").splitlines() if t.strip()]
    except (OSError, UnicodeDecodeError) as e:
        print(f"small_calls: cannot read --corpus {args.corpus}: {e}", file=sys.stderr)
        return 2
    if not lines or min(args.texts) < 1 or args.calls < 1 or args.rounds < 1:
        print("small_calls: need a non-empty corpus and positive --texts, --calls, --rounds", file=sys.stderr)
        return 2

    import embedrt.runtime.batching as batching
    from embedrt import Encoder
    from embedrt.errors import EmbedrtError

    try:
        enc = Encoder(args.export_dir, device="cpu", variant=args.variant)
    except EmbedrtError as e:
        print(f"small_calls: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    print(f"{enc.graph_status}; parallel_runs {enc.parallel_runs}; comparing {args.compare}")
    spread = batching.spread_runs

    def setup(new: bool) -> None:
        if args.compare == "spread":
            batching.spread_runs = spread if new else (lambda runs, lengths, workers: runs)
        elif new:
            enc.__dict__.pop("_runners", None)  # the encoder's own kept pool
        else:
            enc._runners = None  # run_batches then starts a pool for the call

    rng = np.random.default_rng(args.seed)
    for n in args.texts:
        calls = [[lines[i] for i in rng.integers(0, len(lines), n)] for _ in range(args.calls)]
        times: dict[bool, list[float]] = {False: [], True: []}
        vectors: dict[bool, np.ndarray] = {}
        for rnd in range(args.rounds):
            for new in (True, False) if rnd % 2 else (False, True):
                setup(new)
                enc.encode(calls[0])
                t0 = time.perf_counter()
                out = [enc.encode(c) for c in calls]
                times[new].append((time.perf_counter() - t0) / len(calls) * 1e3)
                vectors[new] = np.concatenate(out)
        setup(True)
        old, now = float(np.median(times[False])), float(np.median(times[True]))
        same = np.array_equal(vectors[False], vectors[True])
        label = "without spread_runs" if args.compare == "spread" else "a pool per call"
        print(
            f"{n} texts per call: {label} {old:.2f} ms, as the encoder runs it {now:.2f} ms, "
            f"{old / now:.2f}x "
            f"(median of {args.rounds} rounds of {args.calls} calls); vectors equal bit for bit: {same}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
