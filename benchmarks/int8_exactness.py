"""Are an int8 export's integer products exact on this CPU? Runs export/exact.py's checks: every MatMulInteger
of the int8 graphs on the probe texts and on worst-case rows, and one node at the extremes of every int8
scheme, each against a numpy int64 product. Exit status 1 when any int32 differs.

Run:  python benchmarks/int8_exactness.py EXPORT_DIR [--graph FILE ...] [--no-native]
      qemu-x86_64 -cpu Haswell .venv/bin/python benchmarks/int8_exactness.py EXPORT_DIR    (AVX2, emulated)

FILE: more int8 graphs to check (for example one quantized with another scheme), fed with the export's
tokenizer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embedrt.export.exact import capture_graph, check_scheme
from embedrt.export.quantize import INT8_SCHEMES
from embedrt.export.verify import probe_texts
from embedrt.manifest import read_manifest
from embedrt.runtime import native
from embedrt.runtime.tokenize import TextTokenizer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export_dir")
    p.add_argument("--graph", action="append", default=[], help="another int8 graph to check (repeatable)")
    p.add_argument("--no-native", action="store_true", help="skip the native int8 graph")
    args = p.parse_args()
    export_dir = Path(args.export_dir)
    m = read_manifest(export_dir).to_dict()
    tok = TextTokenizer(
        export_dir / m["tokenizer"].get("file", "tokenizer.json"),
        int(m["max_seq_length"]),
        int(m["tokenizer"]["pad_token_id"]),
    )
    ids, mask = tok.pad(tok.encode_ids(probe_texts()))
    feeds = {"input_ids": ids, "attention_mask": mask}
    print(f"cpu kernels: {native.cpu_kernels()}")
    bad = 0
    for scheme in INT8_SCHEMES:
        r = check_scheme(scheme)
        bad += r["max_abs_error"] != 0
        print(f"{r['node']}: max |int32 error| {r['max_abs_error']}, wrong entries {r['wrong_fraction']:.1%}")
    entry = m["variants"].get("int8")
    graphs = [(Path(g), None) for g in args.graph]
    if entry is not None:
        scheme = entry["scheme"].get("scheme_name", "w8a8-vnni (the export predates the scheme's record)")
        print(f"export's int8 scheme: {scheme}")
        graphs.insert(0, (export_dir / entry["file"], None))
        fused = entry.get("native")
        if fused and not args.no_native and native.library_path() is not None:
            graphs.insert(1, (export_dir / fused["file"], native.register))
    for path, register in graphs:
        results = capture_graph(path, feeds, register=register)
        worst = max(results, key=lambda r: r["max_abs_error"])
        wrong = [r for r in results if r["max_abs_error"]]
        bad += bool(wrong)
        print(
            f"{path.name}: {len(results)} checks ({len(results) // 2} MatMulInteger nodes, probe batch of "
            f"{ids.shape[0]} texts and worst-case rows), {len(wrong)} with wrong int32 values; worst: "
            f"{worst['node']} off by {worst['max_abs_error']} ({worst['wrong_fraction']:.1%} of its "
            "entries)"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
