"""Token counts and ``long_text="chunk"`` on tiny models, against a reference built from
sentence-transformers' own forward pass on the same windows."""

from __future__ import annotations

import numpy as np
import pytest

from embedrt import Encoder, InputError
from embedrt.export.verify import probe_texts, words

SHORT = ["hello world", "", "a man is playing a guitar", "the model reads every token once"]
LONG = [words(60), words(200), words(9), "café " * 90]  # words(9): 25 tokens, one too many


def _st_forward(st, rows: list[list[int]]) -> np.ndarray:
    """sentence-transformers' modules on the given id rows (padded here), one row at a time."""
    import torch

    out = []
    for r in rows:
        ids = torch.tensor([r], dtype=torch.int64)
        features = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "token_type_ids": torch.zeros_like(ids),
        }
        with torch.no_grad():
            out.append(st(features)["sentence_embedding"][0].numpy())
    return np.stack(out)


def _reference(st, text: str, prompt: str, stride: int, normalize: bool) -> np.ndarray:
    """Windows cut from the HF tokenizer's ids, embedded by sentence-transformers, pooled in numpy."""
    tok = st.tokenizer
    limit = st.max_seq_length
    ids = tok(prompt + text, add_special_tokens=True, truncation=False)["input_ids"]
    if len(ids) <= limit:
        return _st_forward(st, [ids])[0]
    head = len(tok(prompt, add_special_tokens=True)["input_ids"]) - 1 if prompt else 1  # [CLS] (+ prompt)
    content, tail = ids[head:-1], ids[-1:]
    width = limit - head - 1
    rows, weights, start = [], [], 0
    while True:
        piece = content[start : start + width]
        rows.append(ids[:head] + piece + tail)
        weights.append(len(piece))
        if start + width >= len(content):
            break
        start += stride
    vectors = _st_forward(st, rows).astype(np.float64)
    mean = (vectors * np.array(weights, dtype=np.float64)[:, None]).sum(0) / sum(weights)
    return mean / np.linalg.norm(mean) if normalize else mean


@pytest.fixture(scope="module")
def pair(tiny_factory):
    from sentence_transformers import SentenceTransformer

    st_dir, export_dir = tiny_factory(
        arch="bert", pooling="mean", normalize=True, prompts={"query": "query: ", "document": "passage: "}
    )
    return SentenceTransformer(str(st_dir), device="cpu"), Encoder(export_dir, device="cpu")


@pytest.fixture(scope="module")
def pair_plain(tiny_factory):
    from sentence_transformers import SentenceTransformer

    st_dir, export_dir = tiny_factory(arch="bert", pooling="max")
    return SentenceTransformer(str(st_dir), device="cpu"), Encoder(export_dir, device="cpu")


def test_count_tokens_matches_the_hf_tokenizer(pair):
    st, enc = pair
    texts = probe_texts() + LONG
    want = [len(st.tokenizer(t, truncation=False)["input_ids"]) for t in texts]
    assert enc.count_tokens(texts).tolist() == want
    assert enc.count_tokens("hello world") == want[texts.index("Hello world")] == 4
    q = [len(st.tokenizer("query: " + t, truncation=False)["input_ids"]) for t in texts]
    assert enc.count_tokens(texts, prompt_name="query").tolist() == q
    assert enc.count_tokens([]).shape == (0,)


def test_return_token_counts(pair):
    st, enc = pair
    texts = SHORT + LONG
    emb, counts = enc.encode(texts, return_token_counts=True)
    np.testing.assert_array_equal(emb, enc.encode(texts))
    np.testing.assert_array_equal(counts, enc.count_tokens(texts))
    assert (counts > enc.max_seq_length).tolist() == [False] * 4 + [True] * 4
    one, n = enc.encode("hello world", return_token_counts=True)
    assert one.shape == (32,) and n == 4
    empty, n0 = enc.encode([], return_token_counts=True)
    assert empty.shape == (0, 32) and n0.shape == (0,)


def test_texts_that_fit_are_unchanged_bit_for_bit(pair):
    _, enc = pair
    texts = SHORT + LONG + probe_texts()
    plain = enc.encode(texts)
    chunked = enc.encode(texts, long_text="chunk")
    fits = enc.count_tokens(texts) <= enc.max_seq_length
    assert fits.any() and not fits.all()
    np.testing.assert_array_equal(chunked[fits], plain[fits])
    assert not np.allclose(chunked[~fits], plain[~fits])


@pytest.mark.parametrize("stride", [None, 5, 16])
@pytest.mark.parametrize("prompt_name", [None, "query"])
def test_chunk_matches_reference_windows(pair, stride, prompt_name):
    st, enc = pair
    prompt = st.prompts[prompt_name] if prompt_name else ""
    ours = enc.encode(LONG + SHORT, long_text="chunk", chunk_stride=stride, prompt_name=prompt_name)
    head = len(st.tokenizer(prompt, add_special_tokens=True)["input_ids"]) - 1 if prompt else 1
    width = st.max_seq_length - head - 1
    s = stride if stride is not None else width - width // 4
    ref = np.stack([_reference(st, t, prompt, s, normalize=True) for t in LONG + SHORT])
    assert np.abs(ours - ref).max() <= 1e-5
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_chunk_unnormalized_model(pair_plain):
    st, enc = pair_plain
    ours = enc.encode(LONG, long_text="chunk", chunk_stride=8)
    ref = np.stack([_reference(st, t, "", 8, normalize=False) for t in LONG])
    assert np.abs(ours - ref).max() <= 1e-5


def test_chunk_is_batch_invariant(pair):
    _, enc = pair
    texts = LONG + SHORT
    batched = enc.encode(texts, long_text="chunk", batch_size=3)
    alone = np.stack([enc.encode(t, long_text="chunk") for t in texts])
    assert np.abs(batched - alone).max() <= 1e-6


def test_chunk_bad_arguments(pair):
    _, enc = pair
    with pytest.raises(InputError, match="long_text"):
        enc.encode("x", long_text="split")
    with pytest.raises(InputError, match="chunk_stride only applies"):
        enc.encode("x", chunk_stride=4)
    for bad in (0, -1, 23, 2.5, True):
        with pytest.raises(InputError, match="chunk_stride"):
            enc.encode(LONG[1], long_text="chunk", chunk_stride=bad)
    with pytest.raises(InputError, match="no room"):
        enc.encode(LONG[1], long_text="chunk", prompt=words(40))
    with pytest.raises(InputError):
        enc.count_tokens([1, 2])
