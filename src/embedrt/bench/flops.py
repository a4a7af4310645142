"""Model FLOPs for a corpus, from the BERT-style shapes recorded in the manifest."""

from __future__ import annotations

from collections.abc import Iterable


def sentence_flops(tokens: int, layers: int, hidden: int, ffn: int) -> float:
    """FLOPs of one sentence of ``tokens`` real tokens: per layer, the QKV/output projections and the FFN
    (2·(4·H² + 2·H·F)·T) plus attention scores and context (4·T²·H). Embeddings, LayerNorm, Softmax and
    pooling are ignored (they are a few percent)."""
    t = tokens
    return layers * (2 * (4 * hidden * hidden + 2 * hidden * ffn) * t + 4 * t * t * hidden)


def corpus_gflop(lengths: Iterable[int], model_config: dict[str, int]) -> float | None:
    try:
        layers = model_config["num_hidden_layers"]
        hidden = model_config["hidden_size"]
        ffn = model_config["intermediate_size"]
    except KeyError:
        return None
    return sum(sentence_flops(t, layers, hidden, ffn) for t in lengths) / 1e9
