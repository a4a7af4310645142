"""The ASGI app behind ``embedrt serve``, for both modes: the lean server runs it on uvicorn, Ray Serve runs
it in each replica (``_serve_app``). Needs ``embedrt[serve]`` (starlette, uvicorn) or Ray Serve, which brings
both.

Routes, validation, limits, batching and metrics are written once, here and in ``serve`` / ``_batcher``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..errors import EmbedrtError, InputError
from ..manifest import CROSS_ENCODER, EMBEDDING, SPARSE, read_manifest
from ..runtime.util import available_cores
from ._batcher import Batcher, Metrics, Overloaded, split_evenly
from .serve import (
    SERVED_TASKS,
    RequestError,
    ServeConfig,
    check_port,
    check_task,
    encode_vector,
    parse_embed,
    parse_embed_sparse,
    parse_request,
    parse_rerank,
    parse_tei_rerank,
)

try:  # NOTE: in embedrt[serve]; a server without it (Ray Serve's image, say) writes JSON with json, which
    # render_json(fast=False) runs in the tests
    import orjson
except ImportError:  # pragma: no cover - depends on the install
    orjson = None

log = logging.getLogger("embedrt.serve")

EMBEDDING_ROUTES = (("POST", "/v1/embeddings"), ("POST", "/embed"))
RERANK_ROUTES = (("POST", "/v1/rerank"), ("POST", "/rerank"))
SPARSE_ROUTES = (("POST", "/embed_sparse"),)
#: the routes of each task's export, and what those routes serve (in the 404 of a server of another task)
TASK_ROUTES = {EMBEDDING: EMBEDDING_ROUTES, CROSS_ENCODER: RERANK_ROUTES, SPARSE: SPARSE_ROUTES}
ROUTE_KIND = {EMBEDDING: "embedding", CROSS_ENCODER: "cross-encoder (reranker)", SPARSE: "sparse (SPLADE)"}
COMMON_ROUTES = (("GET", "/v1/models"), ("GET", "/health"), ("GET", "/metrics"))
#: requests whose texts add up to more characters are tokenized off the event loop
INLINE_TOKENIZE_CHARS = 4096


def _plain(o: Any) -> Any:
    """json's fallback for what orjson writes natively: numpy arrays and scalars."""
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _contiguous(o: Any) -> Any:
    """orjson's fallback: it writes C-contiguous arrays only (a strided view is copied first)."""
    if isinstance(o, np.ndarray) and not o.flags.c_contiguous:
        return np.ascontiguousarray(o)
    return _plain(o)


def render_json(content: Any, fast: bool = True) -> bytes:
    """The bytes of a response body. numpy float32 arrays become lists of float32's shortest decimals (what
    ``numpy.float32(x)`` reads back bit for bit), written by orjson when it is installed (about 30x json's
    speed on a 384-float vector, and half the bytes); otherwise by json (float64 decimals of the same float32
    values). ``fast=False`` forces json (tests)."""
    if fast and orjson is not None:
        return orjson.dumps(content, default=_contiguous, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_plain
    ).encode("utf-8")


class VectorJSONResponse(JSONResponse):
    """A JSON response whose content may hold numpy arrays (``render_json``)."""

    def render(self, content: Any) -> bytes:
        return render_json(content)


def per_job(values: Any, parts: list[Any]) -> list[Any]:
    """``values`` of the concatenated ``parts`` (one batch's jobs), cut back into one slice per job."""
    out, o = [], 0
    for p in parts:
        out.append(values[o : o + len(p)])
        o += len(p)
    return out


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


