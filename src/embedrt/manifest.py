"""The export directory's manifest, ``embedrt.json``: written by ``export``, read by ``runtime``.

It is a plain JSON object so that any language can read it. This module is its only reader
(:func:`read_manifest`, into a typed :class:`Manifest`) and its only writer (:func:`write_manifest`, which
parses what it is given first, so an export can only write what the reader accepts). Every error names the
field that is wrong.

Integrity rules (format 2):
    - every file the runtime reads (each variant's graph, its native graphs and probes, ``tokenizer.json``)
      is listed with its sha256;
    - every such path is relative, has no ``..``, and resolves inside the export directory (symlinks
      included); anything else is an ArtifactError before a file is opened;
    - ``max_seq_length`` is at most ``position_limit``, the graph's position-embedding rows recorded at
      export (null for models without absolute positions).

Tasks: ``embedding`` (the default), ``cross-encoder``, ``sparse`` (SPLADE: ``dim`` is the vocabulary,
``pooling`` / ``activation`` / ``max_active_dims`` in :class:`SparseInfo`) and ``multi-vector`` (ColBERT:
``dim`` is the token-vector width, lengths and skiplist in :class:`MultiVectorInfo`). Sparse and multi-vector
manifests declare their graph outputs (``outputs``, ``output``), checked against the graph at load; the
integrity rules are the same for every task.

Format 1 (exports made before format 2) is still read: its native graphs are under ``fused_pooling`` instead
of ``native``, it has no ``position_limit``, and its ``tokenizer.json`` has no sha256 (loaded unchecked, with
a warning; re-export to check it).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from .errors import ArtifactError

MANIFEST_NAME = "embedrt.json"
#: Bumped when a reader of an older format could misread a newer one.
FORMAT_VERSION = 2
#: Versions this embedrt reads.
READABLE_VERSIONS = (1, 2)
TOKENIZER_FILE = "tokenizer.json"
EMBEDDING = "embedding"
CROSS_ENCODER = "cross-encoder"
SPARSE = "sparse"
MULTI_VECTOR = "multi-vector"
#: Every task a manifest may have.
TASKS = (EMBEDDING, CROSS_ENCODER, SPARSE, MULTI_VECTOR)
#: The graph outputs of the sparse and multi-vector tasks.
SPARSE_OUTPUT = "sparse_embedding"
TOKENS_OUTPUT = "token_embeddings"
MASK_OUTPUT = "token_mask"
SPARSE_POOLINGS = ("max", "sum")
SPARSE_ACTIVATIONS = ("relu", "log1p_relu")
SPARSE_SIMILARITIES = ("dot", "cosine", "euclidean", "manhattan")
MULTI_VECTOR_SIMILARITIES = ("maxsim", "meanmaxsim")
MULTI_VECTOR_POST_MODULES = ("Dense", "Normalize")
#: The variant key of the native graphs, by format version.
NATIVE_KEY = {1: "fused_pooling", 2: "native"}

_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- typed objects
@dataclass(frozen=True)
class TokenizerInfo:
    """``tokenizer``: the tokenizers-library file and the padding the runtime applies."""

    file: str
    #: None only in format-1 exports, whose tokenizer is loaded unchecked.
    sha256: str | None
    pad_token_id: int
    pad_token: str | None = None
    padding_side: str = "right"


@dataclass(frozen=True)
class NativeGraph:
    """A variant's graph with native ``ai.embedrt`` ops, and the probe that checks it against the standard
    graph at load (``variants.<name>.native``; ``fused_pooling`` in format 1)."""

    file: str
    sha256: str
    probe: str
    probe_sha256: str
    op: str = ""
    #: The graph uses ops with CPU kernels only (int8 quantization): not run on a GPU.
    cpu_only: bool = False
    #: The graph is ``model.onnx`` with packed Linears only (no pooling op): run only where PackedMatMul
    #: is fast.
    packed_only: bool = False
    #: Its PackedMatMul twin (``model.packed.onnx``), for AVX-512 CPUs.
    packed: NativeGraph | None = None
    #: Max (scaled) abs diff allowed on the probe: 1e-6 for float graphs; int8 graphs record a larger one
    #: (export.fuse.INT8_PROBE_ATOL), since a one-ulp difference in a float op can move an 8-bit activation.
    probe_atol: float = 1e-6


@dataclass(frozen=True)
class Variant:
    """``variants.<name>``: one precision of the model as one standard graph, maybe with a native twin."""

    name: str
    file: str
    sha256: str
    precision: str
    native: NativeGraph | None = None
    #: The whole entry as written (verification figures, quality, scheme, ...).
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Pooling:
    modes: tuple[str, ...]
    include_prompt: bool = True


@dataclass(frozen=True)
class SparseInfo:
    """``task: sparse`` (SPLADE): how the graph pools the MLM logits into its ``(batch, vocab)`` output."""

    #: ``"max"`` or ``"sum"`` over tokens.
    pooling: str
    #: ``"relu"`` (log(1 + ReLU)) or ``"log1p_relu"`` (log(1 + log(1 + ReLU))).
    activation: str
    #: Keep only this many largest values per row by default; None keeps all.
    max_active_dims: int | None = None


#: ``query_expansion.strategy``: ``"fixed"`` pads and cuts every query to ``length`` tokens, ``"min"`` pads
#: shorter queries up to ``length`` and leaves longer ones whole (up to the query length).
QUERY_EXPANSION_STRATEGIES = ("fixed", "min")


@dataclass(frozen=True)
class QueryExpansion:
    """ColBERT query expansion (sentence-transformers' ``Transformer.query_expansion``): a query shorter than
    ``length`` tokens is filled up to ``length`` with ``token_id`` (the model's [MASK]); those positions are
    scored, and the encoder attends to them only when ``attend``."""

    strategy: str
    attend: bool
    length: int
    token_id: int


@dataclass(frozen=True)
class MultiVectorInfo:
    """``task: multi-vector`` (ColBERT): per-task lengths, query expansion and the scoring mask's skiplist
    and allowlist."""

    #: Replaces ``max_seq_length`` for queries / documents when set.
    query_length: int | None = None
    document_length: int | None = None
    #: The modules after the Transformer that the graph includes (``Dense``, ``Normalize``).
    post_modules: tuple[str, ...] = ()
    #: Token ids left out of the vectors of the tasks in ``skiplist_tasks``.
    skiplist_ids: tuple[int, ...] = ()
    skiplist_tasks: tuple[str, ...] = ()
    #: Query expansion; None when off.
    query_expansion: QueryExpansion | None = None
    #: When set, only tokens with these ids count in the vectors of documents (and of texts without a task).
    keep_only_token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated ``embedrt.json``."""

    format_version: int
    task: str
    max_seq_length: int
    #: Longest input the graph's position embeddings cover; None when unknown (format 1) or unbounded.
    position_limit: int | None
    tokenizer: TokenizerInfo
    inputs: tuple[str, ...]
    variants: dict[str, Variant]
    #: The export directory the paths were confined to (None when parsed without one).
    directory: Path | None = None
    # embedding exports
    dim: int | None = None
    normalize: bool = False
    pooling: Pooling | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str = "cosine"
    # cross-encoder exports
    num_labels: int | None = None
    activation: str | None = None
    labels: tuple[str, ...] = ()
    # sparse and multi-vector exports (``dim`` as for embeddings: the vocabulary / the token-vector width)
    #: The graph outputs the runtime reads, each with its declared shape (names or ints per axis).
    outputs: dict[str, tuple[str | int, ...]] = field(default_factory=dict)
    #: The output that holds the embeddings.
    output: str | None = None
    sparse: SparseInfo | None = None
    multi_vector: MultiVectorInfo | None = None
    #: The whole JSON object as written (source, versions, model_config, figures, ...).
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def source_model(self) -> str | None:
        """The model id the export was made from."""
        source = self.raw.get("source")
        return source.get("model") if isinstance(source, dict) else None

    @property
    def source_path(self) -> str | None:
        """Where the source model was found at export."""
        source = self.raw.get("source")
        return source.get("path") if isinstance(source, dict) else None

    def file(self, relative: str) -> Path:
        """A path of the manifest (already confined at read) inside the export directory."""
        if self.directory is None:
            raise ArtifactError("this manifest was parsed without its export directory")
        return self.directory / relative

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (as read or as given to the writer)."""
        return self.raw


# ---------------------------------------------------------------------------------------------- parsing
class _Fields:
    """Typed access to one JSON object; every error names ``prefix.key``."""

    def __init__(self, data: Any, where: str, prefix: str) -> None:
        self.where, self.prefix = where, prefix
        if not isinstance(data, dict):
            raise self.error(None, f"must be a JSON object, got {_kind(data)}")
        self.data = data

    def error(self, key: str | None, message: str) -> ArtifactError:
        name = ".".join(p for p in (self.prefix, key) if p) or "(top level)"
        return ArtifactError(f"{self.where}: field '{name}' {message}")

    def name(self, key: str) -> str:
        return ".".join(p for p in (self.prefix, key) if p)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, required: bool = True) -> Any:
        if key not in self.data:
            if required:
                raise self.error(key, "is missing")
            return None
        return self.data[key]

    def str(self, key: str, required: bool = True, default: str | None = None, nonempty: bool = True):
        value = self.get(key, required)
        if value is None and not required:
            return default
        if not isinstance(value, str) or (nonempty and not value):
            raise self.error(key, f"must be a {'non-empty ' if nonempty else ''}string, got {value!r}")
        return value

    def int(self, key: str, required: bool = True, minimum: int | None = None, nullable: bool = False):
        value = self.get(key, required)
        if value is None and (nullable or not required):
            return None
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            bound = f" >= {minimum}" if minimum is not None else ""
            raise self.error(key, f"must be an int{bound}, got {value!r}")
        return value

    def float(self, key: str, default: float, low: float, high: float) -> float:
        """An optional number in (low, high], ``default`` when absent."""
        value = self.get(key, required=False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not low < value <= high:
            raise self.error(key, f"must be a number in ({low:g}, {high:g}], got {value!r}")
        return float(value)

    def bool(self, key: str, required: bool = True, default: bool = False) -> bool:
        value = self.get(key, required)
        if value is None and not required:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {value!r}")
        return value

    def strings(self, key: str, required: bool = True, nonempty: bool = True) -> tuple[str, ...]:
        value = self.get(key, required)
        if value is None and not required:
            return ()
        if (
            not isinstance(value, list)
            or not all(isinstance(v, str) and v for v in value)
            or (nonempty and not value)
        ):
            raise self.error(
                key, f"must be a {'non-empty ' if nonempty else ''}list of strings, got {value!r}"
            )
        return tuple(value)

    def ints(self, key: str, required: bool = True, minimum: int = 0) -> tuple[int, ...]:
        value = self.get(key, required)
        if value is None and not required:
            return ()
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value
        ):
            raise self.error(key, f"must be a list of ints >= {minimum}, got {value!r}")
        return tuple(value)

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.get(key)
        if value not in choices:
            raise self.error(key, f"must be one of {list(choices)}, got {value!r}")
        return value

    def sha256(self, key: str, required: bool = True) -> str | None:
        value = self.get(key, required)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not _SHA256.fullmatch(value):
            raise self.error(key, f"must be a sha256 (64 lower-case hex digits), got {value!r}")
        return value

    def path(self, key: str, directory: Path | None) -> str:
        """A file name relative to the export directory: no absolute path, no ``..``, resolved inside."""
        value = self.str(key)
        bad = None
        if "\x00" in value:
            bad = "holds a NUL byte"
        elif (
            PurePosixPath(value).is_absolute()
            or PureWindowsPath(value).is_absolute()
            or PureWindowsPath(value).drive
            or value.startswith(("/", "\\"))
        ):
            bad = "is an absolute path"
        elif ".." in PurePosixPath(value.replace("\\", "/")).parts:
            bad = "contains '..'"
        elif directory is not None:
            root = directory.resolve()
            target = (directory / value).resolve()
            if target != root and root not in target.parents:
                bad = f"resolves outside the export directory (to {target})"
            elif target == root:
                bad = "names the export directory itself, not a file in it"
        if bad:
            raise self.error(
                key, f"{bad}: {value!r}; every file of an export must be a relative path inside its directory"
            )
        return value

    def sub(self, key: str, required: bool = True) -> _Fields | None:
        value = self.get(key, required)
        if value is None and not required:
            return None
        return _Fields(value, self.where, self.name(key))


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _native(f: _Fields, directory: Path | None, probe_default: tuple[str, str] | None = None) -> NativeGraph:
    probe = f.path("probe", directory) if f.has("probe") or probe_default is None else probe_default[0]
    probe_sha = (
        f.sha256("probe_sha256") if f.has("probe_sha256") or probe_default is None else probe_default[1]
    )
    packed_f = f.sub("packed", required=False)
    packed = _native(packed_f, directory, (probe, probe_sha)) if packed_f is not None else None
    return NativeGraph(
        file=f.path("file", directory),
        sha256=f.sha256("sha256"),
        probe=probe,
        probe_sha256=probe_sha,
        op=f.str("op", required=False, default="", nonempty=False),
        cpu_only=f.bool("cpu_only", required=False),
        packed_only=f.bool("packed_only", required=False),
        packed=packed,
        probe_atol=f.float("probe_atol", 1e-6, 0.0, 0.1),
    )


def _variant(name: str, f: _Fields, directory: Path | None, version: int) -> Variant:
    native_f = f.sub(NATIVE_KEY[version], required=False)
    return Variant(
        name=name,
        file=f.path("file", directory),
        sha256=f.sha256("sha256"),
        precision=f.str("precision", required=False, default=name),
        native=_native(native_f, directory) if native_f is not None else None,
        raw=f.data,
    )


def parse_manifest(data: Any, directory: str | Path | None = None, where: str = MANIFEST_NAME) -> Manifest:
    """Validate a manifest's JSON object into a :class:`Manifest`.

    Args:
        data: the decoded JSON.
        directory: the export directory; with it, every path must also resolve inside it.
        where: how errors name the manifest.

    Raises:
        ArtifactError: another format version, or a missing or wrong field (the message names it).
    """
    directory = Path(directory) if directory is not None else None
    top = _Fields(data, where, "")
    version = top.get("format_version", required=False)
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise ArtifactError(
            f"{where} has format_version {version!r}, but this embedrt reads versions "
            f"{list(READABLE_VERSIONS)}; re-export the model with this embedrt version"
        )
    task = top.str("task", required=False, default=EMBEDDING)
    if task not in TASKS:
        raise top.error("task", f"must be one of {list(TASKS)}, got {task!r}")
    max_seq_length = top.int("max_seq_length", minimum=1)
    position_limit = top.int("position_limit", required=version >= 2, minimum=1, nullable=True)
    if position_limit is not None and max_seq_length > position_limit:
        raise top.error(
            "max_seq_length",
            f"is {max_seq_length}, more than the graph's position limit {position_limit} (position_limit)",
        )
    tok = top.sub("tokenizer")
    tokenizer = TokenizerInfo(
        # NOTE: early format-1 exports have no tokenizer.file; theirs is tokenizer.json
        file=tok.path("file", directory) if tok.has("file") or version >= 2 else TOKENIZER_FILE,
        sha256=tok.sha256("sha256", required=version >= 2),
        pad_token_id=tok.int("pad_token_id", minimum=0),
        pad_token=tok.str("pad_token", required=False),
        padding_side=tok.str("padding_side", required=False, default="right"),
    )
    if tokenizer.padding_side != "right":
        raise tok.error("padding_side", f"must be 'right', got {tokenizer.padding_side!r}")
    inputs = top.strings("inputs")
    for required in ("input_ids", "attention_mask"):
        if required not in inputs:
            raise top.error("inputs", f"must include {required!r}, got {list(inputs)}")
    variants_f = top.sub("variants")
    if not variants_f.data:
        raise variants_f.error(None, "has no variant")
    variants = {
        name: _variant(name, _Fields(entry, where, f"variants.{name}"), directory, version)
        for name, entry in variants_f.data.items()
    }
    common = dict(
        format_version=version,
        task=task,
        max_seq_length=max_seq_length,
        position_limit=position_limit,
        tokenizer=tokenizer,
        inputs=inputs,
        variants=variants,
        directory=directory,
        raw=data,
    )
    if task == CROSS_ENCODER:
        return Manifest(
            **common,
            num_labels=top.int("num_labels", minimum=1),
            activation=top.str("activation"),
            labels=top.strings("labels", required=False, nonempty=False),
        )
    prompts, default_prompt = _prompts(top)
    if task in (SPARSE, MULTI_VECTOR):
        return _late(top, common, task, position_limit, prompts, default_prompt)
    pooling = top.sub("pooling")
    return Manifest(
        **common,
        dim=top.int("dim", minimum=1),
        normalize=top.bool("normalize"),
        pooling=Pooling(
            pooling.strings("modes"), pooling.bool("include_prompt", required=False, default=True)
        ),
        prompts=prompts,
        default_prompt_name=default_prompt,
        similarity_fn_name=top.str("similarity_fn_name", required=False, default="cosine"),
    )


def _prompts(top: _Fields) -> tuple[dict[str, str], str | None]:
    prompts = top.get("prompts", required=False) or {}
    if not isinstance(prompts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()
    ):
        raise top.error("prompts", f"must be an object of strings, got {prompts!r}")
    default_prompt = top.str("default_prompt_name", required=False)
    if default_prompt is not None and default_prompt not in prompts:
        raise top.error(
            "default_prompt_name", f"is {default_prompt!r}, which is not in prompts {sorted(prompts)}"
        )
    return dict(prompts), default_prompt


def _outputs(top: _Fields, expected: dict[str, tuple[str | int, ...]], default: str):
    """``outputs`` (name -> shape) must declare each expected output with the expected shape; ``output``
    names the embeddings."""
    out_f = top.sub("outputs")
    outputs: dict[str, tuple[str | int, ...]] = {}
    for name, shape in out_f.data.items():
        if not isinstance(shape, list) or not all(
            (isinstance(d, str) and d) or (isinstance(d, int) and not isinstance(d, bool) and d >= 1)
            for d in shape
        ):
            raise out_f.error(name, f"must be a list of axis names or sizes, got {shape!r}")
        outputs[name] = tuple(shape)
    for name, shape in expected.items():
        if name not in outputs:
            raise out_f.error(name, f"is missing (this task's graph returns {sorted(expected)})")
        got = outputs[name]
        if len(got) != len(shape) or any(
            isinstance(want, int) and have != want for have, want in zip(got, shape, strict=True)
        ):
            raise out_f.error(name, f"must have shape {list(shape)}, got {list(got)}")
    output = top.str("output", required=False, default=default)
    if output != default:
        raise top.error("output", f"must be {default!r}, got {output!r}")
    return outputs, output


def _late(
    top: _Fields,
    common: dict[str, Any],
    task: str,
    position_limit: int | None,
    prompts: dict[str, str],
    default_prompt: str | None,
) -> Manifest:
    """The fields of a sparse or a multi-vector manifest."""
    dim = top.int("dim", minimum=1)
    if task == SPARSE:
        outputs, output = _outputs(top, {SPARSE_OUTPUT: ("batch", dim)}, SPARSE_OUTPUT)
        similarity = top.str("similarity_fn_name", required=False, default="dot")
        if similarity not in SPARSE_SIMILARITIES:
            raise top.error(
                "similarity_fn_name", f"must be one of {list(SPARSE_SIMILARITIES)}, got {similarity!r}"
            )
        return Manifest(
            **common,
            dim=dim,
            prompts=prompts,
            default_prompt_name=default_prompt,
            similarity_fn_name=similarity,
            outputs=outputs,
            output=output,
            sparse=SparseInfo(
                pooling=top.choice("pooling", SPARSE_POOLINGS),
                activation=top.choice("activation", SPARSE_ACTIVATIONS),
                max_active_dims=top.int("max_active_dims", required=False, minimum=1, nullable=True),
            ),
        )
    outputs, output = _outputs(
        top, {TOKENS_OUTPUT: ("batch", "sequence", dim), MASK_OUTPUT: ("batch", "sequence")}, TOKENS_OUTPUT
    )
    similarity = top.str("similarity_fn_name", required=False, default="maxsim")
    if similarity not in MULTI_VECTOR_SIMILARITIES:
        raise top.error(
            "similarity_fn_name", f"must be one of {list(MULTI_VECTOR_SIMILARITIES)}, got {similarity!r}"
        )
    lengths = {}
    for key in ("query_length", "document_length"):
        lengths[key] = n = top.int(key, required=False, minimum=1, nullable=True)
        if n is not None and position_limit is not None and n > position_limit:
            raise top.error(
                key, f"is {n}, more than the graph's position limit {position_limit} (position_limit)"
            )
    post = top.strings("post_modules", required=False, nonempty=False)
    bad = [p for p in post if p not in MULTI_VECTOR_POST_MODULES]
    if bad:
        raise top.error("post_modules", f"has {bad}; valid modules: {list(MULTI_VECTOR_POST_MODULES)}")
    skip_tasks = top.strings("skiplist_tasks", required=False, nonempty=False)
    bad = [t for t in skip_tasks if t not in ("query", "document")]
    if bad:
        raise top.error("skiplist_tasks", f"has {bad}; valid tasks: ['query', 'document']")
    # NOTE: as MultiVectorMask, an empty allowlist is no allowlist
    keep_only = top.ints("keep_only_token_ids", required=False) or None
    return Manifest(
        **common,
        dim=dim,
        prompts=prompts,
        default_prompt_name=default_prompt,
        similarity_fn_name=similarity,
        outputs=outputs,
        output=output,
        multi_vector=MultiVectorInfo(
            post_modules=post,
            skiplist_ids=top.ints("skiplist_ids", required=False),
            skiplist_tasks=skip_tasks,
            query_expansion=_query_expansion(top, lengths["query_length"], position_limit),
            keep_only_token_ids=keep_only,
            **lengths,
        ),
    )


def _query_expansion(
    top: _Fields, query_length: int | None, position_limit: int | None
) -> QueryExpansion | None:
    qe = top.sub("query_expansion", required=False)
    if qe is None:
        return None
    strategy = qe.choice("strategy", QUERY_EXPANSION_STRATEGIES)
    length = qe.int("length", minimum=1)
    if position_limit is not None and length > position_limit:
        raise qe.error(
            "length", f"is {length}, more than the graph's position limit {position_limit} (position_limit)"
        )
    if query_length is not None and query_length < length:
        raise qe.error("length", f"is {length}, more than query_length {query_length}")
    return QueryExpansion(
        strategy=strategy, attend=qe.bool("attend"), length=length, token_id=qe.int("token_id", minimum=0)
    )


def read_manifest(export_dir: str | Path) -> Manifest:
    """Load and validate ``embedrt.json`` from an export directory (no other file is opened).

    Raises:
        ArtifactError: the directory or the manifest is missing, unreadable, of another format version, or a
            field is missing, of the wrong type, or names a path outside the directory.
    """
    export_dir = Path(export_dir)
    path = export_dir / MANIFEST_NAME
    if not export_dir.is_dir():
        raise ArtifactError(f"export directory not found: {export_dir}")
    if not path.is_file():
        raise ArtifactError(
            f"{path} is missing: this is not an embedrt export directory (run export-model first)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ArtifactError(f"{path} is corrupted: {e}") from e
    except RecursionError:  # NOTE: json's decoder recurses once per nested array or object
        raise ArtifactError(f"{path} is corrupted: its arrays or objects nest too deeply") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} is corrupted: expected a JSON object")
    return parse_manifest(data, export_dir, where=str(path))


def write_manifest(export_dir: str | Path, manifest: Manifest | dict[str, Any]) -> Path:
    """Write ``embedrt.json``, validated by the reader first (paths confined to ``export_dir``).

    Raises:
        ArtifactError: the manifest would not read back.
    """
    data = manifest.to_dict() if isinstance(manifest, Manifest) else manifest
    parse_manifest(data, export_dir, where=f"manifest for {Path(export_dir) / MANIFEST_NAME}")
    path = Path(export_dir) / MANIFEST_NAME
    path.write_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
