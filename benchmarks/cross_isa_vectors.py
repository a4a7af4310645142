"""Do two CPUs give the same vectors? Encodes a few texts with every graph an export serves on the CPU (fp32
and int8, native and standard) and saves them; run again on another CPU (or emulated one) with --compare to
print, per graph, the max abs difference and whether the vectors are bit-identical.

Run:  python benchmarks/cross_isa_vectors.py EXPORT_DIR --save here.npz
      qemu-x86_64 -cpu Haswell .venv/bin/python benchmarks/cross_isa_vectors.py EXPORT_DIR --compare here.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from embedrt import Encoder
from embedrt.runtime.native import cpu_kernels

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "corpus-qnli.txt"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export_dir")
    p.add_argument("--texts", type=int, default=8, help="first N lines of corpus-qnli.txt (default 8)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", help=".npz to write")
    g.add_argument("--compare", help=".npz written by --save on another CPU")
    args = p.parse_args()
    texts = CORPUS.read_text(encoding="utf-8").splitlines()[: args.texts] + ["", "a"]
    k = cpu_kernels()
    print(f"cpu kernels: isa {k['isa']}, features {k['features']}")
    out = {}
    for variant in ("fp32", "int8"):
        for fused in (True, False):
            enc = Encoder(args.export_dir, device="cpu", variant=variant, native="auto" if fused else False)
            name = f"{variant}-{'native' if enc.native else 'standard'}"
            out[name] = enc.encode(texts)
            print(f"{name}: {enc.graph_status}")
    if args.save:
        np.savez(args.save, **out)
        return 0
    with np.load(args.compare) as ref:
        for name, got in out.items():
            if name not in ref.files:
                print(f"{name}: not in {args.compare}")
                continue
            same = np.array_equal(got, ref[name])
            print(f"{name}: max abs diff {np.abs(got - ref[name]).max():.3e}, bit-identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
