"""The SBERT use cases as numpy utilities: similarity, semantic search, paraphrase mining, quantization.

They mirror ``sentence_transformers.util`` but need no torch.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..modes import Precision

if TYPE_CHECKING:  # pragma: no cover
    from .encoder import Encoder

# NOTE: torch.nn.functional.normalize clamps the norm at eps=1e-12; we do the same so vectors match.
_NORM_EPS = 1e-12


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # NOTE: not on every OS
        return max(1, os.cpu_count() or 1)


def check_positive_int(value: Any, name: str) -> None:
    """Raises InputError unless ``value`` is an int (numpy's included, bool not) above 0."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name} must be a positive int, got {value!r}")


def _as_2d(x: Any, name: str) -> np.ndarray:
    a = _numbers(x, name).astype(np.float32, copy=False)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise InputError(f"{name} must be a vector or a matrix, got shape {a.shape}")
    return a


def _numbers(x: Any, name: str) -> np.ndarray:
    """``x`` as an array of numbers of one or more dimensions (its dtype kept).

    Raises:
        InputError: anything else.
    """
    a = x
    if not isinstance(a, np.ndarray):
        if a is None or isinstance(a, (str, bytes, dict)):
            raise InputError(f"{name} must be a vector or a matrix of numbers, got {type(a).__name__}")
        try:
            a = np.asarray(a)
        except (TypeError, ValueError) as e:
            raise InputError(f"{name} must be a vector or a matrix of numbers: {e}") from None
    if a.dtype.kind not in "fiub" or a.ndim == 0:
        raise InputError(
            f"{name} must be a vector or a matrix of numbers, got dtype {a.dtype}, shape {a.shape}"
        )
    return a


def normalize(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows exactly like ``torch.nn.functional.normalize(x, p=2, dim=-1)``.

    Raises:
        InputError: ``x`` is not an array of numbers.
    """
    x = _numbers(x, "x")
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, _NORM_EPS)


def _pair_2d(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both as matrices of one width.

    Raises:
        InputError: not numbers, more than two dimensions, or widths that differ.
    """
    a2, b2 = _as_2d(a, "a"), _as_2d(b, "b")
    if a2.shape[1] != b2.shape[1]:
        raise InputError(f"the two sides have different dimensions: {a2.shape[1]} and {b2.shape[1]}")
    return a2, b2


def cos_sim(a: Any, b: Any) -> np.ndarray:
    """Cosine similarity matrix ``(len(a), len(b))`` of two vectors or matrices."""
    a2, b2 = _pair_2d(a, b)
    return normalize(a2) @ normalize(b2).T


def dot_score(a: Any, b: Any) -> np.ndarray:
    """Dot-product matrix ``(len(a), len(b))``."""
    a2, b2 = _pair_2d(a, b)
    return a2 @ b2.T


def euclidean_sim(a: Any, b: Any) -> np.ndarray:
    """Negative euclidean distance, as sentence-transformers' ``euclidean_sim``."""
    a2, b2 = _pair_2d(a, b)
    d2 = (a2 * a2).sum(1)[:, None] + (b2 * b2).sum(1)[None, :] - 2 * a2 @ b2.T
    return -np.sqrt(np.maximum(d2, 0))


def manhattan_sim(a: Any, b: Any) -> np.ndarray:
    """Negative manhattan distance, as sentence-transformers' ``manhattan_sim``."""
    a2, b2 = _pair_2d(a, b)
    return -np.abs(a2[:, None, :] - b2[None, :, :]).sum(-1)


SIMILARITY_FUNCTIONS: dict[str, Callable[[Any, Any], np.ndarray]] = {
    "cosine": cos_sim,
    "dot": dot_score,
    "euclidean": euclidean_sim,
    "manhattan": manhattan_sim,
}


def semantic_search(
    query_embeddings: Any,
    corpus_embeddings: Any,
    top_k: int = 10,
    query_chunk_size: int = 100,
    corpus_chunk_size: int = 50_000,
    score_function: Callable[[Any, Any], np.ndarray] = cos_sim,
) -> list[list[dict[str, Any]]]:
    """Top-k corpus hits for every query, in chunks so memory stays bounded.

    Args:
        query_embeddings: ``(Q, D)`` or ``(D,)``.
        corpus_embeddings: ``(N, D)``.
        top_k: hits per query.
        query_chunk_size, corpus_chunk_size: the score matrix is built at most this large at once.
        score_function: ``cos_sim`` by default.

    Returns:
        For each query, a list of ``{"corpus_id": int, "score": float}`` sorted by decreasing score.

    Raises:
        InputError: dimensions differ, top_k or a chunk size is not a positive int, or score_function is
            not callable.
    """
    check_positive_int(top_k, "top_k")
    check_positive_int(query_chunk_size, "query_chunk_size")
    check_positive_int(corpus_chunk_size, "corpus_chunk_size")
    if not callable(score_function):
        raise InputError(f"score_function must be callable (cos_sim, dot_score, ...), got {score_function!r}")
    q = _as_2d(query_embeddings, "query_embeddings")
    c = _as_2d(corpus_embeddings, "corpus_embeddings")
    if q.shape[1] != c.shape[1]:
        raise InputError(f"query dimension {q.shape[1]} != corpus dimension {c.shape[1]}")
    if score_function is cos_sim:  # normalise once, then every chunk is a plain matmul
        q, c, score_function = normalize(q), normalize(c), dot_score
    results: list[list[tuple[float, int]]] = [[] for _ in range(len(q))]
    for qs in range(0, len(q), query_chunk_size):
        for cs in range(0, len(c), corpus_chunk_size):
            scores = score_function(q[qs : qs + query_chunk_size], c[cs : cs + corpus_chunk_size])
            k = min(top_k, scores.shape[1])
            idx = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            for row in range(scores.shape[0]):
                heap = results[qs + row]
                for j in idx[row]:
                    item = (float(scores[row, j]), cs + int(j))
                    if len(heap) < top_k:
                        heapq.heappush(heap, item)
                    elif item > heap[0]:
                        heapq.heapreplace(heap, item)
    return [
        [{"corpus_id": cid, "score": s} for s, cid in sorted(h, key=lambda t: (-t[0], t[1]))] for h in results
    ]


def paraphrase_mining_embeddings(
    embeddings: Any, top_k: int = 100, max_pairs: int = 500_000, chunk_size: int = 1024
) -> list[tuple[float, int, int]]:
    """The most similar pairs ``(score, i, j)`` with ``i < j`` among the rows of ``embeddings``, best first.

    Each row keeps its ``top_k`` neighbours, computed chunk by chunk (memory ``chunk_size x N``, never
    ``N x N``); the candidate pairs are then de-duplicated and ranked in vectorised numpy.

    Raises:
        InputError: a ``top_k``, ``max_pairs`` or ``chunk_size`` that is not a positive int.
    """
    for name, value in (("top_k", top_k), ("max_pairs", max_pairs), ("chunk_size", chunk_size)):
        check_positive_int(value, name)
    e = normalize(_as_2d(embeddings, "embeddings"))
    n = len(e)
    if n < 2:
        return []
    k = min(top_k, n - 1)
    rows_all, cols_all, scores_all = [], [], []
    for start in range(0, n, chunk_size):
        scores = e[start : start + chunk_size] @ e.T
        rows = np.arange(scores.shape[0])
        scores[rows, start + rows] = -np.inf  # no self-pairs
        idx = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        rows_all.append(np.repeat(start + rows, k))
        cols_all.append(idx.reshape(-1))
        scores_all.append(np.take_along_axis(scores, idx, axis=1).reshape(-1))
    i = np.concatenate(rows_all)
    j = np.concatenate(cols_all)
    sc = np.concatenate(scores_all)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    key = lo.astype(np.int64) * n + hi
    key, first = np.unique(key, return_index=True)  # (i, j) and (j, i) have the same score: keep one
    lo, hi, sc = lo[first], hi[first], sc[first]
    order = np.lexsort((hi, lo, -sc))[:max_pairs]
    return [(float(sc[t]), int(lo[t]), int(hi[t])) for t in order]


def paraphrase_mining(
    encoder: Encoder,
    sentences: Sequence[str],
    top_k: int = 100,
    max_pairs: int = 500_000,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> list[tuple[float, int, int]]:
    """Embed ``sentences`` and return the most similar pairs ``(score, i, j)``, best first."""
    emb = encoder.encode(list(sentences), batch_size=batch_size, show_progress_bar=show_progress_bar)
    return paraphrase_mining_embeddings(emb, top_k=top_k, max_pairs=max_pairs)


def quantize_embeddings(
    embeddings: np.ndarray,
    precision: Precision | str,
    ranges: np.ndarray | None = None,
    calibration_embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """sentence-transformers' ``quantize_embeddings`` in numpy: int8, uint8, binary, ubinary.

    Raises:
        InputError: int8/uint8 ranges would have to come from a single embedding; embeddings, ranges or
            calibration embeddings that are not numbers of the right shape.
    """
    precision = Precision.parse(precision, "precision")
    emb = _numbers(embeddings, "embeddings").astype(np.float32, copy=False)
    if emb.ndim > 2:
        raise InputError(f"embeddings must be a vector or a matrix, got shape {emb.shape}")
    if precision is Precision.FLOAT32:
        return emb
    if emb.ndim == 2 and emb.shape[0] == 0:
        dim = emb.shape[1]
        if precision in (Precision.INT8, Precision.UINT8):
            return np.zeros((0, dim), dtype=np.int8 if precision is Precision.INT8 else np.uint8)
        return np.zeros((0, (dim + 7) // 8), dtype=np.int8 if precision is Precision.BINARY else np.uint8)
    if precision in (Precision.INT8, Precision.UINT8):
        if ranges is None:
            calib = calibration_embeddings
            if calib is None:
                if emb.ndim == 1 or emb.shape[0] == 1:
                    raise InputError(
                        f"cannot compute {precision.value} quantization ranges from a single embedding; "
                        "pass ranges= or calibration_embeddings= from a representative set"
                    )
                calib = emb
            calib = _as_2d(calib, "calibration_embeddings")
            if len(calib) == 0 or calib.shape[1] != emb.shape[-1]:
                raise InputError(
                    f"calibration_embeddings must be rows of {emb.shape[-1]} numbers, got shape {calib.shape}"
                )
            ranges = np.vstack((calib.min(axis=0), calib.max(axis=0)))
        ranges = _numbers(ranges, "ranges").astype(np.float32, copy=False)
        if ranges.shape != (2, emb.shape[-1]):
            raise InputError(
                f"ranges must be (2, {emb.shape[-1]}): the minima, then the maxima; got {ranges.shape}"
            )
        starts = ranges[0, :]
        steps = (ranges[1, :] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        q = np.clip(np.floor((emb - starts) / steps), 0, 255)
        return q.astype(np.uint8) if precision is Precision.UINT8 else (q - 128).astype(np.int8)
    packed = np.packbits(emb > 0, axis=-1)
    return (packed - 128).astype(np.int8) if precision is Precision.BINARY else packed
