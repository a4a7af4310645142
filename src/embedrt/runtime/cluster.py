"""Clustering: sentence-transformers' ``util.community_detection`` in numpy, chunked."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .util import _as_2d, check_positive_int, normalize


def community_detection(
    embeddings: Any,
    threshold: float = 0.75,
    min_community_size: int = 10,
    batch_size: int = 1024,
    show_progress_bar: bool = False,
) -> list[list[int]]:
    """Fast community detection: groups of rows whose cosine similarity to a centre is at least ``threshold``.

    The same arguments and clusters as ``sentence_transformers.util.community_detection``: every row with at
    least ``min_community_size`` neighbours (itself included) at ``threshold`` or more proposes a community
    (its neighbours, most similar first); communities are taken largest first, skipping those whose centre an
    earlier one took, each keeping only the rows no earlier community took, and kept while at least
    ``min_community_size`` rows remain.

    Args:
        embeddings: ``(N, D)``.
        threshold: cosine similarity at or above which two rows are neighbours.
        min_community_size: smallest community returned.
        batch_size: rows of the similarity matrix built at once (memory ``batch_size x N``, never ``N x N``).
        show_progress_bar: a tqdm bar over the chunks, if tqdm is installed.

    Returns:
        Communities as lists of row indices, largest first; each starts with its centre.

    Raises:
        InputError: a non-positive ``min_community_size`` or ``batch_size``, a ``threshold`` that is not a
            finite number.
    """
    check_positive_int(min_community_size, "min_community_size")
    check_positive_int(batch_size, "batch_size")
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float, np.number))
        or not np.isfinite(threshold)
    ):
        raise InputError(f"threshold must be a finite number, got {threshold!r}")
    e = _as_2d(embeddings, "embeddings")
    n = len(e)
    if n == 0 or n < min_community_size:
        return []
    e = normalize(e).astype(np.float32, copy=False)
    threshold = np.float32(threshold)
    starts = range(0, n, batch_size)
    if show_progress_bar:
        try:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Finding clusters")
        except ImportError:
            pass
    proposed: list[tuple[int, np.ndarray]] = []
    for start in starts:
        scores = e[start : start + batch_size] @ e.T
        counts = (scores >= threshold).sum(axis=1)
        for row in np.flatnonzero(counts >= min_community_size):
            s = scores[row]
            members = np.flatnonzero(s >= threshold)
            # NOTE: most similar first, as torch.topk sorts; a stable sort keeps index order on exact ties
            members = members[np.argsort(-s[members], kind="stable")]
            proposed.append((start + int(row), members))
    proposed.sort(key=lambda c: len(c[1]), reverse=True)  # NOTE: stable, as Python's sorted() in ST
    used = np.zeros(n, dtype=bool)
    communities = []
    for centre, members in proposed:
        if used[centre]:
            continue
        rest = members[~used[members]]
        if len(rest) >= min_community_size:
            community = [centre] + rest[rest != centre].tolist()
            communities.append(community)
            used[community] = True
    return sorted(communities, key=len, reverse=True)
