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
    """sentence-transformers' modules on the given id rows, one row at a time."""
    return np.stack([_st_features(st, r)["sentence_embedding"][0].numpy() for r in rows])


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


# --- sparse and multi-vector encoders: the same windows, pooled as each family pools tokens ---------------


def _hf_windows(tok, text: str, prompt: str, limit: int, stride: int | None):
    """The text's ids from the HF tokenizer, and its windows cut from them: (ids, head, windows, starts)."""
    ids = tok(prompt + text, add_special_tokens=True, truncation=False)["input_ids"]
    head = len(tok(prompt, add_special_tokens=True)["input_ids"]) - 1 if prompt else 1  # [CLS] (+ prompt)
    content, tail = ids[head:-1], ids[-1:]
    width = limit - head - 1
    step = stride if stride is not None else width - width // 4
    rows, starts, start = [], [], 0
    while True:
        rows.append(ids[:head] + content[start : start + width] + tail)
        starts.append(start)
        if start + width >= len(content):
            break
        start += step
    return ids, head, rows, starts


def _st_features(st, row: list[int]) -> dict:
    import torch

    ids = torch.tensor([row], dtype=torch.int64)
    features = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
    }
    with torch.no_grad():
        return st(features)


@pytest.fixture(scope="module", params=["max", "sum"])
def sparse_pair(request, tmp_path_factory):
    from sentence_transformers import SparseEncoder as STSparse

    from embedrt import SparseEncoder, export_model
    from tiny_models import build_tiny_sparse

    base = tmp_path_factory.mktemp(f"sparse-long-{request.param}")
    st_dir = build_tiny_sparse(base / "st", pooling=request.param, prompts={"query": "query: "})
    export_model(str(st_dir), base / "export")
    return STSparse(str(st_dir), device="cpu"), SparseEncoder(base / "export", device="cpu"), request.param


def _sparse_reference(st, text: str, prompt: str, stride: int | None, pooling: str) -> np.ndarray:
    limit = st.max_seq_length
    ids, head, rows, starts = _hf_windows(st.tokenizer, text, prompt, limit, stride)
    if len(ids) <= limit:
        return _st_features(st, ids)["sentence_embedding"][0].to_dense().numpy()
    vectors = np.stack([_st_features(st, r)["sentence_embedding"][0].to_dense().numpy() for r in rows])
    if pooling == "max":
        return vectors.max(0)
    # sum pooling: each window by the share of its content tokens no earlier window had
    pieces = [len(r) - head - 1 for r in rows]
    ends = [s + n for s, n in zip(starts, pieces, strict=True)]
    new = [pieces[0]] + [ends[k] - ends[k - 1] for k in range(1, len(rows))]
    share = np.array(new, dtype=np.float64) / np.maximum(np.array(pieces, dtype=np.float64), 1)
    return (vectors.astype(np.float64) * share[:, None]).sum(0)


@pytest.mark.parametrize("stride", [None, 5])
@pytest.mark.parametrize("prompt_name", [None, "query"])
def test_sparse_chunk_matches_reference_windows(sparse_pair, stride, prompt_name):
    st, enc, pooling = sparse_pair
    prompt = st.prompts[prompt_name] if prompt_name else ""
    texts = LONG + SHORT
    ours = enc.encode(
        texts, long_text="chunk", chunk_stride=stride, prompt_name=prompt_name, convert_to_sparse_tensor=False
    )
    ref = np.stack([_sparse_reference(st, t, prompt, stride, pooling) for t in texts])
    # NOTE: relative to the row's largest value: sum pooling adds up hundreds of tokens
    assert (np.abs(ours - ref).max(1) / np.maximum(np.abs(ref).max(1), 1.0)).max() <= 1e-5
    csr = enc.encode(texts, long_text="chunk", chunk_stride=stride, prompt_name=prompt_name)
    np.testing.assert_array_equal(csr.toarray(), ours)
    # max_active_dims cuts the pooled vector, not the windows
    top = enc.encode(
        texts, long_text="chunk", chunk_stride=stride, prompt_name=prompt_name, max_active_dims=3
    )
    assert ((top.toarray() > 0).sum(1) <= 3).all()
    np.testing.assert_array_equal(top.toarray().max(1), ours.max(1))


