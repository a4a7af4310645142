"""Move files larger than a device command may carry (64 MiB) to the GPU machine in parts, and join them.

    python benchmarks/gpu/stage.py split FILE [FILE ...] [--part-mib 60]   # here: .gpu-stage/NAME.partNN
    python benchmarks/gpu/stage.py join [--dir .gpu-stage]                # there: reassemble, check sha256

``split`` writes NAME.json (sha256 of the file and of each part) beside the parts. Each device command
carries some of them (``carry: [".gpu-stage/NAME.json", ".gpu-stage/NAME.part00"]``) into the ignored
``.gpu-stage/`` folder of the machine's checkout, which persists while the machine stays warm. ``join``
writes each whole file back into ``.gpu-stage/`` once all its parts are there and match, then deletes the
parts. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

STAGE = Path(".gpu-stage")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split(files: list[Path], stage: Path = STAGE, part_bytes: int = 60 << 20) -> list[Path]:
    """Cut each file into parts of ``part_bytes`` in ``stage``; returns the paths to carry, sidecar first."""
    stage.mkdir(parents=True, exist_ok=True)
    carried: list[Path] = []
    for src in files:
        parts = []
        with src.open("rb") as f:
            for i, chunk in enumerate(iter(lambda: f.read(part_bytes), b"")):
                part = stage / f"{src.name}.part{i:02d}"
                part.write_bytes(chunk)
                parts.append({"file": part.name, "sha256": hashlib.sha256(chunk).hexdigest()})
        meta = stage / f"{src.name}.json"
        meta.write_text(json.dumps({"name": src.name, "sha256": _sha256(src), "parts": parts}, indent=1))
        carried += [meta, *(stage / p["file"] for p in parts)]
    return carried


def join(stage: Path = STAGE) -> dict[str, str]:
    """Reassemble every file whose parts are all present and verified: {name: "ok" | why not}."""
    status = {}
    for meta_path in sorted(stage.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        out = stage / meta["name"]
        if out.is_file() and _sha256(out) == meta["sha256"]:
            status[meta["name"]] = "ok"
            continue
        missing = [p["file"] for p in meta["parts"] if not (stage / p["file"]).is_file()]
        if missing:
            status[meta["name"]] = f"waiting for {', '.join(missing)}"
            continue
        bad = [p["file"] for p in meta["parts"] if _sha256(stage / p["file"]) != p["sha256"]]
        if bad:
            status[meta["name"]] = f"corrupted parts: {', '.join(bad)}"
            continue
        with out.open("wb") as f:
            for p in meta["parts"]:
                f.write((stage / p["file"]).read_bytes())
        if _sha256(out) != meta["sha256"]:
            out.unlink()
            status[meta["name"]] = "sha256 of the joined file does not match"
            continue
        for p in meta["parts"]:
            (stage / p["file"]).unlink()
        status[meta["name"]] = "ok"
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("files", nargs="+", type=Path)
    s.add_argument("--part-mib", type=int, default=60)
    s.add_argument("--dir", type=Path, default=STAGE)
    j = sub.add_parser("join")
    j.add_argument("--dir", type=Path, default=STAGE)
    args = ap.parse_args(argv)
    if args.cmd == "split":
        for p in split(args.files, args.dir, args.part_mib << 20):
            print(f"{p}  {p.stat().st_size / 2**20:.1f} MiB")
        return 0
    status = join(args.dir)
    for name, st in status.items():
        print(f"{name}: {st}")
    return 0 if status and all(v == "ok" for v in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
