"""embedrt: fast, exact sentence-transformers embeddings from one verified ONNX graph.

Public API. The runtime needs only numpy, onnxruntime and tokenizers; ``export_model`` needs the
``[export]`` extra and imports torch lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ArtifactError,
    EmbedrtError,
    ExportError,
    InputError,
    ModelLoadError,
    ModelNotFoundError,
    NativeOpsError,
    OutputExistsError,
    ProviderUnavailableError,
    QualityGateError,
    UnsupportedModelError,
    VerificationError,
)
from .modes import Activation, Device, Pooling, Precision, Task

__version__ = "0.1.0"

_RUNTIME = {
    "Encoder",
    "CrossEncoder",
    "SparseEncoder",
    "MultiVectorEncoder",
    "TensorRTOptions",
    "community_detection",
    "cos_sim",
    "dot_score",
    "normalize",
    "semantic_search",
    "paraphrase_mining",
    "paraphrase_mining_embeddings",
    "quantize_embeddings",
    "rerank_hits",
}

if TYPE_CHECKING:  # pragma: no cover
    from .export import export_model
    from .runtime import (
        CrossEncoder,
        Encoder,
        MultiVectorEncoder,
        SparseEncoder,
        TensorRTOptions,
        community_detection,
        cos_sim,
        dot_score,
        normalize,
        paraphrase_mining,
        paraphrase_mining_embeddings,
        quantize_embeddings,
        rerank_hits,
        semantic_search,
    )


def __getattr__(name: str) -> Any:
    # NOTE: lazy, so `import embedrt` stays cheap and never pulls torch; onnxruntime loads on first use.
    if name in _RUNTIME:
        from . import runtime

        return getattr(runtime, name)
    if name == "export_model":
        from .export import export_model

        return export_model
    raise AttributeError(f"module 'embedrt' has no attribute {name!r}")


# NOTE: a literal list, so that linters and type checkers see the public names (the runtime ones load lazily).
__all__ = [
    "Activation",
    "ArtifactError",
    "CrossEncoder",
    "Device",
    "EmbedrtError",
    "Encoder",
    "ExportError",
    "InputError",
    "ModelLoadError",
    "ModelNotFoundError",
    "MultiVectorEncoder",
    "NativeOpsError",
    "OutputExistsError",
    "Pooling",
    "Precision",
    "ProviderUnavailableError",
    "QualityGateError",
    "SparseEncoder",
    "Task",
    "TensorRTOptions",
    "UnsupportedModelError",
    "VerificationError",
    "__version__",
    "community_detection",
    "cos_sim",
    "dot_score",
    "export_model",
    "normalize",
    "paraphrase_mining",
    "paraphrase_mining_embeddings",
    "quantize_embeddings",
    "rerank_hits",
    "semantic_search",
]
