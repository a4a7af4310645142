"""``embedrt serve``: one model over HTTP, in one process (the lean server) or on Ray Serve (many replicas).

Routes (the export's task decides which exist; the others answer a JSON 404 that says why):

    POST /v1/embeddings   OpenAI request/response shape                         (embedding exports)
    POST /embed           text-embeddings-inference (TEI): inputs, normalize    (embedding exports)
    POST /v1/rerank       Cohere/Jina shape: query, documents, top_n            (cross-encoder exports)
    POST /rerank          TEI: query, texts, raw_scores, return_text            (cross-encoder exports)
    POST /embed_sparse    TEI: inputs, prompt_name -> [{"index", "value"}]      (sparse exports)
    GET  /v1/models       the one served model, OpenAI's list shape
    GET  /health          {"status": "ok", "model", "task", ...}
    GET  /metrics         Prometheus text: requests, batch sizes, queue/tokenization/inference latency

A multi-vector export is refused at start-up (``UnsupportedModelError``): no peer server defines a route for
per-token vectors (TEI's ``/embed_all`` returns the raw hidden states of a model without pooling, not a
projected, masked ColBERT output), so there is no client to speak to. See docs/serving.md.

Both modes run the same ASGI app (``_http_app.App``) with the same in-process dynamic batcher
(``_batcher.Batcher``): the lean server runs it on uvicorn, Ray Serve in each replica behind its proxy.
This module holds what needs neither: the settings, the request validation (pure functions, unit-tested on
their own) and the command line.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, MissingDependencyError, UnsupportedModelError
from ..manifest import CROSS_ENCODER, EMBEDDING, SPARSE

if TYPE_CHECKING:  # pragma: no cover
    from ..manifest import Manifest
from . import check_export, require, require_ray

ENCODING_FORMATS = ("float", "base64")
SERVE_HINT = "pip install 'embedrt[serve]'"
#: the export tasks ``embedrt serve`` serves, each with what its model is called in messages
SERVED_TASKS = {
    EMBEDDING: "the embedding model",
    CROSS_ENCODER: "the cross-encoder (a reranker)",
    SPARSE: "the sparse (SPLADE) model",
}


def check_task(task: str) -> None:
    """Raises UnsupportedModelError unless ``embedrt serve`` serves exports of ``task``, naming those it
    serves."""
    if task not in SERVED_TASKS:
        raise UnsupportedModelError(
            f"embedrt serve does not serve {task!r} exports; it serves the tasks {list(SERVED_TASKS)}. "
            "A multi-vector export has no peer route to answer on: encode it in-process with "
            "embedrt.MultiVectorEncoder (docs/serving.md)"
        )


@dataclass(frozen=True)
class Limits:
    """Request limits; each answers a JSON error (400, or 413 for the body) when exceeded."""

    max_inputs: int = 2048  #: texts per embeddings request (OpenAI's limit)
    max_text_chars: int = 32_768  #: characters per text (the model truncates at max_seq_length tokens anyway)
    max_documents: int = 1000  #: documents per rerank request
    max_body_bytes: int = 16 * 2**20  #: request body, refused with 413 before it is read whole


@dataclass(frozen=True)
class ServeConfig:
    """Everything the server needs; plain data so Ray can ship it to the replicas."""

    export_dir: str
    model_name: str
    replicas: int = 1
    max_batch_size: int = 64  #: texts (or pairs) per dynamic batch
    max_batch_tokens: int = 16_384  #: tokens per dynamic batch (embeddings) and per graph run
    batch_wait_timeout_s: float = 0.0  #: how long a batch waits to fill once an encode thread is free
    max_ongoing_requests: int = 256  #: requests admitted at once (waiting or running); more get 503
    max_queued_texts: int = 8192  #: texts waiting to be encoded; a request that does not fit gets 503
    max_queued_requests: int = 1024  #: Ray mode only: requests waiting at Serve's proxy
    max_inputs: int = Limits.max_inputs
    max_text_chars: int = Limits.max_text_chars
    max_documents: int = Limits.max_documents
    max_body_bytes: int = Limits.max_body_bytes
    device: str = "auto"
    variant: str = "fp32"
    threads: int | None = None
    num_cpus: float = 1
    num_gpus: float = 0
    model_aliases: tuple[str, ...] = ()  #: other names accepted as ``model`` (e.g. the full hub id)
    accept_any_model: bool = False  #: accept any ``model`` name (clients that send their own default)
    graceful_timeout_s: float = 30.0  #: lean mode: how long SIGTERM waits for requests in flight

    @property
    def limits(self) -> Limits:
        return Limits(self.max_inputs, self.max_text_chars, self.max_documents, self.max_body_bytes)

    def check(self) -> None:
        """Raises InputError for an out-of-range value, naming it."""
        for name in (
            "replicas",
            "max_batch_size",
            "max_batch_tokens",
            "max_ongoing_requests",
            "max_queued_texts",
            "max_inputs",
            "max_text_chars",
            "max_documents",
            "max_body_bytes",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise InputError(f"{name} must be a positive int, got {v!r}")
        if self.max_queued_requests != -1 and self.max_queued_requests <= 0:
            raise InputError(
                f"max_queued_requests must be positive or -1 (no limit), got {self.max_queued_requests}"
            )
        if self.max_queued_texts < max(self.max_inputs, self.max_documents):
            raise InputError(
                f"max_queued_texts ({self.max_queued_texts}) must hold one whole request: at least "
                f"max_inputs ({self.max_inputs}) and max_documents ({self.max_documents})"
            )
        if not self.batch_wait_timeout_s >= 0:
            raise InputError(f"batch_wait_timeout_s must be >= 0, got {self.batch_wait_timeout_s}")
        if not self.graceful_timeout_s >= 0:
            raise InputError(f"graceful_timeout_s must be >= 0, got {self.graceful_timeout_s}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0
        ):
            raise InputError(f"threads must be a non-negative int, got {self.threads!r}")


class RequestError(Exception):
    """A bad request: an HTTP error (400 unless ``status`` says otherwise) with an OpenAI-style JSON body."""

    def __init__(
        self,
        message: str,
        param: str | None = None,
        status: int = 400,
        type_: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.param = param
        self.status = status
        self.type = type_
        self.code = code

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class EmbeddingRequest:
    texts: list[str]
    encoding_format: str
    dimensions: int | None


@dataclass
class EmbedRequest:
    """TEI's ``POST /embed``."""

    texts: list[str]
    normalize: bool
    dimensions: int | None
    #: False: a text longer than the model's window is refused (413) instead of cut.
    truncate: bool = True