def test_sparse_texts_that_fit_are_unchanged_bit_for_bit(sparse_pair):
    _, enc, _ = sparse_pair
    texts = SHORT + LONG + probe_texts()
    plain = enc.encode(texts, convert_to_sparse_tensor=False)
    chunked = enc.encode(texts, long_text="chunk", convert_to_sparse_tensor=False)
    fits = enc.count_tokens(texts) <= enc.max_seq_length
    assert fits.any() and not fits.all()
    np.testing.assert_array_equal(chunked[fits], plain[fits])
    assert not np.allclose(chunked[~fits], plain[~fits])
    with pytest.raises(InputError, match="long_text"):
        enc.encode("x", long_text="window")
    with pytest.raises(InputError, match="chunk_stride"):
        enc.encode("x", chunk_stride=4)
    with pytest.raises(InputError, match="chunk_stride must be an int"):
        enc.encode(LONG, long_text="chunk", chunk_stride=0)


@pytest.fixture(scope="module")
def multi_pair(tmp_path_factory):
    import string

    from sentence_transformers import MultiVectorEncoder as STMulti

    from embedrt import MultiVectorEncoder, export_model
    from tiny_models import build_tiny_multivector

    base = tmp_path_factory.mktemp("multi-long")
    st_dir = build_tiny_multivector(
        base / "st",
        skiplist_words=list(string.punctuation),
        document_length=20,
        prompts={"query": "query: ", "document": "passage: "},
    )
    export_model(str(st_dir), base / "export")
    return STMulti(str(st_dir), device="cpu"), MultiVectorEncoder(base / "export", device="cpu")


def _multi_reference(st, text: str, prompt: str, limit: int, stride: int | None, skip) -> np.ndarray:
    """Every token of the text from the window it sits most centrally in, looped over in plain Python."""
    ids, head, rows, starts = _hf_windows(st.tokenizer, text, prompt, limit, stride)
    if len(ids) <= limit:
        rows, starts = [ids], [0]
    vectors = [_st_features(st, r)["token_embeddings"][0].numpy() for r in rows]
    pieces = [len(r) - head - 1 for r in rows]
    picked = [vectors[0][j] for j in range(head)]
    for p in range(len(ids) - head - 1):
        best = None
        for w, (s, n) in enumerate(zip(starts, pieces, strict=True)):
            if s <= p < s + n:
                d = abs((p - s) - (n - 1) / 2)
                if best is None or d < best[0]:
                    best = (d, w)
        w = best[1]
        picked.append(vectors[w][head + p - starts[w]])
    picked.append(vectors[-1][head + pieces[-1]])
    keep = [i not in skip for i in ids]
    return np.stack(picked)[np.array(keep)]


@pytest.mark.parametrize("stride", [None, 4])
@pytest.mark.parametrize("side", ["document", "query"])
def test_multivector_chunk_matches_reference_windows(multi_pair, stride, side):
    st, enc = multi_pair
    prompt = st.prompts[side]
    limit = 20 if side == "document" else st.max_seq_length
    skip = set(st[-1]._skiplist_ids.tolist()) if side == "document" else set()
    texts = LONG + SHORT + ["a, b. c! " * 12]
    encode = enc.encode_document if side == "document" else enc.encode_query
    ours = encode(texts, long_text="chunk", chunk_stride=stride)
    for text, got in zip(texts, ours, strict=True):
        ref = _multi_reference(st, text, prompt, limit, stride, skip)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-5
    # one vector per scored token of the whole text, not of the first window
    n = enc.count_tokens(LONG[1], prompt_name=side)
    assert (
        n > limit and len(ours[1]) == len(_multi_reference(st, LONG[1], prompt, limit, stride, skip)) > limit
    )


def test_multivector_texts_that_fit_are_unchanged_bit_for_bit(multi_pair):
    _, enc = multi_pair
    texts = SHORT + LONG + probe_texts()
    plain = enc.encode_document(texts)
    chunked = enc.encode_document(texts, long_text="chunk")
    fits = enc.count_tokens(texts, prompt_name="document") <= 20
    assert fits.any() and not fits.all()
    for a, b, f in zip(plain, chunked, fits, strict=True):
        if f:
            np.testing.assert_array_equal(a, b)
        else:
            assert len(b) > len(a)
    with pytest.raises(InputError, match="chunk_stride"):
        enc.encode("x", chunk_stride=4)


