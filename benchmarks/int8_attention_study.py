"""Would int8 attention matmuls hold the int8 quality gate? A quality study, not a kernel.

Run:  python benchmarks/int8_attention_study.py EXPORT_DIR [--limit N] [--json study.json]

EXPORT_DIR: an all-MiniLM-L6-v2 export with the int8 variant (export-model all-MiniLM-L6-v2 -o DIR --quantize
int8); the custom-op library must be built. It takes the export's served int8 graph
(``model.int8.fused.onnx``: int8 Linears, fp32 attention in ``ai.embedrt::Attention``) and builds a copy in
which each attention computes with its two matmuls' operands rounded as an int8 kernel would round them
(fake quantization, in float, with standard ONNX ops):

- Q and K per row (one token of one head, over its head dims), symmetric, 127 levels each side: the scores'
  integer sums would then be exact in int32 (head dim 32 x 127 x 127);
- the softmax probabilities per row (one query's row, over the keys), unsigned, 255 levels up to the row's
  max;
- V per column (one head dim of one head, over the sequence's real tokens; padding is left out of the
  column's max, so a text's vector does not depend on its batch), symmetric, 127 levels.

Each graph is measured against the fp32 graph as the export's gate and the CPU issue's figures are: mean and
min cosine on every 11th line of the corpus (1,052 lines), STS-B dev Spearman, and the min cosine of each
text alone against inside a batch of 32 (64 texts).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from embedrt.evaluate import read_sts
from embedrt.manifest import read_manifest
from embedrt.runtime.session import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from compare_exact_int8_schemes import quality  # noqa: E402
from compare_int8_schemes import Runner  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
OP_DOMAIN = "ai.embedrt"


class _Names:
    def __init__(self, prefix: str) -> None:
        self.prefix, self.k = prefix, 0

    def __call__(self, what: str) -> str:
        self.k += 1
        return f"{self.prefix}/{what}_{self.k}"


def _fake_quant(nodes: list, name: _Names, x: str, qmax: int, axis: int, mask: str | None = None) -> str:
    """``round(x / s) * s``, ``s = max |x| / qmax`` over ``axis`` (of ``x * mask`` when a mask is given)."""
    src = x
    if mask is not None:
        src = name("masked")
        nodes.append(helper.make_node("Mul", [x, mask], [src]))
    absx, amax, scale, q, rq, out = (name(w) for w in ("abs", "amax", "scale", "q", "rq", "fq"))
    nodes += [
        helper.make_node("Abs", [src], [absx]),
        helper.make_node("ReduceMax", [absx], [amax], axes=[axis], keepdims=1),
        helper.make_node("Max", [amax, "fq/eps"], [amax + "_pos"]),
        helper.make_node("Div", [amax + "_pos", f"fq/qmax{int(qmax)}"], [scale]),
        helper.make_node("Div", [x, scale], [q]),
        helper.make_node("Round", [q], [rq]),
        helper.make_node("Mul", [rq, scale], [out]),
    ]
    return out


def fake_quant_attention(
    model: onnx.ModelProto, q_levels: int = 127, k_levels: int = 127, p_levels: int = 255, v_levels: int = 127
) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` with every ai.embedrt Attention replaced by its fake-quantized standard-op form
    (``*_levels``: the largest magnitude of each operand's integers)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    consts = {
        "fq/eps": np.array(1e-12, np.float32),
        **{f"fq/qmax{n}": np.array(float(n), np.float32) for n in {q_levels, k_levels, p_levels, v_levels}},
        "fq/valid_min": np.array(-1.0, np.float32),
        "fq/zero": np.array([0], np.int64),
        "fq/one": np.array([1], np.int64),
        "fq/axis2": np.array([2], np.int64),
    }
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    out_nodes, replaced = [], 0
    for node in g.node:
        if node.domain != OP_DOMAIN or node.op_type != "Attention":
            out_nodes.append(node)
            continue
        replaced += 1
        q, k, v, bias = node.input
        scale = next(a.f for a in node.attribute if a.name == "scale")
        name = _Names(f"fq_attention_{replaced}")
        nodes: list = []
        scale_name = name("softmax_scale")
        g.initializer.append(numpy_helper.from_array(np.array(scale, np.float32), scale_name))
        qf = _fake_quant(nodes, name, q, q_levels, -1)
        kf = _fake_quant(nodes, name, k, k_levels, -1)
        kt, s, s2, s3, p = (name(w) for w in ("kt", "s", "s2", "s3", "p"))
        nodes += [
            helper.make_node("Transpose", [kf], [kt], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", [qf, kt], [s]),
            helper.make_node("Mul", [s, scale_name], [s2]),
            helper.make_node("Add", [s2, bias], [s3]),
            helper.make_node("Softmax", [s3], [p], axis=-1),
        ]
        pf = _fake_quant(nodes, name, p, p_levels, -1)
        # the real tokens of each text: the bias's first query row [B|1, 1, 1, S] is 0 there and very
        # negative at padding (the bias may also come expanded to [B, 1, S, S])
        row0, valid_b, valid_f, valid_t = name("bias_row0"), name("valid"), name("valid_f"), name("valid_t")
        nodes += [
            helper.make_node("Slice", [bias, "fq/zero", "fq/one", "fq/axis2"], [row0]),
            helper.make_node("Greater", [row0, "fq/valid_min"], [valid_b]),
            helper.make_node("Cast", [valid_b], [valid_f], to=TensorProto.FLOAT),
            helper.make_node("Transpose", [valid_f], [valid_t], perm=[0, 1, 3, 2]),
        ]
        vf = _fake_quant(nodes, name, v, v_levels, 2, mask=valid_t)
        nodes.append(helper.make_node("MatMul", [pf, vf], list(node.output)))
        out_nodes += nodes
    del g.node[:]
    g.node.extend(out_nodes)
    return model, replaced


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export_dir")
    p.add_argument("--corpus", default=str(DATA / "corpus-qnli.txt"))
    p.add_argument("--sts", default=str(DATA / "stsb-dev.tsv"))
    p.add_argument("--limit", type=int, default=None, help="first N of the evaluation lines (default all)")
    p.add_argument("--json", default=None)
    p.add_argument(
        "--levels",
        nargs=4,
        type=int,
        action="append",
        metavar=("Q", "K", "P", "V"),
        help="integer levels of Q, K, P and V (repeatable; default 127 127 255 127, 8 bits each; "
        "127 63 255 63 are what pmaddubsw can sum without saturating on AVX2: Q as u8 with an offset, "
        "K and V 7 bits)",
    )
    args = p.parse_args()
    levels = args.levels or [[127, 127, 255, 127]]
    for lv in levels:
        if not all(1 <= n <= 255 for n in lv):
            raise SystemExit(f"int8_attention_study: --levels must be in [1, 255], got {lv}")
    export_dir = Path(args.export_dir)
    m = read_manifest(export_dir)
    if "int8" not in m.variants:
        raise SystemExit(f"{export_dir} has no int8 variant; export it with --quantize int8")
    tok = load_tokenizer(m)
    texts = Path(args.corpus).read_text(encoding="utf-8").splitlines()[::11][: args.limit]
    sts = read_sts(args.sts)
    ref = Runner(export_dir / m.variants["fp32"].file, tok, int(m.dim))
    ref_emb = ref.embed(texts)
    served = export_dir / "model.int8.fused.onnx"
    fused = onnx.load(str(served))
    rows = {}
    n = 0
    rows["fp32"] = quality("fp32", ref, ref_emb, texts, sts)
    label = "int8 (served: int8 Linears, fp32 attention)"
    rows[label] = quality(label, Runner(served, tok, int(m.dim), custom_ops=True), ref_emb, texts, sts)
    with tempfile.TemporaryDirectory() as tmp:
        for lv in levels:
            study, n = fake_quant_attention(fused, *lv)
            path = Path(tmp) / "model.int8.fq-attention.onnx"
            onnx.save(study, str(path))
            label = "int8 + attention matmuls on integers (Q, K, P, V levels {})".format(
                " / ".join(map(str, lv))
            )
            rows[label] = quality(label, Runner(path, tok, int(m.dim), custom_ops=True), ref_emb, texts, sts)
    print(f"{len(texts)} corpus lines, {len(sts[2])} STS-B dev pairs; {n} attention nodes fake-quantized")
    print("| graph | mean cos vs fp32 | min cos vs fp32 | STS-B Spearman | alone vs batch min cos |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['mean_cos']:.5f} | {r['min_cos']:.5f} | {r['sts']:.2f} | "
            f"{r['batch_invariance_min_cos']:.6f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
