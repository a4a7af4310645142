"""Encoder API parity with SentenceTransformer.encode, on a tiny model (hermetic, fast)."""

from __future__ import annotations

import inspect
import threading

import numpy as np
import pytest

from embedrt import Encoder, InputError
from embedrt.export.verify import probe_texts
from embedrt.runtime.batching import length_sorted_batches

TEXTS = probe_texts() + [f"sentence number {i} about the model and the index" for i in range(25)]


@pytest.fixture(scope="module")
def pair(tiny_factory):
    from sentence_transformers import SentenceTransformer

    st_dir, export_dir = tiny_factory(
        arch="bert", pooling="mean", normalize=True, prompts={"query": "query: ", "document": "passage: "}
    )
    return SentenceTransformer(str(st_dir), device="cpu"), Encoder(export_dir, device="cpu")


@pytest.fixture(scope="module")
def pair_unnormalized(tiny_factory):
    from sentence_transformers import SentenceTransformer

    st_dir, export_dir = tiny_factory(arch="roberta", pooling="mean", dense=True)
    return SentenceTransformer(str(st_dir), device="cpu"), Encoder(export_dir, device="cpu")


def close(a, b, atol=1e-5):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.abs(a.astype(np.float64) - b.astype(np.float64)).max() <= atol


def test_shapes_and_dtypes(pair):
    st, enc = pair
    one = enc.encode("hello world")
    assert one.shape == (32,) and one.dtype == np.float32
    close(one, st.encode("hello world"))
    many = enc.encode(TEXTS)
    assert many.shape == (len(TEXTS), 32) and many.dtype == np.float32
    close(many, st.encode(TEXTS))
    assert enc.encode([]).shape == (0, 32)
    assert enc.encode([], truncate_dim=8).shape == (0, 8)
    assert enc.encode(("a", "b")).shape == (2, 32)
    assert enc.encode(np.array(["a", "b"])).shape == (2, 32)
    assert enc.get_sentence_embedding_dimension() == 32
    assert enc.max_seq_length == st.max_seq_length == 24


def test_empty_string_is_valid(pair):
    st, enc = pair
    close(enc.encode(""), st.encode(""))
    close(enc.encode(["", " ", "x"]), st.encode(["", " ", "x"]))


@pytest.mark.parametrize("batch_size", [1, 3, 32, 1000])
def test_batch_sizes(pair, batch_size):
    st, enc = pair
    close(enc.encode(TEXTS, batch_size=batch_size), st.encode(TEXTS, batch_size=batch_size))


def test_batch_invariance_alone_vs_mixed_batch(pair):
    _, enc = pair
    batched = enc.encode(TEXTS, batch_size=len(TEXTS))
    alone = np.stack([enc.encode(t) for t in TEXTS])
    close(alone, batched, atol=1e-6)


def test_token_budget_same_numbers(pair):
    st, enc = pair
    close(enc.encode(TEXTS, max_batch_tokens=40), st.encode(TEXTS))
    batches = length_sorted_batches(np.array([24, 24, 10, 10, 10, 3]), batch_size=32, budget=40)
    assert [len(b) for b in batches] == [1, 1, 4]  # 24-token rows alone; then 4 rows of <=10 tokens


def test_default_token_budget_bounds_long_batches(pair):
    from embedrt.runtime.encoder import DEFAULT_MAX_BATCH_TOKENS

    _, enc = pair
    assert enc.max_batch_tokens == DEFAULT_MAX_BATCH_TOKENS
    lengths = np.array([256] * 40 + [20] * 64)
    batches = length_sorted_batches(lengths, batch_size=32, budget=enc.max_batch_tokens)
    assert max(len(b) * lengths[b].max() for b in batches) <= DEFAULT_MAX_BATCH_TOKENS
    assert [len(b) for b in batches][-2:] == [32, 32]  # short texts keep the full batch_size
    unbounded = Encoder(enc.path, device="cpu", max_batch_tokens=None)
    # NOTE: unbounded, the 40 long texts run apart from the short ones (32 + 8), not 32 + (8 long, 24 short)
    assert [len(b) for b in length_sorted_batches(lengths, 32, unbounded.max_batch_tokens)] == [32, 8, 32, 32]
    with pytest.raises(InputError, match="max_batch_tokens"):
        Encoder(enc.path, device="cpu", max_batch_tokens=0)


