"""Attention at long sequences: the packed fp32 graph against the graph onnxruntime fuses attention in.

Run: python benchmarks/attention_lengths.py EXPORT_DIR [--lengths 128 256 512] [--batch-sizes 8 32]
     [--reps 5] [--threads N] [--standard model.onnx|model.fused.onnx]

Two sessions in one process on the export's fp32 graphs, at onnxruntime's ORT_ENABLE_ALL:
- ``packed``: ``model.packed.onnx`` (``PackedMatMul`` Linears, attention as plain MatMul + Softmax), with the
  custom-op library;
- ``ort``: ``model.onnx`` (or ``model.fused.onnx``), where onnxruntime's own transformer fusions may apply.
Which attention ran in each is read from onnxruntime's optimized-model dump of that session (the op types
after its graph optimisations: ``Attention`` / ``MultiHeadAttention`` when its fusion matched, ``MatMul`` +
``Softmax`` otherwise). Inputs are token rows of exactly S tokens ([CLS], S - 2 word pieces, [SEP]), all
real (no padding), batch B. For each (S, B) the two sessions alternate, --reps times each after a warm-up;
it prints the medians, the ratio ``ort / packed`` (above 1: the packed graph is faster), the outputs' max abs
difference, and how long a full run with the given --reps would take (from this run's timings). S may pass
the model's max_seq_length (up to its position embeddings): this measures the graph, not ``encode``.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from embedrt.manifest import read_manifest
from embedrt.runtime.native import library_path

ATTENTION_OPS = ("Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention")


def session(path: Path, threads: int | None, dump: Path, native: bool) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(dump)
    if threads:
        so.intra_op_num_threads = threads
    if native:
        lib = library_path()
        if lib is None:
            raise SystemExit("attention_lengths: the packed graph needs libembedrt_ops.so (pip install -e .)")
        so.register_custom_ops_library(str(lib))
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def op_counts(dump: Path) -> collections.Counter:
    model = onnx.load(str(dump), load_external_data=False)
    return collections.Counter(n.op_type for n in model.graph.node)


def attention_kind(ops: collections.Counter) -> str:
    fused = {op: ops[op] for op in ATTENTION_OPS if ops[op]}
    if fused:
        return "fused: " + ", ".join(f"{n} {op}" for op, n in fused.items())
    return f"unfused: {ops['MatMul'] + ops['FusedMatMul']} MatMul/FusedMatMul, {ops['Softmax']} Softmax"


def feeds(sess: ort.InferenceSession, batch: int, length: int, rng) -> dict[str, np.ndarray]:
    ids = rng.integers(1000, 29000, (batch, length), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102  # NOTE: BERT's [CLS] and [SEP]; the values do not change the time
    names = {i.name for i in sess.get_inputs()}
    out = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in names:
        out["token_type_ids"] = np.zeros_like(ids)
    return {k: v for k, v in out.items() if k in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir")
    ap.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: all)")
    ap.add_argument(
        "--standard",
        default="model.onnx",
        help="the graph onnxruntime fuses: a file of the export (default model.onnx) or a path, such as the "
        "model.onnx of an `export-model --optimize` export",
    )
    args = ap.parse_args()
    export = Path(args.export_dir)
    # NOTE: model.fused.onnx ends in the native pooling op, so it needs the library too
    args.native_ort = args.standard.endswith("fused.onnx")
    manifest = read_manifest(export)
    positions = int(manifest.raw.get("model_config", {}).get("max_position_embeddings", 512))
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {
            "packed": session(export / "model.packed.onnx", args.threads, Path(tmp) / "packed.onnx", True),
            "ort": session(export / args.standard, args.threads, Path(tmp) / "ort.onnx", args.native_ort),
        }
        kinds = {name: attention_kind(op_counts(Path(tmp) / f"{name}.onnx")) for name in sessions}
    print(f"{export}: max_seq_length {manifest.max_seq_length}, position embeddings {positions}")
    print(f"threads {args.threads or 'all'}, ORT_ENABLE_ALL, median of {args.reps}")
    print(f"  packed = model.packed.onnx, attention after onnxruntime's optimisations: {kinds['packed']}")
    print(f"  ort    = {args.standard}, attention after onnxruntime's optimisations: {kinds['ort']}")
    print("\n| S | B | packed ms | ort ms | ort / packed | max abs diff |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    spent = 0.0
    for length in args.lengths:
        if length > positions:
            print(f"| {length} | – | – | – | – | beyond the {positions} position embeddings |")
            continue
        for batch in args.batch_sizes:
            feed = feeds(sessions["packed"], batch, length, rng)
            times: dict[str, list[float]] = {name: [] for name in sessions}
            outs = {name: s.run(None, feed)[0] for name, s in sessions.items()}  # warm-up, and the outputs
            for _ in range(args.reps):
                for name, s in sessions.items():
                    t0 = time.perf_counter()
                    s.run(None, feed)
                    times[name].append(time.perf_counter() - t0)
            spent += sum(map(sum, times.values()))
            med = {name: float(np.median(v)) for name, v in times.items()}
            diff = float(np.abs(outs["packed"] - outs["ort"]).max())
            print(
                f"| {length} | {batch} | {1e3 * med['packed']:.1f} | {1e3 * med['ort']:.1f} | "
                f"{med['ort'] / med['packed']:.2f}x | {diff:.1e} |"
            )
    print(f"\ntimed runs took {spent:.0f} s (plus one warm-up run per shape and graph)")
    per_rep = spent / args.reps
    print(
        "a full run (--lengths 128 256 512 --batch-sizes 8 32) takes about "
        f"{per_rep * (1 + 5) * _scale(args.lengths, args.batch_sizes):.0f} s at --reps 5 on this machine"
    )


def _scale(lengths: list[int], batches: list[int]) -> float:
    """Work of the full grid over the measured grid, counting rows x S x (hidden-ish + S) as S^2 rows: an
    estimate, attention making long rows dearer."""

    def work(ls, bs):
        return sum(b * s * (s + 384) for s in ls for b in bs)

    return work([128, 256, 512], [8, 32]) / max(1, work([s for s in lengths if s <= 512], batches))


if __name__ == "__main__":
    main()
