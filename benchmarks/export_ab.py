"""Two exports of one model side by side: the same texts encoded by each, in a fresh process per run, the
order flipping every round.

    python benchmarks/export_ab.py A.embedrt B.embedrt --corpus ../shared/data/corpus-qnli.txt --limit 2000
    python benchmarks/export_ab.py X.embedrt X.embedrt --variant int8 --env-a EMBEDRT_PACKED_MATMUL=0 ...

How a graph change is measured end to end: export the model before and after it, then run this. Each run is
`Encoder(DIR, variant=...)` with onnxruntime's default threads (``--threads N`` to fix them), one warm-up
call, then `encode` of the first ``--limit`` non-blank lines at batch 32, timed by wall clock (CPU seconds of
the process with ``--threads 1``). Prints the medians, the ratio A/B of each round, which graph each export
served, and the largest difference between their vectors. ``--env-a`` / ``--env-b`` (``NAME=VALUE``,
repeatable) set environment variables for one side's runs: one export against itself with a graph choice
switched off. ``--single`` times one call per text instead (each round's p50 of a call).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RUN = r"""
import json, sys, time
import numpy as np
from embedrt import Encoder
export, corpus, limit, variant, threads, single, out = sys.argv[1:8]
threads = int(threads) or None
texts = [l.rstrip("\n") for l in open(corpus, encoding="utf-8") if l.strip()][: int(limit)]
e = Encoder(export, variant=variant, device="cpu", intra_op_threads=threads)
e.encode(texts[:8])
clock = time.process_time if threads == 1 else time.perf_counter
if single == "1":  # one call per text: the p50 of a call
    calls = []
    for text in texts:
        t = clock()
        e.encode(text)
        calls.append(clock() - t)
    dt = float(np.median(calls))
    v = e.encode(texts, batch_size=32)
else:
    t = clock()
    v = e.encode(texts, batch_size=32)
    dt = clock() - t
np.save(out, v)
print(json.dumps({"s": dt, "graph": str(e.graph_status)}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--corpus", required=True)
    p.add_argument("--limit", type=int, default=2000)
    p.add_argument("--variant", default="fp32")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its default)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--single", action="store_true", help="one call per text: compare the p50 of a call")
    p.add_argument("--env-a", action="append", default=[], metavar="NAME=VALUE", help="for A's runs")
    p.add_argument("--env-b", action="append", default=[], metavar="NAME=VALUE", help="for B's runs")
    args = p.parse_args()
    envs = {}
    for k in ("a", "b"):
        extra = getattr(args, f"env_{k}")
        bad = [e for e in extra if "=" not in e]
        if bad:
            p.error(f"--env-{k} takes NAME=VALUE, got {bad[0]!r}")
        envs[k] = {**os.environ, **dict(e.split("=", 1) for e in extra)}
    times: dict[str, list[float]] = {"a": [], "b": []}
    graphs: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for k in ("a", "b") if r % 2 == 0 else ("b", "a"):
                argv = [getattr(args, k), args.corpus, str(args.limit), args.variant, str(args.threads)]
                argv.append("1" if args.single else "0")
                out = subprocess.run(
                    [sys.executable, "-c", RUN, *argv, f"{tmp}/{k}.npy"],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=envs[k],
                )
                res = json.loads(out.stdout.strip().splitlines()[-1])
                times[k].append(res["s"])
                graphs[k] = res["graph"]
        diff = float(np.abs(np.load(f"{tmp}/a.npy") - np.load(f"{tmp}/b.npy")).max())
    a, b = np.array(times["a"]), np.array(times["b"])
    print(f"A: {args.a}: {graphs['a']}\nB: {args.b}: {graphs['b']}")
    print(
        f"{args.limit} texts of {Path(args.corpus).name}, {args.variant}"
        + (
            f", one call per text: p50 A {np.median(a) * 1e3:.2f} ms, B {np.median(b) * 1e3:.2f} ms"
            if args.single
            else f": A {np.median(a):.2f} s, B {np.median(b):.2f} s"
        )
        + f", A/B per round {np.round(a / b, 3).tolist()}, max abs diff {diff:.1e}"
    )


if __name__ == "__main__":
    main()
