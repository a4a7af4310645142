"""The Ray Serve deployment behind ``embedrt serve``; imported only by ``serve.build_app`` (needs embedrt[ray]).

# NOTE: no ``from __future__ import annotations`` here: FastAPI resolves handler annotations (``Request``) at
# route registration through this module's globals, and string annotations of names imported inside a function
# would not resolve (the request would be taken for a query parameter and answered with 422).
"""

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from ray import serve

from . import RAY_ENV, default_threads
from .serve import Limits, Metrics, RequestError, ServeConfig, encode_vector, parse_request


def make_deployment(cfg: ServeConfig) -> Any:
    """The ``@serve.deployment`` class for ``cfg`` (call ``.bind(asdict(cfg))`` on it: the replicas get their
    settings as plain data)."""
    app = FastAPI(title="embedrt", description="OpenAI-compatible embeddings")
    actor_options: dict[str, Any] = {"num_cpus": cfg.num_cpus, "runtime_env": RAY_ENV}
    if cfg.num_gpus:
        actor_options["num_gpus"] = cfg.num_gpus


    @serve.deployment(name="embedrt", num_replicas=cfg.replicas, max_ongoing_requests=cfg.max_ongoing_requests,
                      max_queued_requests=cfg.max_queued_requests, ray_actor_options=actor_options)
    @serve.ingress(app)
    class EmbeddingServer:
        def __init__(self, cfg_dict: dict) -> None:
            from ..runtime import Encoder

            c = ServeConfig(**cfg_dict)
            self.encoder = Encoder(c.export_dir, device=c.device, variant=c.variant,
                                   intra_op_threads=default_threads(c.threads, c.num_cpus, c.num_gpus))
            self.cfg = c
            self.limits = Limits(c.max_inputs, c.max_text_chars)
            self.dim = self.encoder.get_sentence_embedding_dimension()
            self.model_names = tuple(dict.fromkeys([c.model_name, *c.model_aliases, Path(c.export_dir).name]))
            # NOTE: one worker thread: graph runs never overlap (onnxruntime already uses every intra-op thread),
            # and the event loop stays free to queue the next batch while this one runs.
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedrt-encode")
            try:
                replica = serve.get_replica_context().replica_tag
            except Exception:  # noqa: BLE001 - outside Serve (tests) there is no context
                replica = f"pid{os.getpid()}"
            self.metrics = Metrics(str(replica))

        @serve.batch(max_batch_size=cfg.max_batch_size, batch_wait_timeout_s=cfg.batch_wait_timeout_s)
        async def _embed_batch(self, texts: list[str]) -> list[tuple[np.ndarray, int, int]]:
            loop = asyncio.get_running_loop()
            # NOTE: one tokenization gives both the vectors and usage's token counts
            emb, lens = await loop.run_in_executor(self.pool, self.encoder._encode_counted, texts,
                                                   self.cfg.encode_batch_size)
            n = len(texts)
            self.metrics.observe_batch(n)
            return [(emb[i], lens[i], n) for i in range(n)]

        @app.post("/v1/embeddings")
        async def embeddings(self, request: Request) -> Any:
            t0 = time.perf_counter()
            try:
                body = await request.json()
            except Exception:  # noqa: BLE001 - any undecodable body is the client's error
                self.metrics.requests["400"] += 1
                return JSONResponse(status_code=400, content=RequestError("the body is not valid JSON").body())
            try:
                req = parse_request(body, self.limits, self.dim, self.model_names)
            except RequestError as e:
                self.metrics.requests["400"] += 1
                return JSONResponse(status_code=400, content=e.body())
            try:
                # NOTE: one batch call per text, so texts (not requests) fill --max-batch-size, and a long
                # request is spread over several batches instead of one oversized graph run.
                results = await asyncio.gather(*[self._embed_batch(t) for t in req.texts])
            except Exception as e:  # noqa: BLE001 - report as a JSON 500 rather than Serve's plain text
                self.metrics.requests["500"] += 1
                return JSONResponse(status_code=500, content={"error": {
                    "message": f"{type(e).__name__}: {e}", "type": "server_error", "param": None, "code": None}})
            tokens = sum(int(r[1]) for r in results)
            # NOTE: `dimensions` cuts exactly as Encoder.encode(truncate_dim=N) does
            vectors = self.encoder._truncate(np.stack([r[0] for r in results]), req.dimensions)
            data = [{"object": "embedding", "index": i, "embedding": encode_vector(vec, req.encoding_format)}
                    for i, vec in enumerate(vectors)]
            self.metrics.requests["200"] += 1
            self.metrics.inputs += len(req.texts)
            self.metrics.tokens += tokens
            self.metrics.latency_sum += time.perf_counter() - t0
            return JSONResponse(
                content={"object": "list", "data": data, "model": self.cfg.model_name,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
                headers={"x-embedrt-batch-size": str(max(r[2] for r in results)),
                         "x-embedrt-replica": self.metrics.replica})

        @app.get("/health")
        async def health(self) -> dict:
            return {"status": "ok", "model": self.cfg.model_name, "dim": self.dim,
                    "max_seq_length": self.encoder.max_seq_length, "variant": self.cfg.variant,
                    "providers": self.encoder.active_providers, "replica": self.metrics.replica}

        @app.get("/metrics")
        async def metrics(self) -> Any:
            return PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")

    return EmbeddingServer