@dataclass
class EmbedSparseRequest:
    """TEI's ``POST /embed_sparse``."""

    texts: list[str]
    prompt_name: str | None
    truncate: bool = True


@dataclass
class RerankRequest:
    query: str
    documents: list[str]
    top_n: int | None
    return_documents: bool
    raw_scores: bool = False
    truncate: bool = True


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int):
        return "an int (token arrays are not supported)"
    if isinstance(value, list):
        return "a list (token arrays are not supported)"
    return type(value).__name__


def check_text(text: Any, where: str, param: str, limits: Limits) -> str:
    """``text`` if it is a str within ``limits.max_text_chars`` and valid Unicode, else RequestError.

    JSON can carry a lone surrogate (``"\\ud800"``) that a Python str holds but no UTF-8 encoder (nor the
    tokenizer) accepts: that is the client's error, a 400, not a 500.
    """
    if not isinstance(text, str):
        raise RequestError(f"'{where}' is {_describe(text)}; every item must be a string", param)
    if len(text) > limits.max_text_chars:
        raise RequestError(f"'{where}' has {len(text)} characters; at most {limits.max_text_chars}", param)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise RequestError(
                f"'{where}' is not valid Unicode: {e.reason} at character {e.start} ({text[e.start]!r})",
                param,
            ) from None
    return text


def _texts(raw: Any, name: str, limits: Limits, max_items: int) -> list[str]:
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list):
        if not raw:
            raise RequestError(f"'{name}' is an empty list; send at least one string", name)
        texts = raw
    else:
        raise RequestError(f"'{name}' must be a string or a list of strings, got {_describe(raw)}", name)
    if len(texts) > max_items:
        raise RequestError(f"'{name}' has {len(texts)} items; at most {max_items} per request", name)
    for i, t in enumerate(texts):
        check_text(t, f"{name}[{i}]", name, limits)
    return texts


