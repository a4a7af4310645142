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
    dict(arch="roberta", normalize=False),
]


@pytest.fixture(scope="module", params=ARCHS, ids=lambda p: p["arch"])
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
        assert np.abs(one - ref).max() <= 1e-5
    assert len(ours.encode(words(300))) <= ours.max_seq_length


def test_batch_invariance(trio):
    _, ours, _ = trio
    batched = ours.encode(TEXTS, batch_size=len(TEXTS))
    same(ours.encode(TEXTS, batch_size=1), batched, atol=1e-6)
    same([ours.encode(t) for t in TEXTS], batched, atol=1e-6)


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
