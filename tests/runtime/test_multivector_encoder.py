"""embedrt.MultiVectorEncoder against sentence-transformers' MultiVectorEncoder on tiny random models."""

from __future__ import annotations

import string

import numpy as np
import pytest

from embedrt import ArtifactError, InputError, MultiVectorEncoder, SparseEncoder, export_model
from embedrt.export.verify import probe_texts, words

TEXTS = probe_texts() + [words(80), "who wrote the theory of relativity?"]
ARCHS = [
    dict(
        arch="bert",
        prompts={"query": "query: ", "document": "passage: "},
        skiplist_words=list(string.punctuation),
        query_length=12,
        document_length=20,
    ),
    # ColBERT query expansion: every query exactly 16 tokens, the [MASK] fill not attended (classic ColBERT)
    dict(arch="roberta", normalize=False, query_expansion={"strategy": "fixed", "length": 16}),
    # at least 10 tokens, attended, longer queries kept up to query_length; documents keep only an allowlist
    dict(
        arch="xlm-roberta",
        query_expansion={"strategy": "min", "attend": True, "length": 10},
        query_length=20,
        keep_only_tokens=["▁the", "a", "e", "o", "s"],
    ),
    # the mask before Normalize: how sentence-transformers lays out PyLate and Stanford ColBERT checkpoints
    dict(arch="bert", mask_before_normalize=True, skiplist_words=list(string.punctuation), seed=2),
]


@pytest.fixture(
    scope="module",
    params=ARCHS,
    ids=lambda p: p["arch"] + ("-mask-first" if p.get("mask_before_normalize") else ""),
)
def trio(request, tmp_path_factory):
    from sentence_transformers import MultiVectorEncoder as STMulti

    from tiny_models import build_tiny_multivector

    base = tmp_path_factory.mktemp("multi")
    st_dir = build_tiny_multivector(base / "st", **request.param)
    export_model(str(st_dir), base / "export")
    return STMulti(str(st_dir), device="cpu"), MultiVectorEncoder(base / "export", device="cpu"), base


def same(ours, ref, atol=1e-5):
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref, strict=True):
        b = np.asarray(b)
        assert a.shape == b.shape and a.dtype == np.float32
        if a.size:
            assert np.abs(a - b).max() <= atol


@pytest.mark.parametrize("fn", ["encode", "encode_query", "encode_document"])
def test_ragged_outputs_match(trio, fn):
    st, ours, _ = trio
    same(getattr(ours, fn)(TEXTS), getattr(st, fn)(TEXTS, convert_to_numpy=True))
    same(
        getattr(ours, fn)(TEXTS, normalize_embeddings=True),
        getattr(st, fn)(TEXTS, convert_to_numpy=True, normalize_embeddings=True),
    )


def test_lengths_prefixes_and_skiplist(trio):
    st, ours, _ = trio
    if not st.prompts.get("query"):
        pytest.skip("the model without prompts")
    q = ours.encode_query(words(80))
    d = ours.encode_document(words(80))
    assert len(q) <= 12 < len(d) <= 20  # query_length / document_length, not max_seq_length
    plain = ours.encode("a, b. c!")
    doc = ours.encode_document("a, b. c!", prompt="")
    # the skiplist drops punctuation from documents only: [CLS] a b c [SEP] against all 8 tokens
    assert (len(doc), len(ours.encode_query("a, b. c!", prompt=""))) == (5, 8)
    assert len(plain) == len(st.encode("a, b. c!"))


def test_single_empty_and_beyond_window(trio):
    st, ours, _ = trio
    for text in ("", "hello", words(300)):
        one = ours.encode(text)
        ref = st.encode(text, convert_to_numpy=True)
        assert one.ndim == 2 and one.shape == ref.shape
        same([one], [ref])
    assert len(ours.encode(words(300))) <= ours.max_seq_length


@pytest.mark.parametrize("fn", ["encode", "encode_query", "encode_document"])
def test_batch_invariance(trio, fn):
    _, ours, _ = trio
    encode = getattr(ours, fn)
    batched = encode(TEXTS, batch_size=len(TEXTS))
    same(encode(TEXTS, batch_size=1), batched, atol=1e-6)
    same([encode(t) for t in TEXTS], batched, atol=1e-6)


