"""The int8 schemes whose integer products cannot saturate on any CPU (7-bit weights x 8-bit activations,
8-bit weights x 7-bit activations), against the 8-bit x 8-bit scheme that is exact only with VNNI: each built
from one export's fp32 graph as the native int8 graph, with and without the FFN down-projections in fp32,
measured as benchmarks/compare_int8_schemes.py measures (agreement with fp32 on every 11th line of
corpus-qnli.txt, STS-B dev Spearman, alone vs inside batches of 32, speed against fp32 alternating in one
process).

Run:  python benchmarks/compare_exact_int8_schemes.py EXPORT_DIR [--rounds 3] [--json schemes.json]

EXPORT_DIR: an all-MiniLM-L6-v2 export (export-model all-MiniLM-L6-v2 -o DIR); the custom-op library must be
built. Every scheme's int32 sums are checked against numpy on the probe texts and worst-case rows
(export/exact.py) on this CPU, and the result is printed beside its figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from embedrt.evaluate import read_sts, sts_spearman
from embedrt.export.exact import capture_graph
from embedrt.export.gate import _cos
from embedrt.export.quantize import INT8_SCHEMES, Int8Config, quantize_int8
from embedrt.export.verify import compare, probe_texts
from embedrt.manifest import read_manifest
from embedrt.runtime import native
from embedrt.runtime.tokenize import TextTokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from compare_int8_schemes import Runner, measure  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def quality(name, runner: Runner, ref_emb, texts, sts) -> dict:
    """measure() without the speed rounds."""
    emb = runner.embed(texts)
    agreement = compare(emb, ref_emb)
    s1, s2, gold = sts
    pick = slice(0, 64 * 16, 16)
    alone = np.concatenate([runner.embed([t]) for t in texts[pick]])
    return {
        "scheme": name,
        "mean_cos": agreement["mean_cosine"],
        "min_cos": agreement["min_cosine"],
        "sts": sts_spearman(runner.embed(s1), runner.embed(s2), gold),
        "batch_invariance_min_cos": float(_cos(emb[pick], alone).min()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export_dir")
    p.add_argument("--corpus", default=str(DATA / "corpus-qnli.txt"))
    p.add_argument("--sts", default=str(DATA / "stsb-dev.tsv"))
    p.add_argument("--speed-texts", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--schemes", default=",".join(INT8_SCHEMES))
    p.add_argument("--every-linear-only", action="store_true", help="skip the FFN-down-in-fp32 variants")
    p.add_argument("--no-speed", action="store_true", help="agreement, STS and batch invariance only")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if native.library_path() is None:
        raise SystemExit("the custom-op library is not built (pip install -e .)")
    export_dir = Path(args.export_dir)
    m = read_manifest(export_dir).to_dict()
    tok = TextTokenizer(
        export_dir / m["tokenizer"].get("file", "tokenizer.json"),
        int(m["max_seq_length"]),
        int(m["tokenizer"]["pad_token_id"]),
    )
    corpus = Path(args.corpus).read_text(encoding="utf-8").splitlines()
    texts, speed_texts = corpus[::11], corpus[: args.speed_texts]
    sts = read_sts(args.sts)
    fp32 = m["variants"]["fp32"]
    ref = Runner(export_dir / fp32["file"], tok, int(m["dim"]))
    ref_emb = ref.embed(texts)
    base = sts_spearman(ref.embed(sts[0]), ref.embed(sts[1]), sts[2])
    # the int8 graphs are quantized from the fp32 graph with the pooling op (as the export does)
    source = export_dir / fp32.get("native", {}).get("file", fp32["file"])
    ids, mask = tok.pad(tok.encode_ids(probe_texts()))
    feeds = {"input_ids": ids, "attention_mask": mask}
    print(
        f"load average {os.getloadavg()[0]:.1f}, onnxruntime {ort.__version__}, kernels "
        f"{native.cpu_kernels()}, fp32 STS-B {base:.2f}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="exact-int8-") as work:
        for scheme in args.schemes.split(","):
            for exclude in ((),) if args.every_linear_only else ((), ("ffn_down",)):
                name = f"{scheme}, " + ("every Linear" if not exclude else "FFN down in fp32")
                path = Path(work) / f"{scheme}-{len(exclude)}.onnx"
                cfg = Int8Config(
                    exclude_roles=exclude, scheme=scheme, quantize_op="native", dequantize_op="native"
                )
                quantize_int8(source, path, cfg)
                checks = capture_graph(path, feeds, register=native.register)
                runner = Runner(path, tok, int(m["dim"]), True)
                row = (
                    quality(name, runner, ref_emb, texts, sts)
                    if args.no_speed
                    else measure(name, runner, ref, ref_emb, texts, sts, speed_texts, args.rounds)
                )
                row["int32_max_abs_error"] = max(c["max_abs_error"] for c in checks)
                row["sts_delta"] = row["sts"] - base
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(
        f"\n| scheme | mean cos | min cos | STS-B dev x100 (delta vs {base:.2f}) | alone vs batch min cos "
        "| speed vs fp32 | int32 max error here |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        speed = (
            f"{r['speed_vs_fp32']:.2f}x ({r['speed_range'][0]:.2f}-{r['speed_range'][1]:.2f})"
            if "speed_vs_fp32" in r
            else "–"
        )
        print(
            f"| {r['scheme']} | {r['mean_cos']:.5f} | {r['min_cos']:.5f} | {r['sts']:.2f} "
            f"({r['sts_delta']:+.2f}) | {r['batch_invariance_min_cos']:.6f} | {speed} | "
            f"{r['int32_max_abs_error']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