# --- cross-encoders: a long document scored by its best window ---------------------------------------------

QUERIES = ["who plays guitar?", "", "a man"]


@pytest.fixture(scope="module", params=["bert", "roberta"])
def cross_pair(request, cross_factory):
    from sentence_transformers import CrossEncoder as STCross

    from embedrt import CrossEncoder

    model_dir, export_dir = cross_factory(arch=request.param, num_labels=1)
    return STCross(str(model_dir), device="cpu"), CrossEncoder(export_dir, device="cpu")


def _cross_reference(st, query: str, doc: str, stride: int | None) -> float:
    """The pair's windows from the Hugging Face tokenizer (only_second truncation with overflow), scored by
    sentence-transformers' model, the best one's logit through the activation."""
    import torch

    tok, limit = st.tokenizer, st.max_length
    full = tok([query], [doc], truncation=False)["input_ids"][0]  # NOTE: batch form, as predict tokenizes
    if len(full) <= limit:
        return float(st.predict([(query, doc)])[0])
    width = (
        limit - len(tok(query, add_special_tokens=False)["input_ids"]) - tok.num_special_tokens_to_add(True)
    )
    step = stride if stride is not None else width - width // 4
    enc = tok(
        [query],
        [doc],
        truncation="only_second",
        max_length=limit,
        stride=width - step,
        return_overflowing_tokens=True,
        return_tensors="pt",
        padding=True,
    )
    enc.pop("overflow_to_sample_mapping")
    with torch.no_grad():
        logits = st.model(**enc).logits[:, 0]
    return float(st.activation_fn(logits.max()))


@pytest.mark.parametrize("stride", [None, 3])
def test_cross_chunk_matches_reference_windows(cross_pair, stride):
    st, ce = cross_pair
    pairs = [(q, d) for q in QUERIES for d in LONG + SHORT]
    ours = ce.predict(pairs, long_text="chunk", chunk_stride=stride)
    ref = np.array([_cross_reference(st, q, d, stride) for q, d in pairs])
    assert np.abs(ours - ref).max() <= 1e-5
    ranked = ce.rank(QUERIES[0], LONG + SHORT, long_text="chunk", chunk_stride=stride)
    assert [r["score"] for r in ranked] == sorted(ours[: len(LONG + SHORT)].tolist(), reverse=True)


def test_cross_count_tokens_and_fitting_pairs_unchanged(cross_pair):
    st, ce = cross_pair
    pairs = [(q, d) for q in QUERIES for d in LONG + SHORT]
    want = [len(ids) for ids in st.tokenizer([q for q, _ in pairs], [d for _, d in pairs])["input_ids"]]
    assert ce.count_tokens(pairs).tolist() == want and ce.count_tokens(pairs[0]) == want[0]
    assert ce.count_tokens([]).shape == (0,)
    plain, chunked = ce.predict(pairs), ce.predict(pairs, long_text="chunk")
    fits = np.array(want) <= ce.max_seq_length
    assert fits.any() and not fits.all()
    np.testing.assert_array_equal(chunked[fits], plain[fits])
    assert not np.allclose(chunked[~fits], plain[~fits])
    # an activation_fn override takes the best window's logit too
    raw = ce.predict(pairs, long_text="chunk", activation_fn="identity")
    np.testing.assert_allclose(1 / (1 + np.exp(-raw)), chunked, atol=1e-6)


def test_cross_chunk_errors(cross_pair, cross_factory):
    from embedrt import CrossEncoder

    _, ce = cross_pair
    with pytest.raises(InputError, match="inputs\\[0\\]: its first text"):
        ce.predict([(words(60), words(60))], long_text="chunk")
    with pytest.raises(InputError, match="chunk_stride only applies"):
        ce.predict([("a", "b")], chunk_stride=3)
    with pytest.raises(InputError, match="long_text must be one of"):
        ce.predict([("a", "b")], long_text="max")
    with pytest.raises(InputError, match="chunk_stride must be an int"):
        ce.predict([("a", words(60))], long_text="chunk", chunk_stride=10**6)
    _, nli = cross_factory(arch="bert", num_labels=3)
    with pytest.raises(InputError, match="needs one label"):
        CrossEncoder(nli, device="cpu").predict([("a", "b")], long_text="chunk")
