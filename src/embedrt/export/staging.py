"""The skeleton every exporter shares (``pipeline.export_model`` for embeddings,
``cross.export_cross_encoder`` for rerankers): the step log with timings, the target checks, the staging
directory and its atomic move into place, the tokenizer file, the versions and weight hashes of the manifest,
and eager-attention tracing.

An exporter's body is::

    check_target(output, force)
    steps = Steps(log, total=...)
    with steps.step("resolve", model): ...
    with staging(output) as tmp:               # a temporary sibling of output, removed on any error
        with steps.step("trace", ...): ...     # writes into tmp
        ...
        finish(steps, tmp, output, manifest)   # the "write" step: timings into the manifest, atomic move
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ExportError, OutputExistsError
from ..manifest import TOKENIZER_FILE, sha256_file, write_manifest

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class Steps:
    """Prints which step the export is in, with timings."""

    def __init__(self, log: Callable[[str], None] | None, total: int) -> None:
        self.log = log or (lambda _msg: None)
        self.total = total
        self.n = 0
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str, detail: str = ""):
        self.n += 1
        self.log(f"[{self.n}/{self.total}] {name}{': ' + detail if detail else ''} ...")
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
        self.timings[name] = round(dt, 3)
        self.log(f"      {name} done in {dt:.1f} s")


def check_target(output: Path, force: bool) -> None:
    """Refuse an existing target without ``force``, and a parent that cannot be created or written.

    Raises:
        OutputExistsError, ExportError.
    """
    if output.exists():
        if not force:
            raise OutputExistsError(
                f"output directory {output} already exists; pass --force (force=True) to replace it"
            )
        if not output.is_dir():
            raise OutputExistsError(f"output {output} exists and is not a directory")
    parent = output.parent
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ExportError(f"cannot create the parent directory {parent}: {e}") from e
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"output directory {parent} is not writable")


@contextmanager
def staging(output: Path) -> Iterator[Path]:
    """A temporary sibling directory of ``output`` to write the export into; removed on any error (the
    exporter moves it into place with ``finish`` when everything passed)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def finish(steps: Steps, tmp: Path, output: Path, manifest: dict[str, Any]) -> None:
    """The last step: the timings into the manifest, then the staged directory moved into place."""
    with steps.step("write", str(output)):
        manifest["export_timings_s"] = steps.timings
        write_manifest(tmp, manifest)
        move_into_place(tmp, output)


def move_into_place(tmp: Path, output: Path) -> None:
    """Rename ``tmp`` to ``output``; an existing ``output`` is replaced, and restored if the rename fails."""
    backup = None
    if output.exists():
        backup = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.replace(output, backup)
    try:
        os.replace(tmp, output)
    except OSError:
        if backup is not None:
            os.replace(backup, output)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def weights_sha256(model_dir: Path) -> dict[str, str]:
    """sha256 of each weights file of the source model (the manifest's ``source.weights_sha256``)."""
    return {name: sha256_file(model_dir / name) for name in WEIGHT_FILES if (model_dir / name).is_file()}


def versions() -> dict[str, str]:
    """The versions of the libraries the export ran with (the manifest's ``versions``)."""
    import importlib.metadata as md

    out = {}
    dists = ("embedrt", "torch", "transformers", "sentence-transformers", "onnx", "onnxruntime", "tokenizers")
    for dist in dists:
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def save_tokenizer(model, target: Path) -> dict[str, Any]:
    """Write tokenizer.json as sentence-transformers uses it (lower-casing applied, no baked truncation).
    ``model`` is a SentenceTransformer or a CrossEncoder (anything with a fast ``.tokenizer``).

    Raises:
        ExportError: no fast tokenizer, or no pad token.
    """
    hf_tok = model.tokenizer
    if hf_tok is None or not getattr(hf_tok, "is_fast", False):
        raise ExportError(
            "the model's tokenizer has no fast (tokenizers) version; embedrt needs tokenizer.json"
        )
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(hf_tok.backend_tokenizer.to_str())
    # NOTE: tokenizer.json may carry its own truncation (128 for all-MiniLM-L6-v2) and padding; the runtime
    # sets both from the manifest, so strip them to leave one source of truth.
    backend.no_truncation()
    backend.no_padding()
    backend.save(str(target / TOKENIZER_FILE))
    if hf_tok.pad_token_id is None:
        raise ExportError("the tokenizer has no pad token; cannot batch texts")
    return {
        "file": TOKENIZER_FILE,
        "sha256": sha256_file(target / TOKENIZER_FILE),
        "pad_token": hf_tok.pad_token,
        "pad_token_id": int(hf_tok.pad_token_id),
        "padding_side": "right",
    }


@contextmanager
def eager_attention(hf):
    """Trace ``hf`` with eager attention, restoring its implementation afterwards.

    NOTE: eager attention traces to plain MatMul/Softmax, which onnxruntime fuses at load time; SDPA traces to
    a decomposition that it does not recognise (IsNaN/Where guards, runtime shape arithmetic). Same numbers to
    ~1e-7.
    """
    previous = getattr(hf.config, "_attn_implementation", None)
    _set_attn(hf, "eager")
    try:
        yield
    finally:
        if previous:
            _set_attn(hf, previous)


def _set_attn(hf, name: str) -> None:
    setter = getattr(hf, "set_attn_implementation", None)
    if callable(setter):
        try:
            setter(name)
            return
        except Exception:  # noqa: BLE001 - older transformers or models without the switch
            pass
    hf.config._attn_implementation = name
