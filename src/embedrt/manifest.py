"""The export directory's manifest, ``embedrt.json``: written by ``export``, read by ``runtime``.

It is a plain JSON object so that any language can read it; this module only validates it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import ArtifactError

MANIFEST_NAME = "embedrt.json"
#: Bumped when a reader of an older format could misread a newer one.
FORMAT_VERSION = 1
TOKENIZER_FILE = "tokenizer.json"

_REQUIRED = ("format_version", "max_seq_length", "dim", "pooling", "normalize", "tokenizer", "variants", "inputs")
#: Fields a cross-encoder manifest (``"task": "cross-encoder"``) needs instead of the embedding ones.
_REQUIRED_BY_TASK = {"cross-encoder": ("format_version", "max_seq_length", "num_labels", "activation", "tokenizer",
                                       "variants", "inputs", "outputs"),
                     "sparse": ("format_version", "max_seq_length", "dim", "tokenizer", "variants", "inputs"),
                     "multi-vector": ("format_version", "max_seq_length", "dim", "tokenizer", "variants",
                                      "inputs")}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(export_dir: str | Path) -> dict[str, Any]:
    """Load and validate ``embedrt.json`` from an export directory.

    Raises:
        ArtifactError: the directory or the manifest is missing, unreadable, or of another format version.
    """
    export_dir = Path(export_dir)
    path = export_dir / MANIFEST_NAME
    if not export_dir.is_dir():
        raise ArtifactError(f"export directory not found: {export_dir}")
    if not path.is_file():
        raise ArtifactError(f"{path} is missing: this is not an embedrt export directory (run export-model first)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{path} is corrupted: {e}") from e
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} is corrupted: expected a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format_version {version!r}, but this embedrt reads version {FORMAT_VERSION}; "
            "re-export the model with this embedrt version"
        )
    missing = [k for k in _REQUIRED_BY_TASK.get(manifest.get("task"), _REQUIRED) if k not in manifest]
    if missing:
        raise ArtifactError(f"{path} is corrupted: missing fields {missing}")
    return manifest


def write_manifest(export_dir: str | Path, manifest: dict[str, Any]) -> Path:
    path = Path(export_dir) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