class Service:
    """One loaded model, its batcher and metrics, and the request handlers: ``dispatch(request) -> Response``.

    Args:
        cfg: the server's settings.
        replica: the ``replica`` label of the metrics.
        threads: onnxruntime intra-op threads (None: onnxruntime's choice).

    Raises:
        UnsupportedModelError: an export of a task the server does not serve (multi-vector).
        ArtifactError, InputError, ProviderUnavailableError: as ``Encoder`` / ``CrossEncoder`` /
            ``SparseEncoder``.
    """

    def __init__(self, cfg: ServeConfig, replica: str, threads: int | None = None) -> None:
        from ..runtime import CrossEncoder, Encoder, SparseEncoder

        self.cfg = cfg
        self.limits = cfg.limits
        manifest = read_manifest(cfg.export_dir)
        self.task = manifest.task
        check_task(self.task)
        self.model_names = tuple(dict.fromkeys([cfg.model_name, *cfg.model_aliases]))
        self.metrics = Metrics(replica, cfg.model_name)
        self.draining = False
        self.ongoing = 0
        self.encoder: Any = None
        self.cross: Any = None
        self.sparse: Any = None
        self.dim: int | None = None
        if self.task in (CROSS_ENCODER, SPARSE):
            model = {CROSS_ENCODER: CrossEncoder, SPARSE: SparseEncoder}[self.task](
                cfg.export_dir,
                device=cfg.device,
                variant=cfg.variant,
                intra_op_threads=threads,
                max_batch_tokens=cfg.max_batch_tokens,
            )
            if self.task == SPARSE:
                self.sparse = model
                self.dim = model.get_sentence_embedding_dimension()
                run: Callable = self._run_sparse
            else:
                self.cross = model
                run = self._run_rerank
        else:
            self.encoder = Encoder(
                cfg.export_dir, device=cfg.device, variant=cfg.variant, intra_op_threads=threads
            )
            self.dim = self.encoder.get_sentence_embedding_dimension()
            run = self._run_embeddings
        routes = TASK_ROUTES[self.task]
        handlers: dict[str, Callable[[Request], Awaitable[Response]]] = {
            "/v1/embeddings": self.embeddings,
            "/embed": self.embed,
            "/v1/rerank": self.rerank,
            "/rerank": self.tei_rerank,
            "/embed_sparse": self.embed_sparse,
            "/v1/models": self.models,
            "/health": self.health,
            "/metrics": self.render_metrics,
        }
        self.routes = {(m, p): handlers[p] for m, p in (*routes, *COMMON_ROUTES)}
        self.batcher = Batcher(
            run,
            max_batch_size=cfg.max_batch_size,
            max_batch_tokens=cfg.max_batch_tokens,
            wait_s=cfg.batch_wait_timeout_s,
            max_queued_texts=cfg.max_queued_texts,
            metrics=self.metrics,
            # NOTE: as many batches at once as the encoder runs graph runs at once (int8 on the CPU: one per
            # core), so that no run thread waits for the slowest run of the last batch (docs/serving.md)
            workers=getattr(self.encoder, "parallel_runs", 1),
        )
        # NOTE: large requests are tokenized here, off the event loop (tokenizers releases the GIL), so one
        # 2048-text request does not stall every other client's parsing.
        self._tokenize_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedrt-tokenize")

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.batcher.start()

    def begin_drain(self) -> None:
        """From now on, new requests get 503; the admitted ones finish."""
        self.draining = True

    def stop(self) -> None:
        self.draining = True
        self.batcher.close()
        self._tokenize_pool.shutdown(wait=True)

    @property
    def route_list(self) -> str:
        return ", ".join(f"{m} {p}" for m, p in self.routes)

    # ------------------------------------------------------------------ dispatch
    async def dispatch(self, request: Request) -> Response:
        method, path = request.method, request.url.path
        handler = self.routes.get((method, path))
        if handler is None:
            return self._no_route(method, path)
        if method == "GET":
            return await handler(request)
        route = path
        if self.draining:
            self.metrics.count_request(route, 503)
            return _error(
                503,
                "the server is shutting down",
                "overloaded_error",
                "shutting_down",
                headers={"connection": "close"},
            )
        if self.ongoing >= self.cfg.max_ongoing_requests:
            self.metrics.count_request(route, 503)
            return _error(
                503,
                f"too many requests in flight (at most {self.cfg.max_ongoing_requests}); retry later",
                "overloaded_error",
                "overloaded",
                headers={"retry-after": "1"},
            )
        self.ongoing += 1
        self.metrics.ongoing = self.ongoing
        t0 = time.perf_counter()
        try:
            response = await handler(request)
        except RequestError as e:
            headers = {"connection": "close"} if e.status == 413 else None
            response = JSONResponse(e.body(), status_code=e.status, headers=headers)
        except Overloaded as e:
            response = _error(503, str(e), "overloaded_error", "overloaded", headers={"retry-after": "1"})
        except InputError as e:  # NOTE: the runtime's own checks, after ours: still the client's input
            response = _error(400, str(e), "invalid_request_error")
        except ClientDisconnect:
            response = _error(
                400, "the client disconnected before the body was read", "invalid_request_error"
            )
        except Exception as e:  # noqa: BLE001 - a JSON 500 that names the error, and the traceback in the log
            log.exception("%s %s failed", method, path)
            response = _error(500, f"{type(e).__name__}: {e}", "server_error")
        finally:
            self.ongoing -= 1
            self.metrics.ongoing = self.ongoing
        if response.status_code == 200:
            self.metrics.request_seconds.observe(time.perf_counter() - t0)
        self.metrics.count_request(route, response.status_code)
        return response

    def _no_route(self, method: str, path: str) -> Response:
        paths = {p for _, p in self.routes}
        if path in paths:
            allowed = ", ".join(m for m, p in self.routes if p == path)
            return _error(
                405,
                f"{method} {path} is not allowed; use {allowed}",
                "invalid_request_error",
                "method_not_allowed",
                headers={"allow": allowed},
            )
        other = next((t for t, routes in TASK_ROUTES.items() if (method, path) in routes), None)
        if other is not None:
            why = (
                f"{path} serves {ROUTE_KIND[other]} exports; this server serves {SERVED_TASKS[self.task]} "
                f"{self.cfg.model_name!r}"
            )
        else:
            why = f"no route {method} {path}"
        return _error(
            404, f"{why}. Routes here: {self.route_list}", "invalid_request_error", "route_not_found"
        )

    async def _json(self, request: Request) -> Any:
        """The body as JSON, refused with 413 before it is read whole when it is larger than the limit."""
        limit = self.limits.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                raise RequestError(f"Content-Length {length!r} is not a number") from None
            if n > limit:
                raise RequestError(
                    f"the body has {n} bytes; at most {limit}", status=413, code="body_too_large"
                )
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:  # NOTE: chunked bodies have no Content-Length: count while they stream
                raise RequestError(f"the body has more than {limit} bytes", status=413, code="body_too_large")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError(f"the body is not valid JSON: {e}") from None
        except RecursionError:  # NOTE: json's decoder recurses once per nested array or object
            raise RequestError(
                "the body is not valid JSON here: its arrays or objects nest too deeply"
            ) from None

    async def _tokenize(self, tokenize: Callable[[list[str]], Any], texts: list[str]) -> Any:
        """``tokenize(texts)``: here for a small request, in the tokenizer thread for a large one; timed."""
        t0 = time.perf_counter()
        if sum(len(t) for t in texts) <= INLINE_TOKENIZE_CHARS:
            out = tokenize(texts)
        else:
            out = await asyncio.get_running_loop().run_in_executor(self._tokenize_pool, tokenize, texts)
        self.metrics.tokenize_seconds.observe(time.perf_counter() - t0)
        return out

    async def _refuse_long(
        self, count: Callable[[list[str]], Any], texts: list[str], limit: int, name: str
    ) -> None:
        """TEI's ``truncate: false``: a 413 naming the first input longer than the model's window, before any
        of the request runs. ``count``: the tokens each input would be fed with, before truncation."""
        counts = np.asarray(await self._tokenize(count, texts))
        over = np.flatnonzero(counts > limit)
        if over.size:
            i = int(over[0])
            raise RequestError(
                f"{name}[{i}] has {int(counts[i])} tokens, more than the model's window of {limit} "
                f'(max_seq_length); {over.size} input(s) too long. Send "truncate": true to cut them',
                name,
                status=413,
                code="input_too_long",
            )

    # ------------------------------------------------------------------ embeddings
    async def _embed_texts(self, texts: list[str]) -> tuple[np.ndarray, int, int]:
        """Vectors of ``texts`` (``(N, D)``, not truncated), their tokens, the largest batch they rode in."""
        tokens = await self._tokenize(self.encoder.tokenize, texts)
        lengths = tokens.lengths
        jobs = []
        for start, stop in self._slices(lengths):
            part = type(tokens)(tokens.ids[start:stop], tokens.prompt_length)
            jobs.append((part, stop - start, int(lengths[start:stop].sum())))
        parts, batch = await self.batcher.submit(tokens.prompt_length, jobs)
        emb = parts[0] if len(parts) == 1 else np.concatenate(parts)
        n_tokens = int(lengths.sum())
        self.metrics.count_work(len(texts), n_tokens)
        return emb, n_tokens, batch

    def _slices(self, lengths: np.ndarray) -> list[tuple[int, int]]:
        """Consecutive slices of a request within max_batch_size texts and max_batch_tokens tokens each."""
        out, start, tokens = [], 0, 0
        for i, n in enumerate(lengths.tolist()):
            if i > start and (i - start >= self.cfg.max_batch_size or tokens + n > self.cfg.max_batch_tokens):
                out.append((start, i))
                start, tokens = i, 0
            tokens += n
        out.append((start, len(lengths)))
        return out

    def _run_embeddings(self, key: Any, parts: list[Any]) -> list[np.ndarray]:
        from ..runtime.encoder import TokenizedTexts

        tokens = TokenizedTexts.concat(parts)
        # NOTE: one dynamic batch mixes the texts of many requests; the runtime splits it into graph runs by
        # length (runtime.batching: least padding plus a fixed cost per run), within max_batch_tokens
        emb = self.encoder.encode_tokenized(
            tokens, batch_size=len(tokens), max_batch_tokens=self.cfg.max_batch_tokens
        )
        return per_job(emb, parts)

    async def embeddings(self, request: Request) -> Response:
        """OpenAI ``POST /v1/embeddings``."""
        req = parse_request(
            await self._json(request), self.limits, self.dim, self.model_names, self.cfg.accept_any_model
        )
        emb, tokens, batch = await self._embed_texts(req.texts)
        # NOTE: `dimensions` cuts exactly as Encoder.encode(truncate_dim=N) does
        vectors = self.encoder.truncate_embeddings(emb, req.dimensions)
        data = [
            {"object": "embedding", "index": i, "embedding": encode_vector(v, req.encoding_format)}
            for i, v in enumerate(vectors)
        ]
        return VectorJSONResponse(
            {
                "object": "list",
                "data": data,
                "model": self.cfg.model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            headers={"x-embedrt-batch-size": str(batch)},
        )

    async def embed(self, request: Request) -> Response:
        """TEI ``POST /embed``: a JSON list of vectors."""
        req = parse_embed(await self._json(request), self.limits, self.dim)
        if not req.truncate:
            await self._refuse_long(
                self.encoder.count_tokens, req.texts, self.encoder.max_seq_length, "inputs"
            )
        emb, _, batch = await self._embed_texts(req.texts)
        vectors = self.encoder.truncate_embeddings(emb, req.dimensions, normalize_embeddings=req.normalize)
        return VectorJSONResponse(
            np.ascontiguousarray(vectors, dtype=np.float32), headers={"x-embedrt-batch-size": str(batch)}
        )

    # ------------------------------------------------------------------ sparse
    def _run_sparse(self, key: Any, parts: list[Any]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        rows = [r for part in parts for r in part]
        # NOTE: the runtime splits the batch into graph runs by length (runtime.batching), within the
        # SparseEncoder's max_batch_tokens, which is the server's
        active = self.sparse.encode_rows(rows, len(rows))
        # NOTE: rows are ragged (each has its own active dimensions): each job gets its own slice of the list
        return per_job(active, parts)

    async def embed_sparse(self, request: Request) -> Response:
        """TEI ``POST /embed_sparse``: per input, its active dimensions ``[{"index", "value"}]`` by index."""
        req = parse_embed_sparse(await self._json(request), self.limits, self.sparse.prompts)
        # NOTE: TEI has no query/document notion here; /embed_sparse is what indexes a corpus, so the texts
        # get the prompt SparseEncoder.encode_document gives them (prompt_name "query" for queries).
        prompt = self.sparse.prompt_text(req.prompt_name, side="document")
        texts = [prompt + t for t in req.texts] if prompt else req.texts
        if not req.truncate:
            await self._refuse_long(
                lambda t: self.sparse.count_tokens(t, prompt=""), texts, self.sparse.max_seq_length, "inputs"
            )
        rows = await self._tokenize(self.sparse.tokenizer.encode_ids, texts)
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        jobs = [(rows[a:b], b - a, int(lengths[a:b].sum())) for a, b in self._slices(lengths)]
        parts, batch = await self.batcher.submit(SPARSE, jobs)
        self.metrics.count_work(len(texts), int(lengths.sum()))
        body = [
            [{"index": i, "value": v} for i, v in zip(c.tolist(), vals.tolist(), strict=True)]
            for part in parts
            for c, vals in part
        ]
        return VectorJSONResponse(body, headers={"x-embedrt-batch-size": str(batch)})

    # ------------------------------------------------------------------ rerank
    async def _scores(self, query: str, documents: list[str], raw: bool) -> tuple[list[float], int]:
        pairs = [(query, d) for d in documents]
        jobs = [(pairs[a:b], b - a, 0) for a, b in split_evenly(len(pairs), self.cfg.max_batch_size)]
        parts, batch = await self.batcher.submit(raw, jobs)
        self.metrics.count_work(len(documents), 0)
        return np.concatenate(parts).tolist(), batch

    def _run_rerank(self, raw: Any, parts: list[Any]) -> list[np.ndarray]:
        pairs = [p for part in parts for p in part]
        # NOTE: raw scores are the logits, as CrossEncoder.rank(activation_fn="identity") gives them
        scores = self.cross.predict(
            pairs, batch_size=self.cfg.max_batch_size, activation_fn="identity" if raw else None
        )
        return per_job(scores, parts)

    def _ranked(self, scores: list[float], top_n: int | None) -> list[tuple[int, float]]:
        order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)  # NOTE: stable, as rank()
        return [(i, scores[i]) for i in order[:top_n]]

    async def rerank(self, request: Request) -> Response:
        """Cohere/Jina ``POST /v1/rerank``."""
        req = parse_rerank(
            await self._json(request), self.limits, self.model_names, self.cfg.accept_any_model
        )
        scores, batch = await self._scores(req.query, req.documents, raw=False)
        results = []
        for i, s in self._ranked(scores, req.top_n):
            r: dict[str, Any] = {"index": i, "relevance_score": s}
            if req.return_documents:
                r["document"] = {"text": req.documents[i]}
            results.append(r)
        return VectorJSONResponse(
            {
                "object": "list",
                "model": self.cfg.model_name,
                "results": results,
                "usage": {"documents": len(req.documents)},
            },
            headers={"x-embedrt-batch-size": str(batch)},
        )

    async def tei_rerank(self, request: Request) -> Response:
        """TEI ``POST /rerank``: ``[{"index", "score"[, "text"]}]``, best first."""
        req = parse_tei_rerank(await self._json(request), self.limits)
        if not req.truncate:
            await self._refuse_long(
                lambda docs: self.cross.count_tokens([(req.query, d) for d in docs]),
                req.documents,
                self.cross.max_seq_length,
                "texts",
            )
        scores, batch = await self._scores(req.query, req.documents, raw=req.raw_scores)
        out = []
        for i, s in self._ranked(scores, None):
            r: dict[str, Any] = {"index": i, "score": s}
            if req.return_documents:
                r["text"] = req.documents[i]
            out.append(r)
        return VectorJSONResponse(out, headers={"x-embedrt-batch-size": str(batch)})

    # ------------------------------------------------------------------ info
    async def models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": self.cfg.model_name, "object": "model", "owned_by": "embedrt"}],
            }
        )

    async def health(self, request: Request) -> Response:
        model = self.encoder or self.cross or self.sparse
        body: dict[str, Any] = {
            "status": "draining" if self.draining else "ok",
            "model": self.cfg.model_name,
            "task": self.task,
            "max_seq_length": model.max_seq_length,
            "variant": self.cfg.variant,
            "providers": model.active_providers,
            "replica": self.metrics.replica,
            "routes": [f"{m} {p}" for m, p in self.routes],
        }
        if self.dim is not None:
            body["dim"] = self.dim
        return JSONResponse(body, status_code=503 if self.draining else 200)

    async def render_metrics(self, request: Request) -> Response:
        return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")


