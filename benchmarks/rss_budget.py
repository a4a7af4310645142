"""Peak RSS and throughput of one encode setting, in a fresh process (run it once per setting).

Run: python benchmarks/rss_budget.py EXPORT_DIR [--variant fp32] [--max-batch-tokens 2048 | --no-budget]
[--no-arena]

Peak RSS (ru_maxrss) is per process, so each setting needs its own process; throughput from a single process
is
noisy on a shared machine: compare settings with `embedrt bench` or alternation, not with this number.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import onnxruntime as ort

from embedrt import Encoder
from embedrt.runtime.native import library_path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir")
    ap.add_argument("--variant", default="fp32")
    ap.add_argument("--max-batch-tokens", type=int, default=2048)
    ap.add_argument("--no-budget", action="store_true", help="batch_size only (max_batch_tokens=None)")
    ap.add_argument("--no-arena", action="store_true", help="disable onnxruntime's CPU memory arena")
    ap.add_argument("--limit", type=int, default=4000)
    args = ap.parse_args()
    texts = (DATA / "corpus-qnli.txt").read_text(encoding="utf-8").splitlines()[: args.limit]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_cpu_mem_arena = not args.no_arena
    # NOTE: with session_options given, "auto" would leave the native graph alone; measure the graph users get
    enc = Encoder(
        args.export_dir,
        device="cpu",
        variant=args.variant,
        session_options=so,
        max_batch_tokens=None if args.no_budget else args.max_batch_tokens,
        native=library_path() is not None,
    )
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    enc.encode(texts[:64])
    t = time.perf_counter()
    enc.encode(texts, batch_size=32)
    dt = time.perf_counter() - t
    print(
        json.dumps(
            {
                "variant": args.variant,
                "graph": str(enc.graph_status),
                "max_batch_tokens": enc.max_batch_tokens,
                "arena": not args.no_arena,
                "sent_per_s": round(len(texts) / dt, 1),
                "rss_after_load_mib": round(loaded),
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