def _object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise RequestError(f"the body must be a JSON object, got {type(body).__name__}")
    return body


def _optional_bool(body: dict, name: str, default: bool) -> bool:
    v = body.get(name, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise RequestError(f"'{name}' must be true or false, got {v!r}", name)
    return v


def _dimensions(body: dict, dim: int) -> int | None:
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= dim):
        raise RequestError(f"'dimensions' must be an int in [1, {dim}], got {dims!r}", "dimensions")
    return dims


def check_model(body: dict, model_names: tuple[str, ...], accept_any_model: bool = False) -> None:
    """``model``, when given, must be a name this server serves (unless ``accept_any_model``)."""
    model = body.get("model")
    if model is None or accept_any_model:
        return
    if model not in model_names:
        # NOTE: names only, never a path: the export's source may be a local directory, and a server does not
        # tell its clients about its filesystem.
        raise RequestError(
            f"unknown model {model!r}; this server serves {model_names[0]!r} (start it with "
            "--accept-any-model to accept any name)",
            "model",
            code="model_not_found",
        )


def parse_request(
    body: Any, limits: Limits, dim: int, model_names: tuple[str, ...], accept_any_model: bool = False
) -> EmbeddingRequest:
    """Validate an OpenAI embeddings request body (``POST /v1/embeddings``).

    Raises:
        RequestError: the first problem found, with the parameter it concerns.
    """
    body = _object(body)
    if "input" not in body:
        raise RequestError("'input' is required: a string or a list of strings", "input")
    texts = _texts(body["input"], "input", limits, limits.max_inputs)
    check_model(body, model_names, accept_any_model)
    fmt = body.get("encoding_format", "float")
    if fmt is None:
        fmt = "float"
    if fmt not in ENCODING_FORMATS:
        raise RequestError(
            f"unknown encoding_format {fmt!r}; valid choices: {list(ENCODING_FORMATS)}", "encoding_format"
        )
    return EmbeddingRequest(texts=texts, encoding_format=fmt, dimensions=_dimensions(body, dim))


def _tei_inputs(body: Any, limits: Limits) -> tuple[dict, list[str], bool]:
    """The body, its ``inputs`` and ``truncate`` of a TEI request, ``truncation_direction`` checked."""
    body = _object(body)
    if "inputs" not in body:
        raise RequestError("'inputs' is required: a string or a list of strings", "inputs")
    texts = _texts(body["inputs"], "inputs", limits, limits.max_inputs)
    truncate = _optional_bool(body, "truncate", True)
    direction = body.get("truncation_direction")
    if direction is not None and str(direction).lower() != "right":
        raise RequestError(
            f"truncation_direction {direction!r} is not supported; valid choices: ['right']",
            "truncation_direction",
        )
    return body, texts, truncate


def parse_embed(body: Any, limits: Limits, dim: int) -> EmbedRequest:
    """Validate a TEI ``POST /embed`` body: ``inputs`` (str or list), ``normalize`` (default true),
    ``truncate`` (default true: texts are cut at max_seq_length, as sentence-transformers does; false: a
    longer text is refused with 413, as TEI does), ``dimensions``.

    Raises:
        RequestError: the first problem found.
    """
    body, texts, truncate = _tei_inputs(body, limits)
    normalize = _optional_bool(body, "normalize", True)
    if body.get("prompt_name") is not None:
        raise RequestError(
            "'prompt_name' is not supported: the server applies the model's default prompt", "prompt_name"
        )
    return EmbedRequest(
        texts=texts, normalize=normalize, dimensions=_dimensions(body, dim), truncate=truncate
    )


