"""The Ray Serve deployment behind ``embedrt serve --ray``; imported only by ``serve.build_app`` (needs
embedrt[ray]).

Each replica runs the lean server's own ASGI app (``_http_app.App``: routes, validation, limits, batching,
metrics), built in the replica when it starts; Serve adds the HTTP proxy, the replicas and the cluster.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from ray import serve

from . import RAY_ENV, default_threads
from .serve import ServeConfig


def _replica_name() -> str:
    try:
        ctx = serve.get_replica_context()
        rid = getattr(ctx, "replica_id", None)
        return str(getattr(rid, "unique_id", None) or getattr(ctx, "replica_tag", None) or rid)
    except Exception:  # noqa: BLE001 - outside Serve (tests) there is no context
        return f"pid{os.getpid()}"


def make_deployment(cfg: ServeConfig) -> Any:
    """The ``@serve.deployment`` class for ``cfg`` (call ``.bind()`` on it); the replicas get the settings as
    plain data."""
    cfg_dict = asdict(cfg)
    actor_options: dict[str, Any] = {"num_cpus": cfg.num_cpus, "runtime_env": RAY_ENV}
    if cfg.num_gpus:
        actor_options["num_gpus"] = cfg.num_gpus

    def build_asgi_app() -> Any:
        # NOTE: called by Serve in each replica at start-up: the model loads there, not on the driver
        from ._http_app import App, Service

        c = ServeConfig(**{**cfg_dict, "model_aliases": tuple(cfg_dict["model_aliases"])})
        return App(
            Service(c, replica=_replica_name(), threads=default_threads(c.threads, c.num_cpus, c.num_gpus))
        )

    @serve.deployment(
        name="embedrt",
        num_replicas=cfg.replicas,
        max_ongoing_requests=cfg.max_ongoing_requests,
        max_queued_requests=cfg.max_queued_requests,
        ray_actor_options=actor_options,
    )
    @serve.ingress(build_asgi_app)
    class EmbedrtReplica:
        pass

    return EmbedrtReplica
