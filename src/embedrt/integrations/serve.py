"""Online serving on Ray Serve: an OpenAI-compatible ``POST /v1/embeddings`` with dynamic batching.

Routes (one FastAPI app per replica, behind Serve's HTTP proxy):

    POST /v1/embeddings   OpenAI request/response shape; texts from all concurrent requests are batched together
    GET  /health          {"status": "ok", "model", "dim", ...}
    GET  /metrics         Prometheus text exposition of the replica that answers (per-replica counters)

Request validation (``parse_request``) needs no Ray, so it is unit-tested on its own. Overload is Serve's own
backpressure: at most ``max_ongoing_requests`` per replica in flight, ``max_queued_requests`` waiting at the
proxy; beyond that the proxy answers 503 at once instead of letting clients hang.
"""

from __future__ import annotations

import base64
import os
import signal
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from . import check_export, require, require_ray

ENCODING_FORMATS = ("float", "base64")
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Limits:
    """Request limits; every one answers HTTP 400 with a JSON error when exceeded."""

    max_inputs: int = 2048  #: texts per request (OpenAI's limit)
    max_text_chars: int = 32_768  #: characters per text (the model truncates at max_seq_length tokens anyway)


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``build_app`` needs; plain data so Serve can ship it to the replicas."""

    export_dir: str
    model_name: str
    replicas: int = 1
    max_batch_size: int = 64
    batch_wait_timeout_s: float = 0.005
    max_ongoing_requests: int = 128
    max_queued_requests: int = 1024
    max_inputs: int = Limits.max_inputs
    max_text_chars: int = Limits.max_text_chars
    device: str = "auto"
    variant: str = "fp32"
    threads: int | None = None
    num_cpus: float = 1
    num_gpus: float = 0
    encode_batch_size: int = 64
    model_aliases: tuple[str, ...] = ()  #: other names accepted as ``model`` (e.g. the full hub id)

    def check(self) -> None:
        """Raises InputError for an out-of-range value, naming it."""
        for name in ("replicas", "max_batch_size", "max_ongoing_requests", "max_inputs", "max_text_chars",
                     "encode_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise InputError(f"{name} must be a positive int, got {v!r}")
        if self.max_queued_requests != -1 and self.max_queued_requests <= 0:
            raise InputError(f"max_queued_requests must be positive or -1 (no limit), got {self.max_queued_requests}")
        if not self.batch_wait_timeout_s >= 0:
            raise InputError(f"batch_wait_timeout_s must be >= 0, got {self.batch_wait_timeout_s}")


class RequestError(Exception):
    """A bad request: becomes HTTP 400 with an OpenAI-style JSON error body."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": "invalid_request_error", "param": self.param,
                          "code": None}}


@dataclass
class EmbeddingRequest:
    texts: list[str]
    encoding_format: str
    dimensions: int | None


