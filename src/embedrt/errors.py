"""Typed errors: one base class, one subclass per phase.

Every error that user input can trigger is one of these, so callers can catch
``EmbedrtError`` and never see a bare ``Exception`` or an ``AssertionError``.
"""

from __future__ import annotations


class EmbedrtError(Exception):
    """Base class of every error embedrt raises on purpose."""


class ModelNotFoundError(EmbedrtError):
    """A model id or path could not be resolved; the message lists what was tried."""


class UnsupportedModelError(EmbedrtError):
    """The model holds a module type or architecture that cannot go into one graph, or an export is of a task
    that a command does not serve (``embedrt serve`` and a multi-vector export)."""


class ExportError(EmbedrtError):
    """Tracing, writing or optimising the graph failed."""


class ModelLoadError(ExportError):
    """The model was found but could not be loaded (corrupted weights, bad config)."""


class OutputExistsError(ExportError):
    """The export target exists and ``force`` was not given."""


class VerificationError(ExportError):
    """The exported graph does not match the reference within the tolerance."""


class QualityGateError(VerificationError):
    """A reduced-precision variant drifted further from fp32 than its thresholds allow."""


class ArtifactError(EmbedrtError):
    """An export directory is missing a file, is corrupted, or is from an incompatible version."""


class ProviderUnavailableError(EmbedrtError):
    """An explicitly requested execution provider is not available or not active."""


class InputError(EmbedrtError, ValueError):
    """Bad arguments to encode/search: wrong types, unknown names, out-of-range values."""


class NativeOpsError(EmbedrtError):
    """The native fused-pooling op was requested but its library or fused graph is missing, or disagrees
    with the standard graph."""


class MissingDependencyError(EmbedrtError, ImportError):
    """An optional extra is not installed; the message names the ``pip install embedrt[...]`` that adds it."""


class BatchEmbeddingError(EmbedrtError):
    """Rows of a distributed embedding job failed; the message (and ``ids``) name them."""

    def __init__(self, message: str, ids: list | None = None) -> None:
        super().__init__(message)
        self.ids = list(ids or [])

    def __reduce__(self):  # NOTE: keep the ids when Ray pickles the error from an actor back to the driver
        return type(self), (str(self), self.ids)
