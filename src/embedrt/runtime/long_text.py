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
