"""Why a large batch_size can be slower, and what the runtime's split of batches into graph runs changes.

Run: python benchmarks/batch_sizes.py EXPORT_DIR [--variant fp32] [--limit 2000] [--reps 3] [--threads N]
     [--batch-sizes 16 32 64 128 256] [--requests 1 4 8 16 32] [--profile]

In one process, alternating, median of --reps:
1. ``Encoder.encode(texts, batch_size=b)`` on the first --limit corpus lines for each b, with the runtime's
   split (``runtime.batching.length_sorted_batches``: least padded tokens plus a fixed cost per run) and with
   the greedy split it replaced (consecutive length-sorted runs of ``batch_size`` rows, shrunk only by the
   token budget). Per b: texts/s of each and their ratio, the graph runs, the padding waste, the rows and
   padded tokens of the largest run, and the attention scores tensor of that run ``[rows, heads, S, S]``.
2. Requests of N random corpus lines, one ``encode`` call per request (as a server sees them), for each N:
   texts/s with each split and their ratio.
3. With --profile, onnxruntime's profiler on one encode per batch size (the runtime's split): kernel time per
   real token of the GEMMs (``PackedMatMul``, ``MatMulInteger``, ``MatMul``, ``FusedMatMul``) and of the rest.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import embedrt.runtime.batching as batching
from embedrt import Encoder

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GEMMS = ("PackedMatMul", "MatMulInteger", "MatMul", "FusedMatMul", "MatMulIntegerToFloat")
_DP = batching.length_sorted_batches


def greedy_batches(lengths, batch_size, budget, run_cost=0):
    """The split before the dynamic programme: runs of ``batch_size`` length-sorted rows, longest first, a run
    shrunk only where rows x its longest would pass the token budget."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    runs, start = [], 0
    while start < len(order):
        rows = batch_size
        if budget is not None:
            rows = max(1, min(batch_size, budget // max(1, int(lengths[order[start]]))))
        runs.append(order[start : start + rows])
        start += rows
    return runs


SPLITS = {"dp": _DP, "greedy": greedy_batches}


def use(split: str) -> None:
    """Make every encoder run ``split`` (run_batches looks the function up in its module)."""
    batching.length_sorted_batches = SPLITS[split]


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def split_stats(enc: Encoder, lengths: np.ndarray, batch_size: int) -> dict[str, float]:
    cfg = enc.manifest.raw.get("model_config", {})
    heads = int(cfg.get("num_attention_heads", 12))
    runs = _DP(lengths, batch_size, enc.max_batch_tokens)
    padded = [len(r) * int(lengths[r].max()) for r in runs]
    big = int(np.argmax(padded))
    rows, width = len(runs[big]), int(lengths[runs[big]].max())
    return {
        "runs": len(runs),
        "waste": 1 - lengths.sum() / sum(padded),
        "largest_rows": rows,
        "largest_padded": padded[big],
        "scores_mib": rows * heads * width * width * 4 / 2**20,
    }


def profile(
    path: str, variant: str, threads: int | None, texts: list[str], batch_size: int, native: bool
) -> dict:
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = "/tmp/embedrt-batch-sizes"
    if threads:
        so.intra_op_num_threads = threads
    # NOTE: with session_options given, "auto" leaves the native graph alone; profile the graph timed above
    enc = Encoder(path, device="cpu", variant=variant, session_options=so, native=native)
    enc.encode(texts, batch_size=batch_size)
    trace = Path(enc._session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink(missing_ok=True)
    by_op: dict[str, float] = collections.defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            by_op[e["args"].get("op_name", "?")] += e["dur"] / 1e6
    return by_op


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir")
    ap.add_argument("--variant", default="fp32")
    ap.add_argument("--corpus", default=str(DATA / "corpus-qnli.txt"))
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--requests", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    ap.add_argument("--request-texts", type=int, default=320, help="texts per request size, in requests")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    corpus = Path(args.corpus).read_text(encoding="utf-8").splitlines()
    texts = corpus[: args.limit]
    enc = Encoder(args.export_dir, device="cpu", variant=args.variant, intra_op_threads=args.threads)
    lengths = enc.tokenize(texts).lengths
    print(f"{args.variant}: {enc.graph_status}; {len(texts)} texts, {lengths.sum()} real tokens")
    print(f"threads {args.threads or 'all'}, max_batch_tokens {enc.max_batch_tokens}, median of {args.reps}")
    enc.encode(texts[:256], batch_size=32)  # warm-up

    sweep: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
    rng = np.random.default_rng(0)
    requests = {
        n: [list(rng.choice(corpus, n)) for _ in range(max(1, args.request_texts // n))]
        for n in args.requests
    }
    served: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
    for _ in range(args.reps):
        for b in args.batch_sizes:
            for split in SPLITS:
                use(split)
                sweep[(split, b)].append(len(texts) / timed(lambda b=b: enc.encode(texts, batch_size=b)))
        for n, reqs in requests.items():
            for split in SPLITS:
                use(split)

                def serve(reqs=reqs):
                    for r in reqs:
                        enc.encode(r, batch_size=32)

                served[(split, n)].append(sum(len(r) for r in reqs) / timed(serve))
    use("dp")

    print("\nencode(texts, batch_size=b) on the same texts:")
    print("| batch_size | texts/s split | texts/s greedy | ratio | runs | padding waste | largest run |")
    print("|---|---|---|---|---|---|---|")
    for b in args.batch_sizes:
        dp, gr = np.median(sweep[("dp", b)]), np.median(sweep[("greedy", b)])
        s = split_stats(enc, lengths, b)
        g_runs = greedy_batches(lengths, b, enc.max_batch_tokens)
        g_waste = 1 - lengths.sum() / sum(len(r) * int(lengths[r].max()) for r in g_runs)
        print(
            f"| {b} | {dp:.0f} | {gr:.0f} | {dp / gr:.2f}x | {s['runs']} (greedy {len(g_runs)}) | "
            f"{100 * s['waste']:.1f}% (greedy {100 * g_waste:.1f}%) | {s['largest_rows']} rows, "
            f"{s['largest_padded']} padded tokens, scores {s['scores_mib']:.1f} MiB |"
        )
    print("\nrequests of N random corpus lines, one encode call each:")
    print("| N | texts/s split | texts/s greedy | ratio |")
    print("|---|---|---|---|")
    for n in args.requests:
        dp, gr = np.median(served[("dp", n)]), np.median(served[("greedy", n)])
        print(f"| {n} | {dp:.0f} | {gr:.0f} | {dp / gr:.2f}x |")

    if args.profile:
        print("\nkernel time per real token (onnxruntime profiler, one encode each, the runtime's split):")
        print("| batch_size | GEMMs us/token | rest us/token | GEMM share |")
        print("|---|---|---|---|")
        for b in args.batch_sizes:
            by_op = profile(args.export_dir, args.variant, args.threads, texts, b, enc.native)
            gemm = sum(v for k, v in by_op.items() if k in GEMMS)
            rest = sum(by_op.values()) - gemm
            tok = lengths.sum()
            print(
                f"| {b} | {1e6 * gemm / tok:.1f} | {1e6 * rest / tok:.1f} | "
                f"{100 * gemm / (gemm + rest):.1f}% |"
            )


if __name__ == "__main__":
    main()