def parse_request(body: Any, limits: Limits, dim: int, model_names: tuple[str, ...]) -> EmbeddingRequest:
    """Validate an OpenAI embeddings request body.

    Raises:
        RequestError: the first problem found, with the parameter it concerns.
    """
    if not isinstance(body, dict):
        raise RequestError(f"the body must be a JSON object, got {type(body).__name__}")
    if "input" not in body:
        raise RequestError("'input' is required: a string or a list of strings", "input")
    raw = body["input"]
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list):
        if not raw:
            raise RequestError("'input' is an empty list; send at least one string", "input")
        texts = raw
    else:
        raise RequestError(f"'input' must be a string or a list of strings, got {type(raw).__name__}", "input")
    if len(texts) > limits.max_inputs:
        raise RequestError(f"'input' has {len(texts)} items; at most {limits.max_inputs} per request", "input")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            kind = "an int (token arrays are not supported)" if isinstance(t, int) and not isinstance(t, bool) \
                else ("a list (token arrays are not supported)" if isinstance(t, list) else type(t).__name__)
            raise RequestError(f"'input[{i}]' is {kind}; every item must be a string", "input")
        if len(t) > limits.max_text_chars:
            raise RequestError(f"'input[{i}]' has {len(t)} characters; at most {limits.max_text_chars}", "input")
    model = body.get("model")
    if model is not None and model not in model_names:
        raise RequestError(f"unknown model {model!r}; this server serves {list(model_names)}", "model")
    fmt = body.get("encoding_format", "float")
    if fmt is None:
        fmt = "float"
    if fmt not in ENCODING_FORMATS:
        raise RequestError(f"unknown encoding_format {fmt!r}; valid choices: {list(ENCODING_FORMATS)}",
                           "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= dim):
        raise RequestError(f"'dimensions' must be an int in [1, {dim}], got {dims!r}", "dimensions")
    return EmbeddingRequest(texts=texts, encoding_format=fmt, dimensions=dims)


def encode_vector(v: np.ndarray, encoding_format: str) -> list[float] | str:
    """``float``: a JSON list; ``base64``: little-endian float32 bytes, as OpenAI sends them."""
    if encoding_format == "base64":
        return base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode("ascii")
    return v.astype(np.float32).tolist()


def decode_base64(s: str) -> np.ndarray:
    """Inverse of ``encode_vector(v, "base64")`` (what OpenAI clients do with ``numpy.frombuffer``)."""
    return np.frombuffer(base64.b64decode(s), dtype="<f4")


class Metrics:
    """Per-replica counters rendered as Prometheus text; updated from the event loop thread only."""

    def __init__(self, replica: str) -> None:
        self.replica = replica
        self.requests = {"200": 0, "400": 0, "500": 0}
        self.inputs = self.tokens = self.batches = 0
        self.batch_size_sum = 0
        self.batch_size_buckets = [0] * len(BATCH_SIZE_BUCKETS)
        self.latency_sum = 0.0

    def observe_batch(self, n: int) -> None:
        self.batches += 1
        self.batch_size_sum += n
        for k, b in enumerate(BATCH_SIZE_BUCKETS):
            if n <= b:
                self.batch_size_buckets[k] += 1

    def render(self) -> str:
        lab = f'replica="{self.replica}"'
        lines = ["# HELP embedrt_requests_total /v1/embeddings requests by HTTP status.",
                 "# TYPE embedrt_requests_total counter"]
        lines += [f'embedrt_requests_total{{{lab},status="{s}"}} {n}' for s, n in self.requests.items()]
        for name, value, help_ in (("embedrt_inputs_total", self.inputs, "Texts embedded."),
                                   ("embedrt_prompt_tokens_total", self.tokens, "Tokens embedded (after truncation)."),
                                   ("embedrt_request_seconds_total", self.latency_sum,
                                    "Time spent in successful /v1/embeddings requests.")):
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} counter", f"{name}{{{lab}}} {value}"]
        lines += ["# HELP embedrt_batch_size Texts per graph run (Serve dynamic batches).",
                  "# TYPE embedrt_batch_size histogram"]
        lines += [f'embedrt_batch_size_bucket{{{lab},le="{b}"}} {c}'
                  for b, c in zip(BATCH_SIZE_BUCKETS, self.batch_size_buckets, strict=True)]
        lines += [f'embedrt_batch_size_bucket{{{lab},le="+Inf"}} {self.batches}',
                  f"embedrt_batch_size_sum{{{lab}}} {self.batch_size_sum}",
                  f"embedrt_batch_size_count{{{lab}}} {self.batches}"]
        return "\n".join(lines) + "\n"


def require_serve() -> Any:
    """Import and return ``ray.serve``; raises MissingDependencyError with the install hint."""
    require_ray()
    require("fastapi", "Ray Serve (fastapi)")
    return require("ray.serve", "Ray Serve")


def build_app(cfg: ServeConfig) -> Any:
    """Build the Serve application (a bound deployment) for ``serve.run``.

    Raises:
        InputError: an out-of-range setting.
        MissingDependencyError: Ray Serve is not installed.
    """
    cfg.check()
    require_serve()
    from ._serve_app import make_deployment

    return make_deployment(cfg).bind(asdict(cfg))


def model_name_of(export_dir: str | os.PathLike, manifest: dict | None = None) -> str:
    """The name clients send as ``model``: the source model's last path part (``all-MiniLM-L6-v2``)."""
    return source_model_of(export_dir, manifest).rstrip("/").split("/")[-1]


def source_model_of(export_dir: str | os.PathLike, manifest: dict | None = None) -> str:
    """The model the export was made from, as given to ``export-model``."""
    from ..manifest import read_manifest

    m = manifest if manifest is not None else read_manifest(Path(export_dir))
    return str(m["source"].get("model") or Path(export_dir).name)


