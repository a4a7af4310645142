"""The embedrt runtime: numpy, onnxruntime and tokenizers only (never torch or transformers)."""

from __future__ import annotations

from . import _ort  # noqa: F401 - first: a clear error when no onnxruntime is installed
from .cluster import community_detection
from .cross_encoder import CrossEncoder, rerank_hits
from .encoder import Encoder, TokenizedTexts
from .multivector import MultiVectorEncoder
from .providers import TensorRTOptions
from .sparse import SparseEncoder
from .util import (
    cos_sim,
    dot_score,
    normalize,
    paraphrase_mining,
    paraphrase_mining_embeddings,
    quantize_embeddings,
    semantic_search,
)

__all__ = [
    "CrossEncoder",
    "community_detection",
    "Encoder",
    "MultiVectorEncoder",
    "SparseEncoder",
    "TensorRTOptions",
    "TokenizedTexts",
    "cos_sim",
    "dot_score",
    "normalize",
    "paraphrase_mining",
    "paraphrase_mining_embeddings",
    "quantize_embeddings",
    "rerank_hits",
    "semantic_search",
]
