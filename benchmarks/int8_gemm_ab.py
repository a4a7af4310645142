"""ai.embedrt::PackedMatMulInteger against onnxruntime's MatMulInteger, one node each, on this CPU: the shapes
of all-MiniLM-L6-v2's int8 Linears ([rows, 384] x [384, 384] and [384, 1536], [rows, 1536] x [1536, 384]), u8
activations against 7-bit s8 weights (the w7a8 scheme), zero point 128.

Run:  python benchmarks/int8_gemm_ab.py [--rows 27 512 2048] [--threads 1] [--rounds 5]

Both sides are checked first to give the same int32s as a numpy int64 product. Then each round times both
(the order flipping every round) over enough runs for about a second of work; the figure is each side's best
round, in GOP/s (2 * M * K * N per run), and the ratio. End to end, on an export with the packed int8 graph:
    python benchmarks/export_ab.py X.embedrt X.embedrt --variant int8 --env-a EMBEDRT_PACKED_MATMUL=0 \\
        --corpus ../shared/data/corpus-qnli.txt --limit 2000 --rounds 6
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from embedrt.runtime import native

SHAPES = ((384, 384), (384, 1536), (1536, 384))


def _model(op: str, w: np.ndarray) -> bytes:
    domain = "ai.embedrt" if op.startswith("Packed") else ""
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "w", "zp"], ["y"], domain=domain)],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, ["m", w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, ["m", w.shape[1]])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(128, np.uint8), "zp")],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[27, 512, 2048])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    library = native.library_path()
    if library is None:
        raise SystemExit("libembedrt_ops.so is not built (embedrt build-ops)")
    print(f"kernels: {native.cpu_kernels()['packed_int8_gemm']}; threads {args.threads}")
    rng = np.random.default_rng(0)
    for M in args.rows:
        for K, N in SHAPES:
            w = rng.integers(-63, 64, (K, N)).astype(np.int8)
            a = rng.integers(0, 256, (M, K)).astype(np.uint8)
            want = ((a.astype(np.int64) - 128) @ w.astype(np.int64)).astype(np.int32)
            sessions = {}
            for op in ("MatMulInteger", "PackedMatMulInteger"):
                so = ort.SessionOptions()
                so.intra_op_num_threads = args.threads
                so.register_custom_ops_library(str(library))
                sessions[op] = ort.InferenceSession(_model(op, w), so, providers=["CPUExecutionProvider"])
                np.testing.assert_array_equal(sessions[op].run(None, {"a": a})[0], want)
            runs = max(1, int(1e9 / (2 * M * K * N) * 40))
            best = {op: float("inf") for op in sessions}
            for r in range(args.rounds):
                for op in list(sessions) if r % 2 == 0 else list(sessions)[::-1]:
                    t = time.perf_counter()
                    for _ in range(runs):
                        sessions[op].run(None, {"a": a})
                    best[op] = min(best[op], (time.perf_counter() - t) / runs)
            gops = {op: 2 * M * K * N / s / 1e9 for op, s in best.items()}
            print(
                f"[{M}, {K}] x [{K}, {N}]: MatMulInteger {gops['MatMulInteger']:.0f} GOP/s, "
                f"PackedMatMulInteger {gops['PackedMatMulInteger']:.0f} GOP/s, "
                f"{gops['PackedMatMulInteger'] / gops['MatMulInteger']:.2f}x"
            )


if __name__ == "__main__":
    main()