def run_cli(args: Any) -> int:
    """``embedrt serve``: deploy, print the address, serve until SIGINT/SIGTERM, then shut Serve and Ray down."""
    export_dir = str(Path(args.export_dir).absolute())
    # NOTE: typed errors here, before any Ray work; the graph itself is loaded and checked by each replica
    # (loading it on the driver too would only double the start-up)
    manifest = check_export(export_dir, args.variant)
    source = source_model_of(export_dir, manifest)
    cfg = ServeConfig(
        export_dir=export_dir, model_name=args.model_name or model_name_of(export_dir, manifest),
        replicas=args.replicas,
        max_batch_size=args.max_batch_size, batch_wait_timeout_s=args.batch_wait_timeout_ms / 1000.0,
        max_ongoing_requests=args.max_ongoing_requests, max_queued_requests=args.max_queued_requests,
        max_inputs=args.max_inputs, max_text_chars=args.max_text_chars, device=args.device, variant=args.variant,
        threads=args.threads, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
        encode_batch_size=args.encode_batch_size,
        model_aliases=() if args.model_name else (source,))
    app = build_app(cfg)
    ray = require_ray()
    serve = require_serve()

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    ray.init(address=args.ray_address, include_dashboard=False if args.ray_address is None else None,
             log_to_driver=not args.quiet)
    # NOTE: after ray.init, which installs its own SIGTERM handler: ours shuts Serve and Ray down in order, so
    # no Ray process outlives the command.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(app, name="embedrt", route_prefix="/")
        print(f"serving {cfg.model_name} ({cfg.replicas} replica(s)) on http://{args.host}:{args.port}"
              "  POST /v1/embeddings  GET /health  GET /metrics", flush=True)
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
    p = sub.add_parser("serve", help="serve an export on Ray Serve: OpenAI-compatible POST /v1/embeddings")
    p.add_argument("export_dir", help="directory written by export-model (on a cluster: the same path on every node)")
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (default 127.0.0.1; 0.0.0.0 to expose)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    d = ServeConfig(export_dir="", model_name="")  # NOTE: the defaults below are the config's own
    p.add_argument("--replicas", type=int, default=d.replicas, help=f"Encoder replicas (default {d.replicas})")
    p.add_argument("--max-batch-size", type=int, default=d.max_batch_size,
                   help=f"texts per dynamic batch (default {d.max_batch_size})")
    p.add_argument("--batch-wait-timeout-ms", type=float, default=d.batch_wait_timeout_s * 1000.0,
                   help=f"how long a batch waits to fill (default {d.batch_wait_timeout_s * 1000:g} ms)")
    p.add_argument("--max-inputs", type=int, default=Limits.max_inputs,
                   help=f"texts per request, else 400 (default {Limits.max_inputs})")
    p.add_argument("--max-text-chars", type=int, default=Limits.max_text_chars,
                   help=f"characters per text, else 400 (default {Limits.max_text_chars})")
    p.add_argument("--max-ongoing-requests", type=int, default=d.max_ongoing_requests,
                   help=f"requests in flight per replica (default {d.max_ongoing_requests})")
    p.add_argument("--max-queued-requests", type=int, default=d.max_queued_requests,
                   help=f"requests waiting at the proxy beyond that; more get 503 at once "
                        f"(default {d.max_queued_requests}; -1: no limit)")
    p.add_argument("--model-name", default=None,
                   help="name reported and accepted as 'model' (default: the source model, e.g. all-MiniLM-L6-v2)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (auto, ray://host:10001, ...); "
                                                       "default: start a local Ray")
    p.add_argument("--num-cpus", type=float, default=d.num_cpus, help=f"CPUs per replica (default {d.num_cpus:g})")
    p.add_argument("--num-gpus", type=float, default=d.num_gpus,
                   help=f"GPUs per replica (default {d.num_gpus:g}; use with --device cuda)")
    p.add_argument("--device", default=d.device, help=f"auto, cpu, cuda or tensorrt (default: {d.device})")
    p.add_argument("--variant", default=d.variant, help=f"graph variant from the manifest (default: {d.variant})")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads per replica (default: --num-cpus)")
    p.add_argument("--encode-batch-size", type=int, default=d.encode_batch_size,
                   help=f"rows per graph run within a batch (default {d.encode_batch_size})")
    p.add_argument("-q", "--quiet", action="store_true", help="do not forward the replicas' logs")
    p.set_defaults(func=run_cli)
