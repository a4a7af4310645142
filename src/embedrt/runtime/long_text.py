"""Texts longer than the model's window: overlapping windows, pooled into one vector.

A text that fits is never touched. A longer one is cut into windows of at most ``max_seq_length`` tokens, each
with the text's special tokens and prompt around it; window ``i`` starts ``i * stride`` content tokens in, and
the last one reaches the end. The first window is exactly the row that truncation runs, so its embedding is
reused. The windows' embeddings are averaged, weighted by their content tokens, then normalised when the
model ends in Normalize.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: What ``encode(long_text=...)`` does with a text longer than ``max_seq_length``.
LONG_TEXT_MODES = ("truncate", "chunk")


def check_mode(long_text: object) -> str:
    if long_text not in LONG_TEXT_MODES:
        raise InputError(f"long_text must be one of {list(LONG_TEXT_MODES)}, got {long_text!r}")
    return str(long_text)


def window_width(max_seq_length: int, n_head: int, n_suffix: int) -> int:
    """Content tokens per window once the special tokens and the prompt (``n_head`` in front) are in.

    Raises:
        InputError: the prompt leaves no room for the text.
    """
    width = max_seq_length - n_head - n_suffix
    if width <= 0:
        raise InputError(
            f"the prompt and special tokens take {n_head + n_suffix} of the {max_seq_length} "
            "tokens of a window: no room left to chunk the text"
        )
    return width


def check_stride(chunk_stride: object, width: int) -> int:
    """The stride in content tokens (default: three quarters of a window, so windows overlap by a quarter).

    Raises:
        InputError: not a positive int, or larger than the window (tokens would be skipped).
    """
    if chunk_stride is None:
        return max(1, width - width // 4)
    if isinstance(chunk_stride, bool) or not isinstance(chunk_stride, int) or not 1 <= chunk_stride <= width:
        raise InputError(
            f"chunk_stride must be an int in [1, {width}] (the window's {width} content "
            f"tokens), got {chunk_stride!r}"
        )
    return chunk_stride


def windows(
    ids: list[int], n_head: int, n_suffix: int, width: int, stride: int
) -> tuple[list[list[int]], list[int]]:
    """The windows of one tokenized text (special tokens included) and the content tokens of each.

    Args:
        ids: the whole text's ids, untruncated, special tokens included.
        n_head: leading ids every window repeats (special tokens, then the prompt's tokens).
        n_suffix: trailing special ids every window repeats.
        width: content tokens per window; stride: tokens between the starts of consecutive windows.
    """
    head, tail = ids[:n_head], ids[len(ids) - n_suffix :] if n_suffix else []
    content = ids[n_head : len(ids) - n_suffix]
    rows, weights = [], []
    for start in range(0, max(1, len(content)), stride):
        piece = content[start : start + width]
        rows.append(head + piece + tail)
        weights.append(len(piece))
        if start + width >= len(content):
            break
    return rows, weights


def pool_windows(vectors: np.ndarray, weights: list[int], normalize_output: bool) -> np.ndarray:
    """Token-weighted mean of the windows' vectors ``(n, D)``, L2-normalised when the model normalises."""
    w = np.asarray(weights, dtype=np.float64)
    mean = (vectors.astype(np.float64) * w[:, None]).sum(axis=0) / max(w.sum(), 1.0)
    if normalize_output:
        mean = mean / max(np.linalg.norm(mean), 1e-12)
    return mean.astype(np.float32)


def plan_windows(
    full: list[list[int]], limit: int, n_head: int, n_suffix: int, chunk_stride: object
) -> tuple[int, list[tuple[int, list[list[int]], list[int]]]]:
    """The stride, and ``(text index, windows, content tokens of each window)`` of every text longer than
    ``limit`` tokens (window ``w`` starts ``w * stride`` content tokens in).

    Raises:
        InputError: a bad ``chunk_stride``, or a prompt that leaves no room for content.
    """
    long_rows = [i for i, r in enumerate(full) if len(r) > limit]
    if not long_rows:
        return 0, []
    width = window_width(limit, n_head, n_suffix)
    stride = check_stride(chunk_stride, width)
    return stride, [(i, *windows(full[i], n_head, n_suffix, width, stride)) for i in long_rows]


def new_tokens(weights: list[int], stride: int) -> np.ndarray:
    """Content tokens of each window that no earlier window holds (window ``w`` covers
    ``[w * stride, w * stride + weights[w])``)."""
    w = np.asarray(weights, dtype=np.int64)
    ends = np.arange(len(w)) * stride + w
    out = w.copy()
    out[1:] = ends[1:] - ends[:-1]
    return out


def pool_sparse_windows(vectors: np.ndarray, weights: list[int], stride: int, pooling: str) -> np.ndarray:
    """One vocabulary-wide vector from its windows' ``(n, V)``. ``"max"`` pooling: the element-wise max,
    which is the max over every token of the text, each read in its window. ``"sum"`` pooling: each window's
    vector scaled by the share of its content tokens that no earlier window holds, so that every token of the
    text counts about once (a window's special tokens and its share of the overlap are not separable)."""
    if pooling == "max":
        return vectors.max(axis=0)
    share = new_tokens(weights, stride) / np.maximum(np.asarray(weights, dtype=np.float64), 1.0)
    return (vectors.astype(np.float64) * share[:, None]).sum(axis=0).astype(np.float32)


def token_sources(
    weights: list[int], stride: int, n_head: int, n_suffix: int
) -> tuple[np.ndarray, np.ndarray]:
    """Where each token of a chunked text is read: ``(window, position in that window)`` per token of the
    whole text (head, content, tail). A content token comes from the window it sits most centrally in (the
    earlier one on a tie), the leading special tokens and prompt from the first window, the trailing special
    tokens from the last."""
    w = np.asarray(weights, dtype=np.int64)
    starts = np.arange(len(w)) * stride
    n_content = int(starts[-1] + w[-1])
    p = np.arange(n_content)[None, :]
    inside = (p >= starts[:, None]) & (p < (starts + w)[:, None])
    off_centre = np.abs(2 * (p - starts[:, None]) - (w[:, None] - 1)).astype(np.float64)
    off_centre[~inside] = np.inf
    win = np.argmin(off_centre, axis=0)  # NOTE: the first minimum: the earlier window on a tie
    pos = n_head + np.arange(n_content) - starts[win]
    last = len(w) - 1
    window = np.concatenate([np.zeros(n_head, np.int64), win, np.full(n_suffix, last, np.int64)])
    position = np.concatenate([np.arange(n_head), pos, n_head + int(w[-1]) + np.arange(n_suffix)]).astype(
        np.int64
    )
    return window, position
