"""Single-text latency of Encoder.encode under the onnxruntime settings that could plausibly lower it, and
where
one call's time goes (tokenization vs the session run).

Run:  python benchmarks/latency_options.py EXPORT_DIR [--optimized OPT_EXPORT_DIR] [--texts 300] [--rounds 4]

OPT_EXPORT_DIR: the same model exported with `export-model ... --optimize` (onnxruntime's offline transformer
fusions: fused attention with packed Q/K/V, SkipLayerNorm, BiasGelu). Every setting is an Encoder on the fp32
variant, warmed up, then timed text by text on the first --texts lines of corpus-qnli.txt, the settings taking
turns round by round (the order flipping every round); p50 over all rounds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from embedrt import Encoder

ROOT = Path(__file__).resolve().parents[1]


def _options(**config: str) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for key, value in config.items():
        so.add_session_config_entry(key.replace("__", "."), value)
    return so


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export_dir")
    p.add_argument("--optimized", default=None, help="an export of the same model made with --optimize")
    p.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "corpus-qnli.txt"))
    p.add_argument("--texts", type=int, default=300)
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args()
    texts = Path(args.corpus).read_text(encoding="utf-8").splitlines()[: args.texts]
    parallel = _options()
    parallel.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    parallel.inter_op_num_threads, parallel.intra_op_num_threads = 2, 1
    # NOTE: native=True registers the native library on the given options, as "auto" does on its own
    encoders = {
        "default (2 intra-op threads, spinning)": Encoder(args.export_dir, device="cpu"),
        "1 intra-op thread": Encoder(args.export_dir, device="cpu", intra_op_threads=1),
        "spinning off": Encoder(
            args.export_dir,
            device="cpu",
            native=True,
            session_options=_options(session__intra_op__allow_spinning="0"),
        ),
        "denormals as zero": Encoder(
            args.export_dir,
            device="cpu",
            native=True,
            session_options=_options(session__set_denormal_as_zero="1"),
        ),
        "parallel executor (2 inter-op threads)": Encoder(
            args.export_dir, device="cpu", native=True, session_options=parallel
        ),
    }
    if args.optimized:
        encoders["--optimize export (fused attention)"] = Encoder(args.optimized, device="cpu")
    for enc in encoders.values():
        for t in texts[:30]:
            enc.encode(t)
    times: dict[str, list[float]] = {k: [] for k in encoders}
    for r in range(args.rounds):
        for name in list(encoders) if r % 2 == 0 else list(encoders)[::-1]:
            enc = encoders[name]
            for t in texts:
                t0 = time.perf_counter()
                enc.encode(t)
                times[name].append(time.perf_counter() - t0)
    base = encoders["default (2 intra-op threads, spinning)"]
    tok, run = [], []
    for t in texts:
        t0 = time.perf_counter()
        ids, mask = base.tokenizer.pad(base.tokenizer.encode_ids([t]))
        t1 = time.perf_counter()
        base._session.run(None, {"input_ids": ids, "attention_mask": mask})
        tok.append(t1 - t0)
        run.append(time.perf_counter() - t1)
    print(
        f"load average {os.getloadavg()[0]:.1f}, onnxruntime {ort.__version__}, {len(texts)} texts x "
        f"{args.rounds} rounds\n"
    )
    print("| setting | p50 ms | p99 ms |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {1e3 * np.median(ts):.2f} | {1e3 * np.percentile(ts, 99):.2f} |")
    print(
        f"\ndefault, one call split: tokenize + pad p50 {1e3 * np.median(tok):.3f} ms, session run p50 "
        f"{1e3 * np.median(run):.2f} ms ({'native' if base.native else 'standard'} graph)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
