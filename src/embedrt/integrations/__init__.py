"""Optional integrations with other engines. Each module imports its engine lazily, with an install hint.

- ``embedrt.integrations.ray``: Ray Data batch embedding (``EmbedBatch``, ``embed_dataset``).
- ``embedrt.integrations.serve``: Ray Serve deployment with an OpenAI-compatible ``/v1/embeddings``.
"""

from __future__ import annotations

from typing import Any

from ..errors import MissingDependencyError

RAY_HINT = "pip install 'embedrt[ray]'"
#: Ray workers each run one Encoder with its own onnxruntime threads: no tokenizers thread pool on top.
RAY_ENV = {"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}


def require(module: str, what: str) -> Any:
    """Import and return ``module`` (``ray``, ``ray.data``, ``ray.serve``, ``pyarrow``, ...).

    Raises:
        MissingDependencyError: it is not installed; the message names ``what`` and says how to add it.
    """
    import sys

    try:
        __import__(module)  # NOTE: the import statement's own hook (importlib.import_module bypasses it)
    except ImportError as e:
        raise MissingDependencyError(f"this needs {what}, which is not installed: {RAY_HINT}") from e
    return sys.modules[module]


def require_ray() -> Any:
    """Import and return ``ray``; raises MissingDependencyError with the install hint."""
    return require("ray", "Ray")


def check_export(export_dir: Any, variant: str) -> dict:
    """The manifest of ``export_dir``, checked on the driver before any Ray work: it reads, it has
    ``variant``,
    and that variant's graph file is there (each worker then loads and checks the graph itself).

    Raises:
        ArtifactError: a missing or unreadable manifest, or a missing graph file.
        InputError: ``variant`` is not in the export.
    """
    from pathlib import Path

    from ..errors import ArtifactError, InputError
    from ..manifest import read_manifest

    m = read_manifest(Path(export_dir))
    if variant not in m.variants:
        raise InputError(f"unknown variant {variant!r}; this export has: {sorted(m.variants)}")
    graph = m.file(m.variants[variant].file)
    if not graph.is_file():
        raise ArtifactError(f"graph file for variant {variant!r} is missing: {graph}")
    return m


def default_threads(threads: int | None, num_cpus: float, num_gpus: float) -> int | None:
    """onnxruntime threads per Ray worker: as asked, else one per CPU reserved (the provider's own on a
    GPU)."""
    if threads is not None:
        return threads
    return max(1, int(num_cpus)) if not num_gpus else None
