"""sentence-transformers' argument names that embedrt's encoders accept beside their own."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def inputs_alias(fn: F) -> F:
    """Let ``fn(self, sentences, ...)`` also be called with ``inputs=``: sentence-transformers 5.7 names the
    texts ``inputs`` (``sentences`` is its deprecated alias), so code written for either name runs as is."""

    @functools.wraps(fn)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if "inputs" in kwargs:
            if args or "sentences" in kwargs:
                raise InputError("give the texts once: as sentences or as inputs, not both")
            kwargs["sentences"] = kwargs.pop("inputs")
        return fn(self, *args, **kwargs)

    return call  # type: ignore[return-value]


def check_no_pool(pool: Any, chunk_size: Any, who: str) -> None:
    """Raises InputError unless both are None: sentence-transformers' multi-process encoding (``pool``,
    ``chunk_size``) has no counterpart, one embedrt model already runs its graph on every core."""
    if pool is not None or chunk_size is not None:
        raise InputError(
            f"pool and chunk_size (sentence-transformers' multi-process encoding) must be None: one {who} "
            "already runs its graph on every core"
        )
