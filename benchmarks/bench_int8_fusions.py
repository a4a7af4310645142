"""What each fusion of the int8 native graph buys: ``model.int8.fused.onnx`` rebuilt from an export's fp32
graph with none of ``INT8_FUSIONS``, then with each added in turn (RequantizeRows, Attention, AddLayerNorm),
timed alternating in one process on the same batches, medians over rounds; plus the fp32 packed graph
without and with ``PackedMatMul(activation="gelu")``, then with ``Attention``, then with ``AddLayerNorm`` too.
Also prints each graph's max abs diff to the unfused one.

Run:  python benchmarks/bench_int8_fusions.py EXPORT_DIR [--rounds 7] [--threads 1] [--shapes 32x32,8x256]

EXPORT_DIR: an export with the int8 variant (export-model MODEL -o DIR --quantize int8); the custom-op library
must be built. Batches are random token ids at each BATCHxSEQ shape (attention and GEMM costs depend on the
shape, not on the text). --threads 1 (the default) times CPU seconds of this process (time.process_time),
which a loaded machine disturbs less than wall time; --threads 2 times wall time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from embedrt.export.fuse import INT8_FUSED_FILE, INT8_FUSIONS, write_int8_fused, write_packed
from embedrt.export.quantize import Int8Config, int8_scheme
from embedrt.runtime import native


def _session(path: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    native.register(so, native.library_path())
    so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _feeds(session, batch: int, seq: int, vocab: int) -> dict:
    rng = np.random.default_rng(batch * 1000 + seq)
    names = {i.name for i in session.get_inputs()}
    feeds = {
        "input_ids": rng.integers(1000, vocab, (batch, seq)).astype(np.int64),
        "attention_mask": np.ones((batch, seq), np.int64),
        "token_type_ids": np.zeros((batch, seq), np.int64),
    }
    if seq > 8:
        feeds["attention_mask"][batch // 2 :, -seq // 4 :] = 0  # half the rows padded by a quarter
    return {k: v for k, v in feeds.items() if k in names}


def _time(sessions: dict, feeds: dict, rounds: int, threads: int) -> dict[str, float]:
    clock = time.process_time if threads == 1 else time.perf_counter
    runs: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():
        s.run(None, feeds)
    for _ in range(rounds):
        for name, s in sessions.items():
            t = clock()
            for _ in range(5):
                s.run(None, feeds)
            runs[name].append((clock() - t) / 5 * 1e3)
    return {k: float(np.median(v)) for k, v in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shapes", default="32x32,8x256")
    ap.add_argument("--json")
    args = ap.parse_args()
    if native.library_path() is None:
        raise SystemExit("the custom-op library is not built (pip install -e . or embedrt build-ops)")
    export = Path(args.export_dir)
    manifest = json.loads((export / "embedrt.json").read_text())
    scheme = manifest["variants"]["int8"]["scheme"]["scheme_name"]
    cfg = Int8Config(exclude_roles=(), scheme=int8_scheme(scheme).name)
    vocab = 20000
    steps = [()] + [INT8_FUSIONS[: i + 1] for i in range(len(INT8_FUSIONS))]
    names = ["int8: none"] + ["int8: + " + f for f in INT8_FUSIONS]
    with tempfile.TemporaryDirectory() as tmp:
        graphs: dict[str, Path] = {}
        for name, fusions in zip(names, steps, strict=True):
            work = Path(tmp) / str(len(graphs))
            shutil.copytree(export, work)
            write_int8_fused(work, manifest, cfg, {}, fusions=fusions)
            graphs[name] = work / INT8_FUSED_FILE
        fp32_native = manifest["variants"]["fp32"].get("native") or {}
        if fp32_native.get("packed") is not None or fp32_native.get("packed_only"):
            plain = fp32_native.get("packed_only")
            source = manifest["variants"]["fp32"]["file"] if plain else fp32_native["file"]
            # the packed graph rebuilt from the fused-pooling graph, without and with the GELU epilogue
            fp32_steps = (
                ("fp32: packed", dict(gelu_epilogue=False, attention=False)),
                ("fp32: packed + gelu epilogue", dict(gelu_epilogue=True, attention=False)),
                ("fp32: + Attention", dict(gelu_epilogue=True, attention=True)),
                ("fp32: + AddLayerNorm", dict(gelu_epilogue=True, attention=True, add_layernorm=True)),
            )
            for n, (name, flags) in enumerate(fp32_steps):
                work = Path(tmp) / f"fp32-{n}"
                shutil.copytree(export, work)
                entry = write_packed(work, source, **flags)
                graphs[name] = work / entry["file"]
        sessions = {k: _session(p, args.threads) for k, p in graphs.items()}
        report = {"threads": args.threads, "rounds": args.rounds, "shapes": {}}
        for shape in args.shapes.split(","):
            b, s = (int(x) for x in shape.split("x"))
            feeds = _feeds(next(iter(sessions.values())), b, s, vocab)
            out = {k: sess.run(["sentence_embedding"], feeds)[0] for k, sess in sessions.items()}
            ms = _time(sessions, feeds, args.rounds, args.threads)
            print(f"batch {b} x {s} tokens, {args.threads} thread(s), median of {args.rounds} rounds:")
            rows = {}
            for k in sessions:
                base = "int8: none" if k.startswith("int8") else "fp32: packed"
                diff = float(np.abs(out[k] - out[base]).max())
                speed = ms[base] / ms[k]
                rows[k] = {"ms": ms[k], "speedup_vs_unfused": speed, "max_abs_diff_vs_unfused": diff}
                print(f"  {k:32s} {ms[k]:8.2f} ms  {speed:5.3f}x  max abs diff {diff:.1e}")
            report["shapes"][shape] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