def parse_embed_sparse(body: Any, limits: Limits, prompts: dict[str, str]) -> EmbedSparseRequest:
    """Validate a TEI ``POST /embed_sparse`` body: ``inputs`` (str or list), ``truncate`` (as ``/embed``),
    ``truncation_direction`` (right), ``prompt_name`` (one of the model's ``prompts``).

    Raises:
        RequestError: the first problem found.
    """
    body, texts, truncate = _tei_inputs(body, limits)
    name = body.get("prompt_name")
    if name is not None and (not isinstance(name, str) or name not in prompts):
        raise RequestError(
            f"unknown prompt_name {name!r}; this model's prompts: {sorted(prompts)}", "prompt_name"
        )
    return EmbedSparseRequest(texts=texts, prompt_name=name, truncate=truncate)


def _documents(raw: Any, name: str, limits: Limits) -> list[str]:
    if not isinstance(raw, list):
        raise RequestError(f"'{name}' must be a list of strings, got {_describe(raw)}", name)
    if not raw:
        raise RequestError(f"'{name}' is an empty list; send at least one document", name)
    if len(raw) > limits.max_documents:
        raise RequestError(
            f"'{name}' has {len(raw)} documents; at most {limits.max_documents} per request", name
        )
    docs = []
    for i, d in enumerate(raw):
        if isinstance(d, dict) and "text" in d:  # NOTE: Cohere and Jina also take {"text": ...} objects
            d = d["text"]
        docs.append(check_text(d, f"{name}[{i}]", name, limits))
    return docs


def _query(body: dict, limits: Limits) -> str:
    if "query" not in body:
        raise RequestError("'query' is required: a string", "query")
    return check_text(body["query"], "query", "query", limits)


def parse_rerank(
    body: Any, limits: Limits, model_names: tuple[str, ...], accept_any_model: bool = False
) -> RerankRequest:
    """Validate a Cohere/Jina ``POST /v1/rerank`` body: ``query``, ``documents`` (strings or ``{"text"}``),
    ``top_n``, ``return_documents`` (default false), ``model``.

    Raises:
        RequestError: the first problem found.
    """
    body = _object(body)
    query = _query(body, limits)
    docs = _documents(body.get("documents"), "documents", limits)
    check_model(body, model_names, accept_any_model)
    top_n = body.get("top_n")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise RequestError(f"'top_n' must be a positive int, got {top_n!r}", "top_n")
    return RerankRequest(query, docs, top_n, _optional_bool(body, "return_documents", False))


def parse_tei_rerank(body: Any, limits: Limits) -> RerankRequest:
    """Validate a TEI ``POST /rerank`` body: ``query``, ``texts``, ``raw_scores`` (logits, no activation),
    ``return_text``, ``truncate`` (as ``/embed``, for each query-text pair).

    Raises:
        RequestError: the first problem found.
    """
    body = _object(body)
    query = _query(body, limits)
    texts = _documents(body.get("texts"), "texts", limits)
    return RerankRequest(
        query,
        texts,
        None,
        _optional_bool(body, "return_text", False),
        raw_scores=_optional_bool(body, "raw_scores", False),
        truncate=_optional_bool(body, "truncate", True),
    )


def encode_vector(v: np.ndarray, encoding_format: str) -> np.ndarray | str:
    """``float``: a float32 array, which the response writes as a JSON list (``_http_app.render_json``);
    ``base64``: little-endian float32 bytes, as OpenAI sends them."""
    if encoding_format == "base64":
        return base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode("ascii")
    return np.ascontiguousarray(v, dtype=np.float32)


def decode_base64(s: str) -> np.ndarray:
    """Inverse of ``encode_vector(v, "base64")`` (what OpenAI clients do with ``numpy.frombuffer``)."""
    return np.frombuffer(base64.b64decode(s), dtype="<f4")


def require_lean() -> None:
    """The lean server's dependencies; raises MissingDependencyError with the install hint."""
    for module in ("starlette", "uvicorn"):
        try:
            __import__(module)
        except ImportError as e:
            raise MissingDependencyError(
                f"embedrt serve needs {module}, which is not installed: {SERVE_HINT} "
                "(or --ray with 'embedrt[ray]')"
            ) from e


def require_serve() -> Any:
    """Import and return ``ray.serve``; raises MissingDependencyError with the install hint."""
    require_ray()
    return require("ray.serve", "Ray Serve")


