"""Enums for every mode embedrt has. Strings from configs and users are converted once, at the edge."""

from __future__ import annotations

from enum import Enum

from .errors import InputError


class _Choice(str, Enum):
    @classmethod
    def parse(cls, value: object, what: str | None = None):
        """Convert a user string (or a member) to a member, or raise InputError listing the choices."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            key = value.strip().lower()
            for member in cls:
                if member.value == key:
                    return member
        choices = ", ".join(repr(m.value) for m in cls)
        raise InputError(f"unknown {what or cls.__name__} {value!r}; valid choices: {choices}")


class Pooling(_Choice):
    """How token embeddings become one sentence vector (sentence-transformers' pooling modes)."""

    CLS = "cls"  #: the first non-masked token ([CLS] for right padding)
    MAX = "max"  #: element-wise max over non-masked tokens
    MEAN = "mean"  #: mean over non-masked tokens
    MEAN_SQRT_LEN = "mean_sqrt_len_tokens"  #: sum over tokens divided by sqrt(token count)
    WEIGHTED_MEAN = "weightedmean"  #: mean weighted by 1-based position
    LAST_TOKEN = "lasttoken"  #: the last non-masked token


class Device(_Choice):
    """Where the graph runs."""

    AUTO = "auto"  #: the best available: TensorRT, then CUDA, then CPU
    CPU = "cpu"  #: onnxruntime's CPUExecutionProvider
    CUDA = "cuda"  #: CUDAExecutionProvider, with IO binding
    TENSORRT = "tensorrt"  #: TensorrtExecutionProvider, with CUDA as fallback for unsupported nodes


class Precision(_Choice):
    """Output precision of ``encode`` (sentence-transformers' ``quantize_embeddings``)."""

    FLOAT32 = "float32"  #: plain float32 vectors
    INT8 = "int8"  #: per-dimension min/max calibrated, mapped to [-128, 127]
    UINT8 = "uint8"  #: per-dimension min/max calibrated, mapped to [0, 255]
    BINARY = "binary"  #: one bit per dimension, packed, offset to int8
    UBINARY = "ubinary"  #: one bit per dimension, packed, uint8


class Task(_Choice):
    """What an export computes; the manifest's ``task`` (absent in older manifests: embedding)."""

    EMBEDDING = "embedding"  #: a SentenceTransformer: texts -> vectors (``embedrt.Encoder``)
    #: a CrossEncoder (reranker): text pairs -> scores (``embedrt.CrossEncoder``)
    CROSS_ENCODER = "cross-encoder"
    SPARSE = "sparse"  #: a SparseEncoder (SPLADE): texts -> sparse vocabulary-sized vectors
    MULTI_VECTOR = "multi-vector"  #: a MultiVectorEncoder (ColBERT): texts -> one vector per token


class Activation(_Choice):
    """The function a cross-encoder applies to its logits (sentence-transformers' ``activation_fn``)."""

    IDENTITY = "identity"  #: raw logits (the default for more than one label)
    SIGMOID = "sigmoid"  #: 1 / (1 + exp(-x)) (the default for one label)
    TANH = "tanh"  #: tanh(x)
    RELU = "relu"  #: max(x, 0)
    SOFTMAX = "softmax"  #: softmax over the labels of each pair


class QuantizeOp(_Choice):
    """How the int8 graph quantizes each Linear's input per token (``export.quantize.Int8Config``)."""

    OPS = "ops"  #: Abs, ReduceMax, Max, Div, Div, Round, Add, Cast in standard opset 17
    BLOCKED = "blocked"  #: one QuantizeLinear with per-token (block = hidden size) scales, opset 21
    #: one ai.embedrt::QuantizePerToken node (the custom-op library), which also computes the row scales,
    #: bit-identical to OPS
    NATIVE = "native"


class DequantizeOp(_Choice):
    """How the int8 graph turns each Linear's int32 accumulator back into float (``Int8Config``)."""

    OPS = "ops"  #: Cast, then Mul by the column scales and by the row scales
    #: com.microsoft MatMulIntegerToFloat (int32 -> float with the column scales in one kernel)
    FUSED = "fused"
    #: one ai.embedrt::DequantizeRows node (with the Linear's bias folded in), bit-identical to OPS
    NATIVE = "native"
