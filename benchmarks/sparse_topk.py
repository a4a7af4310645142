"""Where sparsifying a SPLADE output costs least: numpy on the graph's pooled (batch, vocab) block (what
``SparseEncoder`` does), or an onnxruntime ``TopK`` node, against the graph run that produces the block.

Run:  python benchmarks/sparse_topk.py EXPORT_DIR [--batch 32] [--k 64] [--reps 30]

EXPORT_DIR is a sparse export (e.g. examples/build_minilm_splade.py, then export-model). On one batch of the
first corpus-qnli lines it times, alternating and reporting medians: the graph run (tokens -> pooled block);
threshold (np.nonzero of the block, the default with no max_active_dims); numpy top-k (argpartition, then
nonzero, as sentence-transformers' select_max_active_dims zeroes the rest, and as SparseEncoder does with
max_active_dims); numpy top-k gathering the k winners with argpartition; and the same top-k as an
onnxruntime TopK graph on the block (the cost it would add inside the export, copy of the block
included). Every method is checked to
give the same entries.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "corpus-qnli.txt"


def _topk_session(k: int, vocab: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", vocab])
    values = helper.make_tensor_value_info("values", TensorProto.FLOAT, ["b", k])
    indices = helper.make_tensor_value_info("indices", TensorProto.INT64, ["b", k])
    kk = helper.make_tensor("k", TensorProto.INT64, [1], [k])
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=1)
    graph = helper.make_graph([node], "topk", [x], [values, indices], initializer=[kk])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("export")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    from embedrt import SparseEncoder
    from embedrt.runtime.sparse import OUTPUT, nonzero_entries, select_top_k

    enc = SparseEncoder(args.export, device="cpu")
    texts = [t for t in CORPUS.read_text(encoding="utf-8").splitlines() if t.strip()][: args.batch]
    ids, mask = enc.tokenizer.pad(enc.tokenizer.encode_ids(texts))
    block = enc._run([OUTPUT], ids, mask)[0]
    sess = _topk_session(args.k, block.shape[1])

    def graph():
        return enc._run([OUTPUT], ids, mask)[0]

    def threshold():
        r, c = np.nonzero(block)
        return r, c, block[r, c]

    def numpy_topk():
        b = select_top_k(block.copy(), args.k)
        r, c = np.nonzero(b)
        return r, c, b[r, c]

    def gathered_topk():
        v = block.shape[1]
        cols = np.argpartition(block, v - args.k, axis=1)[:, v - args.k :]
        vals = np.take_along_axis(block, cols, axis=1)
        keep = vals != 0
        rows = np.broadcast_to(np.arange(block.shape[0])[:, None], cols.shape)
        return rows[keep], cols[keep], vals[keep]

    def runtime_topk():  # what SparseEncoder runs (the zeroing path, on a copy here)
        return nonzero_entries(block.copy(), args.k)

    def ort_topk():
        v, i = sess.run(None, {"x": block})
        keep = v > 0
        return np.nonzero(keep)[0], i[keep], v[keep]

    a = numpy_topk()
    for other in (gathered_topk(), runtime_topk(), ort_topk()):
        order_a, order_b = np.lexsort((a[1], a[0])), np.lexsort((other[1], other[0]))
        assert np.array_equal(a[0][order_a], other[0][order_b]) and np.array_equal(
            a[1][order_a], other[1][order_b]
        )
    methods = {
        "graph run (tokens -> pooled block)": graph,
        "threshold (np.nonzero)": threshold,
        f"numpy top-{args.k}, zeroing the rest (select_max_active_dims)": numpy_topk,
        f"numpy top-{args.k}, gathering the winners": gathered_topk,
        f"onnxruntime TopK k={args.k}": ort_topk,
    }
    times: dict[str, list[float]] = {m: [] for m in methods}
    for rep in range(args.reps):
        items = list(methods.items())
        for name, fn in items if rep % 2 == 0 else items[::-1]:
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    base = float(np.median(times["graph run (tokens -> pooled block)"]))
    print(
        f"batch {args.batch} x vocab {block.shape[1]}, {int((block > 0).sum(1).mean())} active dims/text, "
        f"{ids.shape[1]} tokens padded; CPU {platform.machine()}, median of {args.reps}"
    )
    print("| step | ms per batch | vs the graph run |")
    print("|---|---|---|")
    for name, t in times.items():
        med = float(np.median(t))
        print(f"| {name} | {med:.2f} | {med / base:.1%} |")


if __name__ == "__main__":
    main()