def build_app(cfg: ServeConfig) -> Any:
    """Build the Ray Serve application (a bound deployment) for ``serve.run``.

    Raises:
        InputError: an out-of-range setting.
        MissingDependencyError: Ray Serve is not installed.
    """
    cfg.check()
    require_serve()
    from ._serve_app import make_deployment

    return make_deployment(cfg).bind()


def model_name_of(export_dir: str | os.PathLike, manifest: Manifest | None = None) -> str:
    """The name clients send as ``model``: the source model's last path part (``all-MiniLM-L6-v2``)."""
    return source_model_of(export_dir, manifest).rstrip("/").split("/")[-1]


def source_model_of(export_dir: str | os.PathLike, manifest: Manifest | None = None) -> str:
    """The model the export was made from, as given to ``export-model``."""
    from ..manifest import read_manifest

    m = manifest if manifest is not None else read_manifest(Path(export_dir))
    return str(m.source_model or Path(export_dir).name)


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_alias(source: str) -> tuple[str, ...]:
    """``(source,)`` when the export came from a hub id (``org/name``) that is not a local path, else ``()``:
    a local directory is never a model name the server accepts or shows."""
    if _HUB_ID.match(source) and not Path(source).exists():
        return (source,)
    return ()


def config_from_args(args: Any) -> ServeConfig:
    """The ``ServeConfig`` of ``embedrt serve``'s arguments, the export checked (typed errors, no Ray)."""
    export_dir = str(Path(args.export_dir).absolute())
    manifest = check_export(export_dir, args.variant)
    check_task(manifest.task)  # NOTE: before Ray or uvicorn start: a task nobody can query fails fast
    source = source_model_of(export_dir, manifest)
    cfg = ServeConfig(
        export_dir=export_dir,
        model_name=args.model_name or model_name_of(export_dir, manifest),
        replicas=args.replicas,
        max_batch_size=args.max_batch_size,
        max_batch_tokens=args.max_batch_tokens,
        batch_wait_timeout_s=args.batch_wait_timeout_ms / 1000.0,
        max_ongoing_requests=args.max_ongoing_requests,
        max_queued_texts=args.max_queued_texts,
        max_queued_requests=args.max_queued_requests,
        max_inputs=args.max_inputs,
        max_text_chars=args.max_text_chars,
        max_documents=args.max_documents,
        max_body_bytes=args.max_body_bytes,
        device=args.device,
        variant=args.variant,
        threads=args.threads,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        model_aliases=() if args.model_name else hub_alias(source),
        accept_any_model=args.accept_any_model,
        graceful_timeout_s=args.graceful_timeout_s,
    )
    cfg.check()
    return cfg


def use_ray(args: Any) -> bool:
    """Ray mode when asked for: ``--ray``, ``--ray-address`` or more than one replica."""
    return bool(args.ray or args.ray_address is not None or args.replicas > 1)


