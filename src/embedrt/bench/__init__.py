"""Side-by-side benchmarks: embedrt against sentence-transformers (PyTorch, ONNX, ONNX int8) and fastembed."""

from __future__ import annotations

from .orchestrate import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench"]
