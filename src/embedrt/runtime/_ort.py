"""Imported first by ``embedrt.runtime``: a clear error, naming the extras, when no ONNX Runtime is installed.

embedrt depends on neither onnxruntime wheel: ``onnxruntime`` and ``onnxruntime-gpu`` both own the
``onnxruntime/`` package, so installing the two together leaves whichever came last. The ``[cpu]`` or
``[gpu]`` extra picks one.
"""

from __future__ import annotations

import importlib.util

from ..errors import MissingDependencyError

HINT = (
    "pip install 'embedrt[cpu]' (onnxruntime), or 'embedrt[gpu]' (onnxruntime-gpu, for CUDA and "
    "TensorRT): one of the two, not both"
)


def require() -> None:
    """Raises MissingDependencyError when the ``onnxruntime`` package cannot be imported."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise MissingDependencyError(f"embedrt needs an ONNX Runtime and none is installed: {HINT}")


require()