def check_port(port: Any) -> None:
    """Raises InputError unless ``port`` is a TCP port number (0: any free one)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(f"port must be an int from 0 to 65535 (0: any free port), got {port!r}")


def run_cli(args: Any) -> int:
    """``embedrt serve``: the lean server, or Ray Serve (``--ray``, ``--ray-address``, ``--replicas N``)."""
    check_port(args.port)
    cfg = config_from_args(args)
    if use_ray(args):
        return run_ray(cfg, args)
    require_lean()
    from ._http_app import run_lean

    return run_lean(cfg, host=args.host, port=args.port, quiet=args.quiet)


def run_ray(cfg: ServeConfig, args: Any) -> int:
    """Deploy on Ray Serve, print the address, serve until SIGINT/SIGTERM, then shut Serve and Ray down."""
    import signal
    import sys
    import threading

    app = build_app(cfg)
    ray = require_ray()
    serve = require_serve()
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    ray.init(
        address=args.ray_address,
        include_dashboard=False if args.ray_address is None else None,
        log_to_driver=not args.quiet,
    )
    # NOTE: after ray.init, which installs its own SIGTERM handler: ours shuts Serve and Ray down in order, so
    # no Ray process outlives the command.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(app, name="embedrt", route_prefix="/")
        print(
            f"serving {cfg.model_name} on Ray Serve ({cfg.replicas} replica(s)) on http://{args.host}:{args.port}",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        print("shutting down", file=sys.stderr, flush=True)
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    return 0


def add_parser(sub: Any) -> None:
    """Register ``serve`` on the ``embedrt`` subcommand parser."""
    p = sub.add_parser(
        "serve",
        help="serve an export over HTTP: OpenAI /v1/embeddings, TEI /embed, /v1/rerank, "
        "/rerank, TEI /embed_sparse (one process; --ray for Ray Serve)",
    )
    p.add_argument(
        "export_dir", help="directory written by export-model (on a cluster: the same path on every node)"
    )
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (default 127.0.0.1; 0.0.0.0 to expose)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    d = ServeConfig(export_dir="", model_name="")  # NOTE: the defaults below are the config's own
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=d.max_batch_size,
        help=f"texts (or rerank pairs) per dynamic batch (default {d.max_batch_size})",
    )
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=d.max_batch_tokens,
        help=f"tokens per dynamic batch and per graph run (default {d.max_batch_tokens})",
    )
    p.add_argument(
        "--batch-wait-timeout-ms",
        type=float,
        default=d.batch_wait_timeout_s * 1000.0,
        help="how long a batch waits to fill once an encode thread is free (default "
        f"{d.batch_wait_timeout_s * 1000:g} ms: texts that arrive while a batch runs form the next)",
    )
    p.add_argument(
        "--max-ongoing-requests",
        type=int,
        default=d.max_ongoing_requests,
        help=f"requests admitted at once, per replica; more get 503 (default {d.max_ongoing_requests})",
    )
    p.add_argument(
        "--max-queued-texts",
        type=int,
        default=d.max_queued_texts,
        help=f"texts waiting for the encode threads; a request that does not fit gets 503 "
        f"(default {d.max_queued_texts})",
    )
    lim = Limits()
    for field, what in (
        ("max_inputs", "texts per embeddings request, else 400"),
        ("max_text_chars", "characters per text, else 400"),
        ("max_documents", "documents per rerank request, else 400"),
        ("max_body_bytes", "request body size, else 413"),
    ):
        default = getattr(lim, field)
        p.add_argument(
            "--" + field.replace("_", "-"), type=int, default=default, help=f"{what} (default {default})"
        )
    p.add_argument(
        "--model-name",
        default=None,
        help="name reported and accepted as 'model' (default: the source model, e.g. all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--accept-any-model",
        action="store_true",
        help="accept any 'model' in requests (LangChain's OpenAIEmbeddings sends its own default)",
    )
    p.add_argument("--device", default=d.device, help=f"auto, cpu, cuda or tensorrt (default: {d.device})")
    p.add_argument(
        "--variant", default=d.variant, help=f"graph variant from the manifest (default: {d.variant})"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="onnxruntime threads (default: every core this process may use; on Ray: --num-cpus per replica)",
    )
    p.add_argument(
        "--graceful-timeout-s",
        type=float,
        default=d.graceful_timeout_s,
        help=f"on SIGTERM, how long requests in flight may finish (default {d.graceful_timeout_s:g})",
    )
    g = p.add_argument_group("Ray Serve (many replicas, a cluster; needs embedrt[ray])")
    g.add_argument("--ray", action="store_true", help="serve on Ray Serve instead of one process")
    g.add_argument(
        "--replicas",
        type=int,
        default=d.replicas,
        help=f"replicas on Ray Serve; more than 1 implies --ray (default {d.replicas})",
    )
    g.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster address (auto, ray://host:10001, ...); implies --ray; default: start a local Ray",
    )
    g.add_argument(
        "--max-queued-requests",
        type=int,
        default=d.max_queued_requests,
        help=f"requests waiting at Serve's proxy; more get 503 at once "
        f"(default {d.max_queued_requests}; -1: no limit)",
    )
    g.add_argument(
        "--num-cpus", type=float, default=d.num_cpus, help=f"CPUs per replica (default {d.num_cpus:g})"
    )
    g.add_argument(
        "--num-gpus",
        type=float,
        default=d.num_gpus,
        help=f"GPUs per replica (default {d.num_gpus:g}; use with --device cuda)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no access log (Ray: do not forward replica logs)"
    )
    p.set_defaults(func=run_cli)