@pytest.mark.parametrize("prompt_name", ["query", "document"])
def test_prompt_name(pair, prompt_name):
    st, enc = pair
    close(enc.encode(TEXTS, prompt_name=prompt_name), st.encode(TEXTS, prompt_name=prompt_name))
    assert np.abs(enc.encode(TEXTS[3], prompt_name=prompt_name) - enc.encode(TEXTS[3])).max() > 1e-4


def test_prompt_string_wins_over_prompt_name(pair):
    st, enc = pair
    close(enc.encode(TEXTS, prompt="custom: "), st.encode(TEXTS, prompt="custom: "))
    close(enc.encode(TEXTS, prompt="x: ", prompt_name="query"), st.encode(TEXTS, prompt="x: "))


def test_encode_query_and_document(pair):
    st, enc = pair
    close(enc.encode_query(TEXTS[:5]), st.encode_query(TEXTS[:5]))
    close(enc.encode_document(TEXTS[:5]), st.encode_document(TEXTS[:5]))


@pytest.mark.parametrize("fixture", ["pair", "pair_unnormalized"])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("truncate_dim", [None, 8])
def test_normalize_and_truncate_dim(request, fixture, normalize, truncate_dim):
    st, enc = request.getfixturevalue(fixture)
    kw = dict(normalize_embeddings=normalize, truncate_dim=truncate_dim)
    ours = enc.encode(TEXTS, **kw)
    # A model that ends in Normalize gives unit vectors after truncation too (sentence-transformers needs
    # normalize_embeddings=True for that); a model without Normalize is cut exactly as sentence-transformers.
    model_normalizes = fixture == "pair"
    ref_kw = dict(kw, normalize_embeddings=normalize or (model_normalizes and truncate_dim is not None))
    close(ours, st.encode(TEXTS, **ref_kw))
    if model_normalizes or normalize:
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


def test_truncate_dim_in_constructor(pair, tiny_factory):
    st, enc = pair
    enc8 = Encoder(enc.path, device="cpu", truncate_dim=8)
    assert enc8.get_sentence_embedding_dimension() == 8
    close(enc8.encode(TEXTS), st.encode(TEXTS, truncate_dim=8, normalize_embeddings=True))


@pytest.mark.parametrize("precision", ["float32", "int8", "uint8", "binary", "ubinary"])
def test_precisions(pair_unnormalized, precision):
    from sentence_transformers.util import quantize_embeddings as st_quantize

    st, enc = pair_unnormalized
    ours = enc.encode(TEXTS, precision=precision)
    ref = st.encode(TEXTS, precision=precision)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    # Our quantizer on the reference floats is bit-exact with sentence-transformers' quantizer ...
    floats = st.encode(TEXTS)
    from embedrt import quantize_embeddings

    np.testing.assert_array_equal(quantize_embeddings(floats, precision), st_quantize(floats, precision))
    # ... and end to end, 1e-7 float noise may move a value across a bucket edge: at most one step.
    assert (
        np.abs(ours.astype(np.int64) - ref.astype(np.int64)).max() <= (1 if "int8" in precision else 0)
        or precision.endswith("binary")
        and (ours != ref).mean() < 0.01
    )


def test_int8_precision_of_one_text_is_refused_like_st(pair):
    _, enc = pair
    with pytest.raises(InputError, match="single embedding"):
        enc.encode("one text", precision="int8")


def test_convert_to_numpy_false_gives_list(pair):
    st, enc = pair
    ours = enc.encode(TEXTS[:4], convert_to_numpy=False)
    assert isinstance(ours, list) and len(ours) == 4 and ours[0].shape == (32,)
    close(np.stack(ours), st.encode(TEXTS[:4]))


def test_similarity(pair):
    st, enc = pair
    a, b = enc.encode(TEXTS[:5]), enc.encode(TEXTS[5:9])
    close(enc.similarity(a, b), st.similarity(a, b).numpy())
    close(enc.similarity_pairwise(a[:4], b), st.similarity_pairwise(a[:4], b).numpy())
    assert enc.similarity_fn_name == "cosine"