class App:
    """The ASGI application: lifespan starts and stops the service; requests go to ``dispatch``."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            response = await self.service.dispatch(Request(scope, receive))
            await response(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.service.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    # NOTE: off the loop: closing joins the encode threads, which still hand results to it
                    await asyncio.get_running_loop().run_in_executor(None, self.service.stop)
                    await send({"type": "lifespan.shutdown.complete"})
                    return


def lean_threads() -> int:
    """onnxruntime threads of the lean server by default: every core this process may use.

    NOTE: measured with benchmarks/bench_serve.py on 2 cores (fp32 MiniLM, one text per request): two threads
    against one (a core kept for the event loop) gave 145 against 105 req/s at 1 client, 177 against 134 at
    8, 215 against 141 at 32. The event loop's HTTP, JSON and tokenization are short next to a graph run, and
    onnxruntime's pool stops spinning between runs, so a core kept idle for them costs more than it saves."""
    return available_cores()


def _bind(host: str, port: int) -> socket.socket:
    check_port(port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise EmbedrtError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.set_inheritable(True)
    return sock


def run_lean(cfg: ServeConfig, host: str, port: int, quiet: bool = False) -> int:
    """Serve ``cfg`` in this process on uvicorn until SIGINT/SIGTERM; then finish what was admitted.

    Raises:
        EmbedrtError: the port cannot be bound; as ``Service`` for the model.
    """
    import uvicorn

    sock = _bind(host, port)  # NOTE: before loading the model, so a busy port fails fast
    # NOTE: requests are tokenized one by one (or in a tokenizer thread); a rayon pool per call would only
    # compete with onnxruntime for the cores. Ray's replicas get the same setting (RAY_ENV).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    service = Service(cfg, replica="lean", threads=cfg.threads if cfg.threads is not None else lean_threads())
    bound = sock.getsockname()[1]

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # NOTE: uvicorn re-raises the signal once it has shut down, so the process would die of SIGTERM; a
            # graceful shutdown is a success here: exit 0.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if not service.draining:
                print(
                    "shutting down: finishing the requests in flight, refusing new ones",
                    file=sys.stderr,
                    flush=True,
                )
            service.begin_drain()
            super().handle_exit(sig, frame)

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                kind = {
                    EMBEDDING: f"dim {service.dim}",
                    CROSS_ENCODER: "cross-encoder",
                    SPARSE: f"sparse, vocab {service.dim}",
                }[service.task]
                print(
                    f"serving {cfg.model_name} ({kind}, {cfg.variant}) on http://{host}:{bound}  "
                    f"{service.route_list}",
                    flush=True,
                )

    config = uvicorn.Config(
        App(service),
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=cfg.graceful_timeout_s or None,
        backlog=2048,
    )
    _Server(config).run(sockets=[sock])
    return 0
