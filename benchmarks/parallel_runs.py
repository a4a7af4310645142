"""One encode call with its graph runs one at a time against two at once (``Encoder(parallel_runs=...)``).

    python benchmarks/parallel_runs.py minilm.embedrt --variant int8 --corpus ../shared/data/corpus-qnli.txt \
        --limit 2000 --rounds 6

Both encoders load in one process: ``parallel_runs=1`` (every run on the first session, all onnxruntime
threads) and ``parallel_runs=N`` (default: the cores; the runs of one call on a second session with one
thread, N at a time). Each round encodes the texts twice with each, alternating (A B A B), at
``--batch-size``; the figure per round is serial time / parallel time, then the median over rounds.
The vectors are compared bit for bit first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("export")
    p.add_argument("--variant", default="int8")
    p.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "corpus-qnli.txt"))
    p.add_argument("--limit", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--parallel", type=int, default=None, help="runs at once (default: the cores)")
    args = p.parse_args(argv)
    from embedrt import Encoder
    from embedrt.bench.worker import read_nonblank_texts
    from embedrt.errors import EmbedrtError
    from embedrt.runtime.util import available_cores

    try:
        texts = read_nonblank_texts(args.corpus, args.limit)
        n = args.parallel or max(2, available_cores())
        serial = Encoder(args.export, device="cpu", variant=args.variant, parallel_runs=1)
        parallel = Encoder(args.export, device="cpu", variant=args.variant, parallel_runs=n)
    except (OSError, EmbedrtError) as e:
        print(f"parallel_runs: {e}", file=sys.stderr)
        return 2
    t = time.perf_counter()
    parallel._parallel()  # NOTE: what the first call with more than one run pays once
    opened = time.perf_counter() - t
    a = serial.encode(texts, batch_size=args.batch_size)
    b = parallel.encode(texts, batch_size=args.batch_size)
    print(
        f"{args.variant}, {len(texts)} texts of {Path(args.corpus).name}, batch {args.batch_size}, "
        f"{n} runs at once; vectors equal bit for bit: {np.array_equal(a, b)}; "
        f"the second session opened in {opened:.2f} s"
    )

    def timed(enc) -> float:
        t = time.perf_counter()
        enc.encode(texts, batch_size=args.batch_size)
        return time.perf_counter() - t

    ratios = []
    for _ in range(args.rounds):
        ts, tp = timed(serial), timed(parallel)
        ts, tp = ts + timed(serial), tp + timed(parallel)
        ratios.append(ts / tp)
        rate_s, rate_p = 2 * len(texts) / ts, 2 * len(texts) / tp
        print(f"  serial {rate_s:.0f} texts/s, parallel {rate_p:.0f}: {ts / tp:.3f}x")
    print(f"serial/parallel time, median of {args.rounds} rounds: {statistics.median(ratios):.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