@pytest.mark.parametrize(
    "bad,match",
    [
        (None, "None"),
        (b"bytes", "bytes"),
        (["ok", None], r"sentences\[1\] is NoneType"),
        (["ok", 3], r"sentences\[1\] is int"),
        ([["nested", "list"]], "nested list"),
        ({"a": 1}, "must be a str or a list"),
        (42, "must be a str or a list"),
    ],
)
def test_bad_inputs_raise_typed_errors(pair, bad, match):
    _, enc = pair
    with pytest.raises(InputError, match=match):
        enc.encode(bad)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"precision": "float16"}, "valid choices: 'float32', 'int8'"),
        ({"truncate_dim": 0}, "truncate_dim"),
        ({"prompt_name": "nope"}, r"prompt_name 'nope' not found.*'document', 'query'"),
        ({"prompt_name": []}, "prompt_name must be a str, got list"),
        ({"prompt_name": {}}, "prompt_name must be a str, got dict"),
        ({"output_value": "token_embeddings"}, "sentence_embedding"),
        ({"convert_to_tensor": True}, "torch"),
        ({"max_batch_tokens": -1}, "max_batch_tokens"),
        ({"device": "gpu"}, "valid choices: 'auto', 'cpu', 'cuda', 'tensorrt'"),
    ],
)
def test_bad_arguments(pair, kwargs, match):
    _, enc = pair
    with pytest.raises(InputError, match=match):
        enc.encode(["x"], **kwargs)


def test_bad_device_and_variant_names(pair):
    _, enc = pair
    with pytest.raises(InputError, match="valid choices: 'auto', 'cpu', 'cuda', 'tensorrt'"):
        Encoder(enc.path, device="tpu")
    with pytest.raises(InputError, match=r"unknown variant 'int4'.*\['fp32'\]"):
        Encoder(enc.path, device="cpu", variant="int4")


def test_thread_safety(pair):
    _, enc = pair
    texts = [TEXTS[i % len(TEXTS)] + f" {i}" for i in range(160)]
    expected = enc.encode(texts, batch_size=7)
    results, errors = {}, []

    def work(k):
        try:
            for rep in range(3):
                results[(k, rep)] = enc.encode(texts, batch_size=3 + k)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 24
    for v in results.values():
        close(v, expected, atol=1e-6)


# ------------------------------------------------------------ the two halves of encode (what servers call)
def test_tokenize_then_encode_tokenized_equals_encode(pair, pair_unnormalized):
    from embedrt.runtime import TokenizedTexts

    for _, enc in (pair, pair_unnormalized):
        tokens = enc.tokenize(TEXTS)
        assert isinstance(tokens, TokenizedTexts) and len(tokens) == len(TEXTS)
        assert tokens.lengths.tolist() == [len(r) for r in enc.tokenizer.encode_ids(TEXTS)]
        assert np.array_equal(enc.encode_tokenized(tokens, batch_size=7), enc.encode(TEXTS, batch_size=7))
        assert np.array_equal(enc.encode_tokenized(enc.tokenize(TEXTS[3])), enc.encode([TEXTS[3]]))
        assert enc.encode_tokenized(enc.tokenize([])).shape == (0, enc.get_sentence_embedding_dimension())


def test_tokenize_applies_prompts_like_encode(pair):
    _, enc = pair
    for kw in ({"prompt_name": "query"}, {"prompt": "custom: "}):
        tokens = enc.tokenize(TEXTS, **kw)
        assert tokens.lengths.sum() > enc.tokenize(TEXTS).lengths.sum()
        np.testing.assert_allclose(enc.encode_tokenized(tokens), enc.encode(TEXTS, **kw), atol=1e-6, rtol=0)


def test_concat_runs_many_requests_in_one_call(pair):
    from embedrt.runtime import TokenizedTexts

    _, enc = pair
    parts = [enc.tokenize(TEXTS[:3]), enc.tokenize(TEXTS[3:4]), enc.tokenize(TEXTS[4:])]
    joined = TokenizedTexts.concat(parts)
    assert joined.ids == enc.tokenize(TEXTS).ids
    np.testing.assert_allclose(enc.encode_tokenized(joined), enc.encode(TEXTS), atol=1e-6, rtol=0)
    with pytest.raises(InputError, match="different prompt lengths"):
        TokenizedTexts.concat([TokenizedTexts([[1]], 0), TokenizedTexts([[1]], 2)])
    with pytest.raises(InputError, match="at least one"):
        TokenizedTexts.concat([])


@pytest.mark.parametrize("fixture", ["pair", "pair_unnormalized"])
@pytest.mark.parametrize("normalize", [False, True])
def test_truncate_embeddings_is_encodes_output_rule(request, fixture, normalize):
    _, enc = request.getfixturevalue(fixture)
    raw = enc.encode_tokenized(enc.tokenize(TEXTS))
    for dim in (None, 8, 10_000):
        assert np.array_equal(
            enc.truncate_embeddings(raw, dim, normalize),
            enc.encode(TEXTS, truncate_dim=dim, normalize_embeddings=normalize),
        )