def test_query_expansion(trio, tmp_path):
    st, ours, base = trio
    qe = ours.query_expansion
    if qe is None:
        assert st[0].query_expansion is None
        pytest.skip("a model without query expansion")
    want = st[0].query_expansion
    assert (qe.strategy, qe.attend, qe.length) == (want["strategy"], want["attend"], want["length"])
    assert qe.token_id == st.tokenizer.mask_token_id
    short, long = "hello", words(80)
    assert len(ours.encode_query(short)) == qe.length  # filled up to the expansion length, every fill scored
    assert len(ours.encode_document(short)) < qe.length  # documents are never expanded
    n_long = len(ours.encode_query(long))
    assert n_long == qe.length if qe.strategy == "fixed" else n_long == ours.query_length > qe.length
    # the fill token and whether the encoder attends to it both change the vectors sentence-transformers gives
    ref = st.encode_query([short], convert_to_numpy=True)
    same(ours.encode_query([short]), ref)
    for change in (
        lambda m: m["query_expansion"].__setitem__("attend", not qe.attend),
        lambda m: m["query_expansion"].__setitem__("token_id", st.tokenizer.pad_token_id),
    ):
        edited = _copy_with(base / "export", tmp_path / str(id(change)), change)
        got = MultiVectorEncoder(edited, device="cpu").encode_query([short])
        assert got[0].shape == ref[0].shape and np.abs(got[0] - ref[0]).max() > 1e-3


def test_document_allowlist(trio):
    st, ours, _ = trio
    mask = next(m for m in st if type(m).__name__ == "MultiVectorMask")
    if not mask.keep_only_token_ids:
        pytest.skip("a model without keep_only_token_ids")
    text = "the cat sat on the mat"
    ids = ours.tokenizer.encode_ids([text])[0]
    kept = sum(i in mask.keep_only_token_ids for i in ids)
    assert 0 < kept < len(ids)
    assert len(ours.encode_document(text)) == len(ours.encode(text)) == kept
    assert len(ours.encode_query(text)) >= len(ids)  # queries are not filtered


