"""Where the time of one encode goes, by operator type, from onnxruntime's own profiler.

Run: python benchmarks/profile_ops.py EXPORT_DIR [--variant fp32|int8] [--limit 2000] [--batch-size 32]
[--standard]

It encodes the first --limit lines of ../shared/data/corpus-qnli.txt once to warm up, then once with
onnxruntime profiling on, and prints: wall time split into tokenization+padding / session runs / the rest, the
padding waste of the length-sorted batches, the nodes each run executes, and the session time per operator
type (kernel time summed over nodes). It profiles the graph Encoder serves by default (the variant's native
graph when the custom-op library is built); --standard profiles the standard-op graph instead.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from embedrt import Encoder
from embedrt.runtime.batching import length_sorted_batches

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir")
    ap.add_argument("--variant", default="fp32")
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--corpus", default=str(DATA / "corpus-qnli.txt"))
    ap.add_argument("--standard", action="store_true", help="the standard-op graph, not the native one")
    args = ap.parse_args()
    texts = Path(args.corpus).read_text(encoding="utf-8").splitlines()[: args.limit]

    plain = Encoder(args.export_dir, device="cpu", variant=args.variant, native=not args.standard and "auto")
    plain.encode(texts[:256], batch_size=args.batch_size)
    t = time.perf_counter()
    plain.encode(texts, batch_size=args.batch_size)
    wall = time.perf_counter() - t

    # tokenization, batching and padding alone, as encode does them
    t = time.perf_counter()
    rows = plain.tokenizer.encode_ids(texts)
    lengths = np.array([len(r) for r in rows])
    batches = length_sorted_batches(lengths, args.batch_size, plain.max_batch_tokens)
    padded = [plain.tokenizer.pad([rows[i] for i in idx]) for idx in batches]
    tok_s = time.perf_counter() - t
    # session runs alone, on exactly those batches
    t = time.perf_counter()
    for ids, mask in padded:
        plain._run(ids, mask, None)
    run_s = time.perf_counter() - t
    padded_tokens = sum(ids.size for ids, _ in padded)

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = "/tmp/embedrt-profile"
    # NOTE: with session_options given, "auto" leaves the native graph alone; profile the graph that ran above
    prof = Encoder(
        args.export_dir, device="cpu", variant=args.variant, session_options=so, native=plain.native
    )
    prof.encode(texts, batch_size=args.batch_size)
    path = prof._session.end_profiling()
    events = json.loads(Path(path).read_text())
    by_op: dict[str, float] = collections.defaultdict(float)
    kernels = 0
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            by_op[e["args"].get("op_name", "?")] += e["dur"] / 1e6
            kernels += 1
    total = sum(by_op.values())
    Path(path).unlink(missing_ok=True)

    print(f"graph: {plain.graph_status}")
    print(f"{args.variant}: {len(texts)} texts, batch {args.batch_size}, providers {plain.active_providers}")
    print(f"encode wall {wall:.3f} s = {len(texts) / wall:.0f} sent/s")
    print(
        f"  tokenize+pad {tok_s:.3f} s ({100 * tok_s / wall:.1f}%), session runs {run_s:.3f} s "
        f"({100 * run_s / wall:.1f}%), rest {wall - tok_s - run_s:.3f} s"
    )
    print(
        f"  padding: {padded_tokens} padded tokens for {lengths.sum()} real "
        f"({100 * (padded_tokens - lengths.sum()) / padded_tokens:.1f}% waste)"
    )
    print(f"  nodes executed per run (after onnxruntime's optimisations): {kernels / len(batches):.0f}")
    print(f"operator kernel time (profiled run, {total:.3f} s summed over nodes):")
    for op, s in sorted(by_op.items(), key=lambda kv: -kv[1]):
        if s / total >= 0.005:
            print(f"  {op:32s} {s:8.3f} s {100 * s / total:5.1f}%")


if __name__ == "__main__":
    main()
