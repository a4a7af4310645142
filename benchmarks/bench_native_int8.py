"""The native int8 ops (QuantizePerToken, DequantizeRows) against the standard-op chains they replace, on CPU:
each op alone, then end to end (Encoder.encode on all-MiniLM-L6-v2: int8 standard graph, int8 native graph,
and the fp32 graph for scale).

Run:  python benchmarks/bench_native_int8.py [--export DIR] [--texts 2000] [--rounds 7] [--threads 0]

As in bench_native_pool.py: both sides are validated first (the ops bit-identical, the encoders within 1e-6),
warmed up, then timed in alternation in one process with the order flipping every round; ratios are per
round, median (min-max). --export must hold an int8 variant (export-model ... --quantize int8); without it
one is exported to a temp dir.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "native"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_native_pool import alternate, minilm_export, spread, start  # noqa: E402
from reference import (  # noqa: E402
    dequantize_custom,
    dequantize_standard,
    quantize_custom,
    quantize_standard,
    session,
)

from embedrt import Encoder  # noqa: E402

#: all-MiniLM-L6-v2 activations for a batch of 32 texts of 40 tokens: hidden 384, FFN 1536
SHAPES = [(32, 40, 384), (32, 40, 1536), (32, 128, 384)]


def ops_alone(lib, threads: int, rounds: int) -> None:
    rng = np.random.default_rng(0)
    print("\n## each op alone (ms per call)\n")
    print("| op | shape | standard ops | native | standard / native, per round: median (min-max) |")
    print("|---|---|---|---|---|")
    qs, qn = session(quantize_standard(3), None, threads), session(quantize_custom(3), lib, threads)
    for shape in SHAPES:
        feed = {"x": rng.standard_normal(shape).astype(np.float32)}
        for a, b in zip(qs.run(None, feed), qn.run(None, feed), strict=True):
            assert np.array_equal(a, b), "QuantizePerToken differs from the standard chain"
        ts, tn, ratio = alternate(
            lambda f=feed: qs.run(None, f), lambda f=feed: qn.run(None, f), rounds, reps=20
        )
        print(f"| QuantizePerToken (8 ops) | {shape} | {ts * 1e3:.3f} | {tn * 1e3:.3f} | {spread(ratio)} |")
    ds, dn = (
        session(dequantize_standard(3, True), None, threads),
        session(dequantize_custom(3, True), lib, threads),
    )
    for shape in SHAPES:
        feed = {
            "acc": rng.integers(-(2**20), 2**20, size=shape, dtype=np.int32),
            "rs": rng.random(shape[:-1] + (1,), dtype=np.float32),
            "cs": rng.random(shape[-1], dtype=np.float32),
            "b": rng.random(shape[-1], dtype=np.float32),
        }
        assert np.array_equal(ds.run(None, feed)[0], dn.run(None, feed)[0]), "DequantizeRows differs"
        ts, tn, ratio = alternate(
            lambda f=feed: ds.run(None, f), lambda f=feed: dn.run(None, f), rounds, reps=20
        )
        print(
            f"| DequantizeRows + bias (4 ops) | {shape} | {ts * 1e3:.3f} | {tn * 1e3:.3f} | {spread(ratio)} |"
        )


def end_to_end(export_dir: Path, texts: list[str], threads: int | None, rounds: int) -> None:
    native = Encoder(export_dir, device="cpu", variant="int8", intra_op_threads=threads, native=True)
    standard = Encoder(export_dir, device="cpu", variant="int8", intra_op_threads=threads, native=False)
    fp32 = Encoder(export_dir, device="cpu", intra_op_threads=threads)
    diff = np.abs(native.encode(texts) - standard.encode(texts)).max()
    assert diff <= 1e-6, f"encoders differ by {diff}"
    print(f"\n## end to end: Encoder.encode({len(texts)} texts, batch_size=32), all-MiniLM-L6-v2\n")
    print("| comparison | A (s) | B (s) | A / B, per round: median (min-max) |")
    print("|---|---|---|---|")
    ts, tn, ratio = alternate(lambda: standard.encode(texts), lambda: native.encode(texts), rounds, reps=1)
    print(f"| int8 standard graph (A) vs int8 native graph (B) | {ts:.3f} | {tn:.3f} | {spread(ratio)} |")
    tf, tn, ratio = alternate(lambda: fp32.encode(texts), lambda: native.encode(texts), rounds, reps=1)
    print(
        f"| fp32 ({'native pooling' if fp32.native else 'standard'}) (A) vs int8 native graph (B) "
        f"| {tf:.3f} | {tn:.3f} | {spread(ratio)} |"
    )
    print(f"\nint8 native vs int8 standard: max abs diff {diff:.1e}; native: {native.graph_status}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", default=None, help="all-MiniLM-L6-v2 export with an int8 variant")
    started = start(p, texts=2000, threads=0, threads_help="onnxruntime intra-op threads (0: its default)")
    if started is None:
        return 2
    args, lib = started
    ops_alone(lib, args.threads, args.rounds)
    if args.skip_e2e:
        return 0
    export_dir = minilm_export(args.export, ("fp32", "int8"))
    texts = Path(args.corpus).read_text(encoding="utf-8").splitlines()[: args.texts]
    end_to_end(export_dir, texts, args.threads or None, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
