"""numpy utilities against sentence_transformers.util."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import util as st_util

from embedrt import InputError, cos_sim, dot_score, normalize, paraphrase_mining_embeddings, semantic_search
from embedrt.evaluate import spearman
from embedrt.runtime.util import euclidean_sim, manhattan_sim


@pytest.fixture(scope="module")
def emb():
    rng = np.random.default_rng(0)
    return rng.standard_normal((300, 24)).astype(np.float32), rng.standard_normal((7, 24)).astype(np.float32)


def test_similarity_functions_match(emb):
    corpus, q = emb
    for ours, ref in [
        (cos_sim, st_util.cos_sim),
        (dot_score, st_util.dot_score),
        (euclidean_sim, st_util.euclidean_sim),
        (manhattan_sim, st_util.manhattan_sim),
    ]:
        np.testing.assert_allclose(
            ours(q, corpus), ref(torch.from_numpy(q), torch.from_numpy(corpus)).numpy(), atol=2e-4, rtol=1e-5
        )
    np.testing.assert_allclose(
        normalize(q), torch.nn.functional.normalize(torch.from_numpy(q)).numpy(), atol=1e-7
    )
    assert np.array_equal(normalize(np.zeros((1, 4), np.float32)), np.zeros((1, 4)))  # eps clamp, no NaN


@pytest.mark.parametrize("chunk", [7, 50_000])
def test_semantic_search_matches_in_chunks(emb, chunk):
    corpus, q = emb
    ours = semantic_search(q, corpus, top_k=10, corpus_chunk_size=chunk, query_chunk_size=3)
    ref = st_util.semantic_search(torch.from_numpy(q), torch.from_numpy(corpus), top_k=10)
    for a, b in zip(ours, ref, strict=True):
        assert [h["corpus_id"] for h in a] == [h["corpus_id"] for h in b]
        np.testing.assert_allclose([h["score"] for h in a], [h["score"] for h in b], atol=1e-5)


def test_paraphrase_mining_matches(emb):
    corpus, _ = emb
    ours = paraphrase_mining_embeddings(corpus, top_k=5, max_pairs=50)
    ref = st_util.paraphrase_mining_embeddings(torch.from_numpy(corpus), top_k=5, max_pairs=50)
    assert [(i, j) for _, i, j in ours] == [(i, j) for _, i, j in ref]
    np.testing.assert_allclose([s for s, _, _ in ours], [s for s, _, _ in ref], atol=1e-5)


@pytest.mark.parametrize("fn", [cos_sim, dot_score, euclidean_sim, manhattan_sim])
def test_similarity_of_what_is_not_vectors_is_an_input_error(fn):
    a = np.ones((2, 4), np.float32)
    for bad, match in (
        (None, "NoneType"),
        ("text", "str"),
        ([["x", "y"]], "numbers"),
        (np.ones((2, 5)), "different dimensions: 4 and 5"),
        (np.ones((2, 2, 4)), "vector or a matrix"),
    ):
        with pytest.raises(InputError, match=match):
            fn(a, bad)


def test_search_normalize_and_quantize_refuse_what_they_cannot_use(emb):
    from embedrt import quantize_embeddings

    corpus, q = emb
    for kwargs, match in (
        ({"score_function": "cos_sim"}, "score_function must be callable"),
        ({"query_chunk_size": 0}, "query_chunk_size must be a positive int"),
        ({"corpus_chunk_size": 2.5}, "corpus_chunk_size must be a positive int"),
    ):
        with pytest.raises(InputError, match=match):
            semantic_search(q, corpus, **kwargs)
    for bad in (None, "text", {"a": 1}, 3):
        with pytest.raises(InputError, match="vector or a matrix of numbers"):
            normalize(bad)
    np.testing.assert_allclose(normalize([[3.0, 4.0]]), [[0.6, 0.8]])
    for args, kwargs, match in (
        (("text", "int8"), {}, "vector or a matrix of numbers"),
        ((corpus, "int8"), {"ranges": np.zeros((2, 3))}, r"ranges must be \(2, "),
        ((corpus, "int8"), {"calibration_embeddings": corpus[:, :3]}, "calibration_embeddings must be rows"),
        ((corpus, "uint8"), {"calibration_embeddings": "x"}, "numbers"),
        ((np.zeros((2, 2, 2)), "binary"), {}, "vector or a matrix"),
    ):
        with pytest.raises(InputError, match=match):
            quantize_embeddings(*args, **kwargs)


def test_paraphrase_mining_refuses_non_positive_sizes(emb):
    corpus, _ = emb
    for name in ("top_k", "max_pairs", "chunk_size"):
        for bad in (0, -1, 2.5, True):
            with pytest.raises(InputError, match=f"{name} must be a positive int"):
                paraphrase_mining_embeddings(corpus, **{name: bad})


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    a = rng.integers(0, 10, 200).astype(float)  # many ties
    b = a + rng.standard_normal(200)
    assert abs(spearman(a, b) - spearmanr(a, b).statistic) < 1e-12
