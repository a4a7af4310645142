"""Optional integrations with other engines. Each module imports its engine lazily, with an install hint.

- ``embedrt.integrations.ray``: Ray Data batch embedding (``EmbedBatch``, ``embed_dataset``).
- ``embedrt.integrations.serve``: Ray Serve deployment with an OpenAI-compatible ``/v1/embeddings``.
"""

from __future__ import annotations

from typing import Any

from ..errors import MissingDependencyError

RAY_HINT = "pip install 'embedrt[ray]'"


def require_ray() -> Any:
    """Import and return ``ray``.

    Raises:
        MissingDependencyError: ray (or its data/serve parts) is not installed; the message says how to add it.
    """
    try:
        import ray
    except ImportError as e:
        raise MissingDependencyError(f"this needs Ray, which is not installed: {RAY_HINT}") from e
    return ray