def test_public_halves_reject_bad_arguments(pair):
    _, enc = pair
    with pytest.raises(InputError, match="sentences\\[1\\] is int"):
        enc.tokenize(["a", 1])
    with pytest.raises(InputError, match="TokenizedTexts"):
        enc.encode_tokenized([[101, 102]])
    with pytest.raises(InputError, match="batch_size"):
        enc.encode_tokenized(enc.tokenize("a"), batch_size=0)
    with pytest.raises(InputError, match="truncate_dim"):
        enc.truncate_embeddings(np.zeros((1, 4), np.float32), 0)


@pytest.mark.parametrize("which", ["encoder", "cross"])
def test_max_seq_length_is_one_checked_property(tiny_bert, tiny_cross, which):
    """Encoder, CrossEncoder (and the sparse and multi-vector encoders) share one definition."""
    from embedrt import CrossEncoder
    from embedrt.runtime.session import MaxSeqLength

    if which == "encoder":
        model = Encoder(tiny_bert[1], device="cpu")
    else:
        model = CrossEncoder(tiny_cross[1], device="cpu")
    assert type(model).max_seq_length is MaxSeqLength.max_seq_length
    limit = model.max_seq_length
    model.max_seq_length = 5
    assert model.max_seq_length == model.tokenizer.max_seq_length == 5
    for bad in (0, limit + 1, True, 5.0, "8"):
        with pytest.raises(InputError, match=rf"max_seq_length must be an int in \[1, {limit}\]"):
            model.max_seq_length = bad
    assert model.max_seq_length == 5
    model.max_seq_length = limit


def _named(fn) -> set[str]:
    skip = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    return {n for n, p in inspect.signature(fn).parameters.items() if p.kind not in skip} - {"self"}


def _signature_pairs():
    import sentence_transformers as st

    import embedrt

    # (ours, sentence-transformers', what ours forwards its **kwargs to)
    return [
        (embedrt.Encoder.encode, st.SentenceTransformer.encode, None),
        (embedrt.Encoder.encode_query, st.SentenceTransformer.encode_query, embedrt.Encoder.encode),
        (embedrt.Encoder.encode_document, st.SentenceTransformer.encode_document, embedrt.Encoder.encode),
        (embedrt.Encoder.similarity, st.SentenceTransformer.similarity, None),
        (embedrt.Encoder.similarity_pairwise, st.SentenceTransformer.similarity_pairwise, None),
        (embedrt.CrossEncoder.predict, st.CrossEncoder.predict, None),
        (embedrt.CrossEncoder.rank, st.CrossEncoder.rank, None),
        (embedrt.SparseEncoder.encode, st.SparseEncoder.encode, None),
        (embedrt.SparseEncoder.encode_query, st.SparseEncoder.encode_query, embedrt.SparseEncoder.encode),
        (
            embedrt.SparseEncoder.encode_document,
            st.SparseEncoder.encode_document,
            embedrt.SparseEncoder.encode,
        ),
        (embedrt.SparseEncoder.decode, st.SparseEncoder.decode, None),
        (embedrt.SparseEncoder.similarity, st.SparseEncoder.similarity, None),
    ]


@pytest.mark.parametrize("index", range(12))
def test_every_sentence_transformers_argument_name_is_accepted(index):
    """A call written for sentence-transformers, with its keyword names, reaches embedrt's method: each of
    its named parameters is one of ours, the ``inputs=`` alias (sentence-transformers 5.7 renamed
    ``sentences``), or one the method's ``**kwargs`` forward to. What a name may hold is tested elsewhere."""
    ours, theirs, forwards_to = _signature_pairs()[index]
    accepted = _named(ours) | (_named(forwards_to) if forwards_to is not None else set())
    if hasattr(ours, "__wrapped__"):
        accepted.add("inputs")
    missing = sorted(_named(theirs) - accepted)
    assert not missing, f"{theirs.__qualname__}: {missing}"


def test_inputs_is_the_texts_and_pool_is_refused(pair):
    _, enc = pair
    np.testing.assert_array_equal(enc.encode(inputs=["x y"]), enc.encode(["x y"]))
    np.testing.assert_array_equal(enc.encode_query(inputs="x"), enc.encode_query("x"))
    with pytest.raises(InputError, match="as sentences or as inputs, not both"):
        enc.encode(["a"], inputs=["b"])
    for kw in ({"pool": {"input": None}}, {"chunk_size": 8}):
        with pytest.raises(InputError, match="multi-process encoding"):
            enc.encode(["a"], **kw)
