"""The fp32 packed graph (model.packed.onnx, every Linear a native PackedMatMul) against the fused-pooling
graph (model.fused.onnx, onnxruntime's MatMul), end to end, on this CPU's best PackedMatMul tile.

    python benchmarks/packed_vs_fused.py minilm.embedrt [--corpus ../shared/data/corpus-qnli.txt]
        [--limit 1500] [--rounds 4]

Each run is a fresh process: ``Encoder(DIR, variant="fp32")`` with onnxruntime's default threads, one warm-up
call, then ``encode`` of the first --limit non-blank lines at batch 32, timed by wall clock, with
EMBEDRT_PACKED_MATMUL=1 (the packed graph, on the AVX2 tile too) or =0 (the fused graph). The order flips
every round; it prints each run, the medians and the time ratio fused / packed (below 1: the fused graph is
faster here). How the default graph per ISA was chosen (docs/cpu.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

RUN = r"""
import json, sys, time
from embedrt import Encoder
export, corpus, limit = sys.argv[1:4]
texts = [l.rstrip("\n") for l in open(corpus, encoding="utf-8") if l.strip()][: int(limit)]
e = Encoder(export, variant="fp32", device="cpu")
e.encode(texts[:32])
t = time.perf_counter()
e.encode(texts, batch_size=32)
print(json.dumps({"s": time.perf_counter() - t, "graph": str(e.graph_status)}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export")
    p.add_argument("--corpus", default=str(DATA / "corpus-qnli.txt"))
    p.add_argument("--limit", type=int, default=1500)
    p.add_argument("--rounds", type=int, default=4)
    a = p.parse_args()
    times: dict[str, list[float]] = {"packed": [], "fused": []}
    for r in range(a.rounds):
        for name in ("packed", "fused") if r % 2 == 0 else ("fused", "packed"):
            env = dict(os.environ, EMBEDRT_PACKED_MATMUL="1" if name == "packed" else "0")
            out = subprocess.run(
                [sys.executable, "-c", RUN, a.export, a.corpus, str(a.limit)],
                env=env, check=True, capture_output=True, text=True,
            ).stdout
            got = json.loads(out.strip().splitlines()[-1])
            times[name].append(got["s"])
            print(f"{name}: {got['s']:.3f} s  ({got['graph']})", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median packed {med['packed']:.3f} s, fused {med['fused']:.3f} s; "
          f"time ratio fused / packed {med['fused'] / med['packed']:.3f}")


if __name__ == "__main__":
    main()
