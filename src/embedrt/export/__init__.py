"""sentence-transformers model -> one verified ONNX graph. Needs the ``[export]`` extra (torch)."""

from __future__ import annotations

from .pipeline import export_model
from .resolve import resolve_model

__all__ = ["export_model", "resolve_model"]
