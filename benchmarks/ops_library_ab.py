"""Two builds of libembedrt_ops.so side by side: the Attention op alone, then the int8 graph end to end.

    python benchmarks/ops_library_ab.py OLD.so NEW.so --export minilm.embedrt --corpus passages.txt

How a kernel change is measured: build the library before and after it (`embedrt build-ops`, copying
`embedrt/_native/libembedrt_ops.so` aside each time), then run this. The op: one thread, each library in its
own session in one process (`ai.embedrt::Attention`, random q/k/v, the last 3 keys masked), 8 or 32 texts x
12 heads x head size 32 at 244, 128, 64 and 27 tokens; medians of 25 alternating runs, the ratio per run, and
whether the outputs are equal bit for bit. End to end: `Encoder(variant="int8")` on one onnxruntime thread in
a fresh process per library (`EMBEDRT_OPS_LIBRARY`), the first `--limit` texts of `--corpus` at batch 32, CPU
seconds, alternating rounds, and whether the vectors are equal bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(8, 12, 244, 32), (8, 12, 128, 32), (32, 12, 64, 32), (32, 12, 27, 32)]

ENCODE = r"""
import sys, time, json
import numpy as np
from embedrt import Encoder
texts = [l.rstrip("\n") for l in open(sys.argv[2], encoding="utf-8") if l.strip()][: int(sys.argv[3])]
e = Encoder(sys.argv[1], variant="int8", device="cpu", intra_op_threads=1)
e.encode(texts[:8])
t = time.process_time()
v = e.encode(texts, batch_size=32)
dt = time.process_time() - t
np.save(sys.argv[4], v)
print(json.dumps({"cpu_s": dt, "graph": str(e.graph_status)}))
"""


def op_ab(old: str, new: str, reps: int) -> None:
    import onnxruntime as ort

    sys.path.insert(0, str(ROOT / "tests" / "native"))
    from reference import session
    from test_attention import _feeds, attention_custom

    ort.set_default_logger_severity(3)
    rng = np.random.default_rng(0)
    for B, H, S, D in SHAPES:
        feeds = _feeds(rng, B, H, S, D, (B, 1, 1, S))
        a = session(attention_custom(0.17), old, threads=1)
        b = session(attention_custom(0.17), new, threads=1)
        ya, yb = a.run(None, feeds)[0], b.run(None, feeds)[0]
        ta, tb = [], []
        for _ in range(reps):
            t = time.perf_counter()
            a.run(None, feeds)
            ta.append(time.perf_counter() - t)
            t = time.perf_counter()
            b.run(None, feeds)
            tb.append(time.perf_counter() - t)
        print(
            f"Attention {B}x{H}x{S}x{D}: old {np.median(ta) * 1e3:.2f} ms, new {np.median(tb) * 1e3:.2f} ms, "
            f"old/new {np.median(np.array(ta) / np.array(tb)):.2f}x, bits equal {np.array_equal(ya, yb)}"
        )


def encode_ab(old: str, new: str, export: str, corpus: str, limit: int, rounds: int) -> None:
    times: dict[str, list[float]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for name in ("old", "new") if r % 2 == 0 else ("new", "old"):
                lib = old if name == "old" else new
                env = dict(os.environ, EMBEDRT_OPS_LIBRARY=lib)
                out = subprocess.run(
                    [sys.executable, "-c", ENCODE, export, corpus, str(limit), f"{tmp}/{name}.npy"],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                times[name].append(json.loads(out.stdout.strip().splitlines()[-1])["cpu_s"])
        same = np.array_equal(np.load(f"{tmp}/old.npy"), np.load(f"{tmp}/new.npy"))
    o, n = np.array(times["old"]), np.array(times["new"])
    print(
        f"int8 encode of {limit} texts of {Path(corpus).name}: old {np.median(o):.2f} s, "
        f"new {np.median(n):.2f} s (CPU), old/new per round {np.round(o / n, 3).tolist()}, "
        f"vectors equal {same}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--export", help="an export with the int8 native graph (export-model ... --quantize int8)")
    p.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "corpus-qnli.txt"))
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=25)
    args = p.parse_args()
    op_ab(args.old, args.new, args.reps)
    if args.export:
        encode_ab(args.old, args.new, args.export, args.corpus, args.limit, args.rounds)


if __name__ == "__main__":
    main()