def test_similarity_and_task_errors_are_typed(trio):
    _, ours, _ = trio
    q = ours.encode_query(["a query"])
    width = q[0].shape[1]
    for bad in (None, "text", [["a", "b"]], [np.zeros((3, width + 1))], [np.zeros((2, 2, 2))]):
        with pytest.raises(InputError):
            ours.similarity(q, bad)
    assert ours.similarity(q, [np.zeros((0, width), np.float32)]).shape == (1, 1)  # a document with no tokens
    with pytest.raises(InputError, match="encode_query encodes with task='query'"):
        ours.encode_query("x", task="document")
    with pytest.raises(InputError, match="encode_document encodes with task='document'"):
        ours.encode_document("x", task="query")
    for a, b in zip(ours.encode_query(["x"], task="query"), ours.encode_query(["x"]), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fn_name", ["maxsim", "meanmaxsim"])
def test_maxsim_matches(trio, fn_name):
    st, ours, _ = trio
    q_st = st.encode_query(TEXTS[:6])
    d_st = st.encode_document(TEXTS[6:])
    st.similarity_fn_name = fn_name
    ours.similarity_fn_name = fn_name
    try:
        ref = st.similarity(q_st, d_st).numpy()
        got = ours.similarity(ours.encode_query(TEXTS[:6]), ours.encode_document(TEXTS[6:]))
    finally:
        st.similarity_fn_name = ours.similarity_fn_name = "maxsim"
    assert got.shape == ref.shape == (6, len(TEXTS) - 6)
    assert np.abs(got - ref).max() <= 1e-4


def test_typed_errors(trio):
    _, ours, base = trio
    for bad in (None, b"x", [1], [["a"]]):
        with pytest.raises(InputError):
            ours.encode(bad)
    for kw in (
        dict(task="passage"),
        dict(output_value="sentence_embedding"),
        dict(batch_size=0),
        dict(prompt_name="nope"),
        dict(prompt_name=["query"]),
        dict(convert_to_tensor=True),
    ):
        with pytest.raises(InputError):
            ours.encode("x", **kw)
    with pytest.raises(ArtifactError, match="multi-vector"):
        SparseEncoder(base / "export")


def _copy_with(export_dir, tmp_path, change):
    import json
    import shutil

    target = tmp_path / "edited"
    shutil.copytree(export_dir, target)
    path = target / "embedrt.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))
    return target


def _qe(**change):
    qe = {"strategy": "min", "attend": False, "length": 8, "token_id": 4, **change}
    return {k: v for k, v in qe.items() if v is not None}


def test_multivector_manifest_is_typed(trio):
    from embedrt.manifest import MULTI_VECTOR, read_manifest

    st, ours, base = trio
    m = read_manifest(base / "export")
    assert m.task == MULTI_VECTOR and m.tokenizer.sha256 and m.position_limit is not None
    info = m.multi_vector
    assert info.query_length == ours.query_length and info.document_length == ours.document_length
    assert set(info.post_modules) <= {"Dense", "Normalize"}
    assert m.outputs["token_embeddings"] == ("batch", "sequence", m.dim)
    assert m.outputs["token_mask"] == ("batch", "sequence")


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda m: m.__setitem__("query_length", 0), r"field 'query_length' must be an int >= 1"),
        (lambda m: m.__setitem__("document_length", 10**6), r"field 'document_length' is 1000000, more than"),
        (lambda m: m.__setitem__("skiplist_ids", [1, -2]), r"field 'skiplist_ids' must be a list of ints"),
        (lambda m: m.__setitem__("skiplist_tasks", ["passage"]), r"field 'skiplist_tasks' has \['passage'\]"),
        (lambda m: m.__setitem__("post_modules", ["Pooling"]), r"field 'post_modules' has \['Pooling'\]"),
        (lambda m: m.__setitem__("keep_only_token_ids", [-1]), r"field 'keep_only_token_ids' must be a list"),
        (lambda m: m.__setitem__("query_expansion", [32]), r"field 'query_expansion' must be a JSON object"),
        (
            lambda m: m.__setitem__("query_expansion", _qe(strategy="max")),
            r"field 'query_expansion.strategy' must be one of \['fixed', 'min'\]",
        ),
        (
            lambda m: m.__setitem__("query_expansion", _qe(attend=1)),
            r"field 'query_expansion.attend' must be true or false",
        ),
        (
            lambda m: m.__setitem__("query_expansion", _qe(length=0)),
            r"field 'query_expansion.length' must be an int >= 1",
        ),
        (
            lambda m: m.__setitem__("query_expansion", _qe(length=10**6)),
            r"field 'query_expansion.length' is 1000000, more than the graph's position limit",
        ),
        (
            lambda m: m.__setitem__("query_expansion", _qe(token_id=None)),
            r"field 'query_expansion.token_id' is missing",
        ),
        (lambda m: m["outputs"].pop("token_mask"), r"field 'outputs.token_mask' is missing"),
        (
            lambda m: m["outputs"].__setitem__("token_embeddings", ["batch", 4]),
            r"field 'outputs.token_embeddings' must have shape",
        ),
        (
            lambda m: m.__setitem__("similarity_fn_name", "cosine"),
            r"field 'similarity_fn_name' must be one of",
        ),
        (
            lambda m: m["tokenizer"].__setitem__("file", "/etc/passwd"),
            r"field 'tokenizer.file' is an absolute",
        ),
    ],
)
def test_bad_multivector_manifest_fields_are_named(trio, tmp_path, change, match):
    _, _, base = trio
    with pytest.raises(ArtifactError, match=match):
        MultiVectorEncoder(_copy_with(base / "export", tmp_path, change), device="cpu")


def test_graph_is_checked_against_the_declared_dim(trio, tmp_path):
    _, ours, base = trio

    def change(m):
        m["dim"] = ours.get_sentence_embedding_dimension() + 1
        m["outputs"]["token_embeddings"][2] = m["dim"]

    with pytest.raises(ArtifactError, match="outputs.token_embeddings"):
        MultiVectorEncoder(_copy_with(base / "export", tmp_path, change), device="cpu")
