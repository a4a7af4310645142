"""Every int8 scheme issue 5 asks about, built from one export's fp32 graph and measured the same way:
agreement
with fp32 on real sentences, STS-B dev Spearman, batch invariance, and speed against fp32 in the same process.

Run:  python benchmarks/compare_int8_schemes.py EXPORT_DIR [--sts ../shared/data/stsb-dev.tsv] [--rounds 3]
          [--json schemes.json]

EXPORT_DIR: an all-MiniLM-L6-v2 export with an int8 variant (export-model all-MiniLM-L6-v2 -o DIR --quantize
int8).
The schemes (written to a temp dir):
- onnxruntime quantize_dynamic, per-channel s8 weights, every MatMul (as sentence-transformers' presets), with
  and without reduce_range, without the FFN down-projections, without the attention output projections,
  without the FFN down-projections and the last layer, and on onnxruntime's fused transformer graph
  (quantizing after the fusions);
- static QDQ (quantize_static, MinMax calibration on 400 corpus sentences, u8 activations, per-channel s8
  weights) on every Linear, and without the FFN down-projections;
- 8-bit block-wise weight-only (MatMulNBits, block 32, symmetric, accuracy level 4);
- embedrt's per-token u8 x s8 scheme: standard ops (model.int8.onnx), native ops (model.int8.fused.onnx),
  native without the FFN down-projections, and native without the last layer.
(The embeddings are a Gather, which none of the schemes quantizes.)
Agreement: cosine to the fp32 graph on every 11th line of corpus-qnli.txt (1,052 texts, long ones included).
Batch invariance: min cosine of 64 texts embedded alone vs inside batches of 32. Speed: 2,000 corpus lines,
batch 32, length-sorted, the scheme and fp32 alternating in one process; ratio per round, median (min-max).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from embedrt.evaluate import read_sts, sts_spearman
from embedrt.export.gate import _cos
from embedrt.export.quantize import Int8Config, find_linears, quantize_int8
from embedrt.export.verify import compare
from embedrt.manifest import read_manifest
from embedrt.runtime import native
from embedrt.runtime.session import load_tokenizer
from embedrt.runtime.tokenize import TextTokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_native_pool import alternate  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


class Runner:
    """Length-sorted batches through one graph (the graphs hold pooling and Normalize)."""

    def __init__(self, path: Path, tok: TextTokenizer, dim: int, custom_ops: bool = False):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if custom_ops:
            native.register(so)
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.tok = tok
        self.dim = dim

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        rows = self.tok.encode_ids(texts)
        order = np.argsort([-len(r) for r in rows], kind="stable")
        out = np.empty((len(texts), self.dim), np.float32)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            ids, mask = self.tok.pad([rows[j] for j in idx])
            out[idx] = self.session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]
        return out


def build_schemes(
    export_dir: Path, work: Path, tok: TextTokenizer, calib: list[str]
) -> dict[str, tuple[Path, bool]]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    m = read_manifest(export_dir)
    fp32 = export_dir / m.variants["fp32"].file
    model = onnx.load(str(fp32))
    linears = find_linears(model)
    all_lin = [lin["node"].name for lin in linears]
    ffn_down = [lin["node"].name for lin in linears if lin["role"] == "ffn_down"]
    out: dict[str, tuple[Path, bool]] = {}

    def dyn(name, **kw):
        path = work / f"{name}.onnx"
        quantize_dynamic(
            str(fp32),
            str(path),
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            **kw,
        )
        out[name] = (path, False)

    dyn("ort-dynamic, every MatMul")
    dyn("ort-dynamic, reduce_range", reduce_range=True)
    dyn("ort-dynamic, FFN down in fp32", nodes_to_exclude=ffn_down)
    attn_out = [lin["node"].name for lin in linears if "attention/output" in lin["node"].name]
    dyn("ort-dynamic, attention output projections in fp32", nodes_to_exclude=attn_out)
    last = max(lin["layer"] for lin in linears if lin["layer"] is not None)
    last_layer = [lin["node"].name for lin in linears if lin["layer"] == last]
    dyn(
        "ort-dynamic, FFN down and the last layer in fp32",
        nodes_to_exclude=sorted(set(ffn_down + last_layer)),
    )

    from embedrt.export.optimize import fuse_transformer

    fused = work / "fused.onnx"
    cfg = (
        json.loads((Path(m["source"]["path"]) / "config.json").read_text()) if m["source"].get("path") else {}
    )
    fuse_transformer(
        fp32,
        fused,
        m.get("architecture", "bert"),
        cfg.get("num_attention_heads", 12),
        cfg.get("hidden_size", m["dim"]),
    )
    path = work / "ort-dynamic-after-fusions.onnx"
    # NOTE: shape inference cannot type the contrib ops' outputs; tell the quantizer they are float
    quantize_dynamic(
        str(fused),
        str(path),
        per_channel=True,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    out["ort-dynamic, after onnxruntime's fusions"] = (path, False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            rows = tok.encode_ids(calib)
            self.feeds = []
            for i in range(0, len(rows), 32):
                ids, mask = tok.pad(rows[i : i + 32])
                self.feeds.append({"input_ids": ids, "attention_mask": mask})
            self.it = iter(self.feeds)

        def get_next(self):
            return next(self.it, None)

    def static(name, nodes):
        path = work / f"{name}.onnx"
        quantize_static(
            str(fp32),
            str(path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=nodes,
            calibrate_method=CalibrationMethod.MinMax,
        )
        out[name] = (path, False)

    static("static QDQ MinMax, every Linear", all_lin)
    static("static QDQ MinMax, FFN down in fp32", [n for n in all_lin if n not in ffn_down])

    q = MatMulNBitsQuantizer(onnx.load(str(fp32)), bits=8, block_size=32, is_symmetric=True, accuracy_level=4)
    q.process()
    path = work / "matmulnbits8.onnx"
    q.model.save_model_to_file(str(path))
    out["MatMulNBits 8-bit weight-only, block 32"] = (path, False)

    int8 = m.variants.get("int8")
    if int8 is None:
        raise SystemExit(f"{export_dir} has no int8 variant: export it with --quantize int8")
    out["embedrt per-token, standard ops (model.int8.onnx)"] = (export_dir / int8.file, False)
    native_entry = int8.native
    if native_entry and native.library_path() is not None:
        out["embedrt per-token, native ops (model.int8.fused.onnx)"] = (export_dir / native_entry.file, True)
        fp32_entry = m.variants["fp32"]
        source = export_dir / (fp32_entry.native.file if fp32_entry.native else fp32_entry.file)
        path = work / "pertoken-no-ffn-down.onnx"
        quantize_int8(
            source,
            path,
            Int8Config(exclude_roles=("ffn_down",), quantize_op="native", dequantize_op="native"),
        )
        out["embedrt per-token, native ops, FFN down in fp32"] = (path, True)
        path = work / "pertoken-no-last-layer.onnx"
        quantize_int8(
            source,
            path,
            Int8Config(
                exclude_roles=(), exclude_layers=(last,), quantize_op="native", dequantize_op="native"
            ),
        )
        out["embedrt per-token, native ops, last layer in fp32"] = (path, True)
    return out


def measure(name, runner: Runner, ref: Runner, ref_emb, texts, sts, speed_texts, rounds) -> dict:
    emb = runner.embed(texts)
    agreement = compare(emb, ref_emb)
    result = {"scheme": name, "mean_cos": agreement["mean_cosine"], "min_cos": agreement["min_cosine"]}
    if sts is not None:
        s1, s2, gold = sts
        result["sts"] = sts_spearman(runner.embed(s1), runner.embed(s2), gold)
    # alone vs inside the length-sorted batches of 32 that gave `emb`
    pick = slice(0, 64 * 16, 16)
    alone = np.concatenate([runner.embed([t]) for t in texts[pick]])
    result["batch_invariance_min_cos"] = float(_cos(emb[pick], alone).min())
    t_ref, t_run, ratios = alternate(
        lambda: ref.embed(speed_texts), lambda: runner.embed(speed_texts), rounds, reps=1
    )
    result["speed_vs_fp32"] = statistics.median(ratios)
    result["speed_range"] = [min(ratios), max(ratios)]
    result["sent_per_s"] = len(speed_texts) / t_run
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export_dir")
    p.add_argument("--corpus", default=str(DATA / "corpus-qnli.txt"))
    p.add_argument("--sts", default=str(DATA / "stsb-dev.tsv"))
    p.add_argument("--speed-texts", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    export_dir = Path(args.export_dir)
    m = read_manifest(export_dir)
    tok = load_tokenizer(m)
    corpus = Path(args.corpus).read_text(encoding="utf-8").splitlines()
    texts = corpus[::11]
    speed_texts = corpus[: args.speed_texts]
    calib = corpus[1::29][:400]  # calibration sentences: not the evaluation ones
    sts = read_sts(args.sts) if args.sts else None
    ref = Runner(export_dir / m.variants["fp32"].file, tok, int(m.dim))
    ref_emb = ref.embed(texts)
    print(
        f"load average {os.getloadavg()[0]:.1f}, onnxruntime {ort.__version__}, {len(texts)} texts for "
        f"agreement, {len(speed_texts)} for speed, {args.rounds} rounds",
        flush=True,
    )
    rows = []
    if sts is not None:
        s1, s2, gold = sts
        rows.append(
            {
                "scheme": "fp32 (model.onnx)",
                "mean_cos": 1.0,
                "min_cos": 1.0,
                "sts": sts_spearman(ref.embed(s1), ref.embed(s2), gold),
                "batch_invariance_min_cos": None,
                "speed_vs_fp32": 1.0,
            }
        )
    with tempfile.TemporaryDirectory(prefix="int8-schemes-") as work:
        schemes = build_schemes(export_dir, Path(work), tok, calib)
        for name, (path, custom) in schemes.items():
            row = measure(
                name,
                Runner(path, tok, int(m["dim"]), custom),
                ref,
                ref_emb,
                texts,
                sts,
                speed_texts,
                args.rounds,
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
    base = rows[0].get("sts")
    print(
        "\n| scheme | mean cos | min cos | STS-B dev x100 (delta) | alone vs batch min cos | speed vs fp32 |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        sts_s = f"{r['sts']:.2f} ({r['sts'] - base:+.2f})" if base is not None and "sts" in r else "–"
        inv = "–" if r.get("batch_invariance_min_cos") is None else f"{r['batch_invariance_min_cos']:.6f}"
        rng = f" ({r['speed_range'][0]:.2f}-{r['speed_range'][1]:.2f})" if "speed_range" in r else ""
        print(
            f"| {r['scheme']} | {r['mean_cos']:.5f} | {r['min_cos']:.5f} | {sts_s} | {inv} | "
            f"{r['speed_vs_fp32']:.2f}x{rng} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
