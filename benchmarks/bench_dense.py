"""ai.embedrt::PackedMatMul (the fp32 Linear with weights packed at load) against onnxruntime's MatMul + Add,
on CPU: the 36 Linears of all-MiniLM-L6-v2 alone, then end to end (Encoder on model.packed.onnx against
model.fused.onnx, the same export).

Run:  python benchmarks/bench_dense.py [--export DIR] [--rounds 3] [--rows 1 27 64 256] [--chain-only]
      [--encoder-only]
      EMBEDRT_OPS_ISA=avx2 python benchmarks/bench_dense.py ...    (the AVX2 tile on an AVX-512 CPU)

Every measurement runs in its own process (two sessions in one process would share the CPU with each other's
spinning thread pools), the two sides alternating A B A B with the order flipping every round; the figure is
the median over rounds. Linear chain: random weights with MiniLM's shapes (per layer 4 x [384, 384], then
[384, 1536] and [1536, 384], with biases), x [1, rows, 384], p50 of 300 runs; both sides are checked to agree
first. End to end: single-text p50 of Encoder.encode over the first 300 lines of corpus-qnli.txt, and
sentences/s at batch 32 on the first 4,000. --export must be an export of all-MiniLM-L6-v2 with a packed
graph (export-model all-MiniLM-L6-v2 -o DIR); without it one is made in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "corpus-qnli.txt"
SHAPES = [(384, 384)] * 4 + [(384, 1536), (1536, 384)]


def chain_model(packed: bool):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, cur = [], [], "x"
    for layer in range(6):
        for i, (k, n) in enumerate(SHAPES):
            w, b, out = f"w{layer}_{i}", f"b{layer}_{i}", f"y{layer}_{i}"
            inits.append(
                numpy_helper.from_array((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32), w)
            )
            inits.append(numpy_helper.from_array((0.1 * rng.standard_normal(n)).astype(np.float32), b))
            if packed:
                nodes.append(helper.make_node("PackedMatMul", [cur, w, b], [out], domain="ai.embedrt"))
            else:
                nodes += [
                    helper.make_node("MatMul", [cur, w], [out + "_mm"]),
                    helper.make_node("Add", [out + "_mm", b], [out]),
                ]
            # NOTE: Q, K, V, O chained one after another here: the same shapes and weights, one data path
            cur = out
    graph = helper.make_graph(
        nodes,
        "linears",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None, 384])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)],
        inits,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.embedrt", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _chain_worker(packed: bool, rows: int) -> dict:
    import time

    import onnxruntime as ort

    from embedrt.runtime import native

    so = ort.SessionOptions()
    if packed:
        native.register(so)
    sess = ort.InferenceSession(
        chain_model(packed).SerializeToString(), so, providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(1).standard_normal((1, rows, 384)).astype(np.float32)
    for _ in range(30):
        y = sess.run(None, {"x": x})[0]
    ts = []
    for _ in range(300):
        t0 = time.perf_counter()
        sess.run(None, {"x": x})
        ts.append(time.perf_counter() - t0)
    return {"p50_ms": 1e3 * float(np.median(ts)), "y": y.ravel()[:4096].tolist()}


def _encoder_worker(export: str, packed: bool) -> dict:
    import time

    from embedrt import Encoder

    os.environ["EMBEDRT_PACKED_MATMUL"] = "1" if packed else "0"
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    enc = Encoder(export, device="cpu")
    for t in lines[:30]:
        enc.encode(t)
    ts = []
    for t in lines[:300]:
        t0 = time.perf_counter()
        enc.encode(t)
        ts.append(time.perf_counter() - t0)
    texts = lines[:4000]
    enc.encode(texts[:256], batch_size=32)
    t0 = time.perf_counter()
    enc.encode(texts, batch_size=32)
    return {
        "graph": str(enc.graph_status),
        "p50_ms": 1e3 * float(np.median(ts)),
        "sent_s": len(texts) / (time.perf_counter() - t0),
    }


def _spawn(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rows", type=int, nargs="+", default=[1, 27, 64, 256])
    p.add_argument("--chain-only", action="store_true", help="only the Linear chain, not the Encoder")
    p.add_argument("--encoder-only", action="store_true", help="only the Encoder, not the Linear chain")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        kind, *rest = args.worker
        result = (
            _chain_worker(rest[0] == "packed", int(rest[1]))
            if kind == "chain"
            else _encoder_worker(rest[0], rest[1] == "packed")
        )
        print(json.dumps(result))
        return 0
    flops_per_row = 2 * sum(k * n for k, n in SHAPES) * 6
    print(
        f"load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds, each side in its own process, "
        f"EMBEDRT_OPS_ISA={os.environ.get('EMBEDRT_OPS_ISA', '(unset)')}\n"
    )
    if not args.encoder_only:
        print("| rows | onnxruntime MatMul+Add ms | PackedMatMul ms | ratio | PackedMatMul GFLOP/s |")
        print("|---|---|---|---|---|")
    for rows in [] if args.encoder_only else args.rows:
        times: dict[str, list[float]] = {"standard": [], "packed": []}
        for r in range(args.rounds):
            for side in ("standard", "packed") if r % 2 == 0 else ("packed", "standard"):
                res = _spawn("chain", side, str(rows))
                times[side].append(res["p50_ms"])
                if r == 0:
                    times.setdefault(side + "_y", res["y"])
        a, b = np.asarray(times["standard_y"]), np.asarray(times["packed_y"])
        assert np.abs(a - b).max() <= 1e-4 * max(1.0, np.abs(a).max()), "the two chains disagree"
        s, k = np.median(times["standard"]), np.median(times["packed"])
        print(f"| {rows} | {s:.3f} | {k:.3f} | {k / s:.2f}x | {rows * flops_per_row / k / 1e6:.0f} |")
    if args.chain_only:
        return 0
    export = args.export
    tmp = None
    if export is None:
        tmp = tempfile.TemporaryDirectory()
        export = str(Path(tmp.name) / "minilm")
        subprocess.run(
            [sys.executable, "-m", "embedrt.cli", "export", "all-MiniLM-L6-v2", "-o", export],
            check=True,
            capture_output=True,
        )
    res: dict[str, list[dict]] = {"fused": [], "packed": []}
    for r in range(args.rounds):
        for side in ("fused", "packed") if r % 2 == 0 else ("packed", "fused"):
            res[side].append(_spawn("encoder", export, side))
    print("\n| Encoder fp32, all-MiniLM-L6-v2 | graph | single-text p50 ms | batch 32 sentences/s |")
    print("|---|---|---|---|")
    for side in ("fused", "packed"):
        rs = res[side]
        print(
            f"| {side} | {rs[0]['graph'].split(', ')[1]} | {np.median([x['p50_ms'] for x in rs]):.2f} | "
            f"{np.median([x['sent_s'] for x in rs]):.0f} |"
        )
    f, k = res["fused"], res["packed"]
    print(
        "\npacked / fused: single-text p50 "
        f"{np.median([b['p50_ms'] / a['p50_ms'] for a, b in zip(f, k, strict=True)]):.2f}x, "
        f"throughput {np.median([b['sent_s'] / a['sent_s'] for a, b in zip(f, k, strict=True)]):.2f}x "
        "(per round, median)"
    )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
