"""embedrt.CrossEncoder against sentence_transformers.CrossEncoder: predict, rank, shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest

from embedrt import CrossEncoder, InputError
from embedrt.export.cross import probe_pairs

MODELS = [("bert", 1), ("bert", 3), ("roberta", 1), ("roberta", 3)]
ATOL = 1e-5
QUERY = "who wrote the theory of relativity?"
DOCS = [
    "Albert Einstein published the theory of relativity in 1905.",
    "",
    "a man is playing a guitar on stage",
    "the theory " * 80,
    "日本語のテキストと中文句子 café naïve 🍕",
    "who wrote the theory of relativity?",
    "[SEP] [CLS] <s> </s>",
    "the model",
]


@pytest.fixture(scope="module", params=MODELS, ids=[f"{a}-{n}" for a, n in MODELS])
def pair(request, cross_factory):
    from sentence_transformers import CrossEncoder as Reference

    arch, num_labels = request.param
    model_dir, export_dir = cross_factory(arch=arch, num_labels=num_labels)
    return Reference(str(model_dir), device="cpu"), CrossEncoder(export_dir, device="cpu"), num_labels


@pytest.fixture(scope="module")
def pairs(pair):
    ref, _, _ = pair
    return probe_pairs(
        lambda t: len(ref.tokenizer(t, add_special_tokens=False)["input_ids"]), ref.max_seq_length
    )


def _close(ours, ref, atol=ATOL):
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    worst = float(np.abs(ours - ref).max()) if ours.size else 0.0
    assert worst <= atol, f"max abs diff {worst:.3e}"


def test_predict_matches_reference_in_mixed_batches(pair, pairs):
    ref, ours, num_labels = pair
    assert any(a == "" or b == "" for a, b in pairs) and any(not a.isascii() for a, _ in pairs)
    expected = ref.predict([list(p) for p in pairs], batch_size=5)
    got = ours.predict(pairs, batch_size=5)
    assert got.dtype == np.float32 and got.shape == (
        (len(pairs),) if num_labels == 1 else (len(pairs), num_labels)
    )
    _close(got, expected)


def test_tokenization_matches_reference_including_truncation(pair, pairs):
    ref, ours, _ = pair
    features = ref.preprocess([list(p) for p in pairs])
    ids, types = ours.tokenizer.encode_pairs(pairs)
    mask = features["attention_mask"].bool()
    assert max(len(r) for r in ids) == ours.max_seq_length == ref.max_seq_length  # some pairs were truncated
    assert ids == [row[m].tolist() for row, m in zip(features["input_ids"], mask, strict=False)]
    if "token_type_ids" in features:
        assert types == [row[m].tolist() for row, m in zip(features["token_type_ids"], mask, strict=False)]
        assert any(1 in t for t in types)  # second segment really is segment 1


def test_single_pair_shapes_and_types(pair):
    ref, ours, num_labels = pair
    for single in (
        ("hello world", "the model"),
        ["hello world", "the model"],
        np.array(["hello world", "the model"]),
    ):
        expected = ref.predict(single)
        got = ours.predict(single)
        assert np.shape(got) == np.shape(expected) == (() if num_labels == 1 else (num_labels,))
        assert isinstance(got, (np.floating, np.ndarray))
        _close(got, expected)
    listed = ours.predict([("a", "b"), ("c", "d")], convert_to_numpy=False)
    assert isinstance(listed, list) and len(listed) == 2
    _close(np.stack(listed), ref.predict([["a", "b"], ["c", "d"]]))


def test_batch_invariance(pair, pairs):
    _, ours, _ = pair
    batched = ours.predict(pairs, batch_size=len(pairs))
    singles = np.stack([ours.predict(p) for p in pairs])
    assert float(np.abs(batched - singles).max()) <= 1e-6


@pytest.mark.parametrize("name", ["identity", "sigmoid", "tanh", "softmax", "torch-instance", "torch-path"])
def test_activation_fn_override(pair, pairs, name):
    import torch

    ref, ours, _ = pair
    torch_fn = {
        "identity": torch.nn.Identity(),
        "sigmoid": torch.nn.Sigmoid(),
        "tanh": torch.nn.Tanh(),
        "softmax": torch.nn.Softmax(dim=-1),
        "torch-instance": torch.nn.Tanh(),
        "torch-path": torch.nn.Sigmoid(),
    }[name]
    ours_fn = {"torch-instance": torch.nn.Tanh(), "torch-path": "torch.nn.modules.activation.Sigmoid"}.get(
        name, name
    )
    expected = ref.predict([list(p) for p in pairs], activation_fn=torch_fn)
    _close(ours.predict(pairs, activation_fn=ours_fn), expected)


def test_activation_fn_callable_on_numpy(pair):
    ref, ours, _ = pair
    import torch

    docs = [("a", "b"), ("hello", "world")]
    expected = ref.predict([list(p) for p in docs], activation_fn=lambda x: x * 2 + 1)
    _close(ours.predict(docs, activation_fn=lambda x: x * 2 + 1), expected)
    assert isinstance(ref.predict([["a", "b"]], activation_fn=torch.nn.Identity()), np.ndarray)


def test_apply_softmax(pair, pairs):
    ref, ours, num_labels = pair
    expected = ref.predict([list(p) for p in pairs], apply_softmax=True)
    got = ours.predict(pairs, apply_softmax=True)
    _close(got, expected)
    if num_labels > 1:
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)


def test_empty_inputs(pair):
    ref, ours, num_labels = pair
    got = ours.predict([])
    assert got.shape == ((0,) if num_labels == 1 else (0, num_labels)) and got.dtype == np.float32
    assert len(ref.predict([])) == 0
    if num_labels == 1:
        assert ours.rank(QUERY, []) == ref.rank(QUERY, []) == []


@pytest.mark.parametrize("arch", ["bert", "roberta"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"top_k": 3},
        {"return_documents": True},
        {"top_k": 0},
        {"top_k": 100, "return_documents": True, "batch_size": 3},
        {"apply_softmax": True, "convert_to_numpy": False, "device": "cpu", "top_k": 2},
    ],
)
def test_rank_matches_reference(cross_factory, arch, kwargs):
    from sentence_transformers import CrossEncoder as Reference

    model_dir, export_dir = cross_factory(arch=arch, num_labels=1)  # rank needs one label (see below)
    ref, ours = Reference(str(model_dir), device="cpu"), CrossEncoder(export_dir, device="cpu")
    expected = ref.rank(QUERY, DOCS, **kwargs)
    got = ours.rank(QUERY, DOCS, **kwargs)
    assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in expected]
    assert [r.get("text") for r in got] == [r.get("text") for r in expected]
    for g, e in zip(got, expected, strict=False):
        assert set(g) == set(e) and isinstance(g["score"], float) and isinstance(g["corpus_id"], int)
        assert abs(g["score"] - e["score"]) <= ATOL
    assert [r["score"] for r in got] == sorted((r["score"] for r in got), reverse=True)


def test_rank_ties_keep_document_order(tiny_cross):
    _, export_dir = tiny_cross
    ours = CrossEncoder(export_dir, device="cpu")
    ranked = ours.rank("q", ["same", "other", "same", "same"])
    same = [r["corpus_id"] for r in ranked if r["corpus_id"] != 1]
    assert same == [0, 2, 3]


def test_rank_checks_the_arguments_it_shares_with_predict(tiny_cross):
    ours = CrossEncoder(tiny_cross[1], device="cpu")
    for docs in (DOCS, []):  # NOTE: checked even with nothing to rank
        for kwargs, match in (
            ({"prompt_name": "query"}, "prompts are not supported"),
            ({"prompt": "q: "}, "prompts are not supported"),
            ({"convert_to_tensor": True}, "needs torch"),
            ({"device": "cuda"}, "this CrossEncoder runs on 'cpu'"),
            ({"device": "tpu"}, "valid choices"),
        ):
            with pytest.raises(InputError, match=match):
                ours.rank(QUERY, docs, **kwargs)
    assert ours.rank(QUERY, []) == []
    with pytest.raises(InputError, match="this CrossEncoder runs on 'cpu'"):
        ours.predict([("a", "b")], device="cuda")


def test_rank_needs_one_label(cross_factory):
    _, export_dir = cross_factory(arch="bert", num_labels=3)
    with pytest.raises(InputError, match=r"num_labels=1 \(this one has 3"):
        CrossEncoder(export_dir, device="cpu").rank(QUERY, DOCS)


@pytest.mark.parametrize(
    "bad,match",
    [
        (None, "inputs is None"),
        ("just a string", "single str, not a pair"),
        ([("a",)], r"inputs\[0\] has 1 elements, expected a pair of 2"),
        ([("a", "b", "c")], r"inputs\[0\] has 3 elements"),
        ([("a", "b"), ("c", None)], r"inputs\[1\]\[1\] is NoneType, expected str"),
        ([("a", "b"), "c"], r"inputs\[1\] is str, expected a pair"),
        (("a", 3), r"inputs\[1\] is int, expected str"),
        (["a", "b", "c"], "inputs has 3 elements"),
        (42, "got int"),
        ({"a": "b"}, "got dict"),
    ],
)
def test_bad_pairs_are_typed_errors(tiny_cross, bad, match):
    ours = CrossEncoder(tiny_cross[1], device="cpu")
    with pytest.raises(InputError, match=match):
        ours.predict(bad)


def test_bad_arguments_are_typed_errors(tiny_cross):
    ours = CrossEncoder(tiny_cross[1], device="cpu")
    with pytest.raises(InputError, match="valid choices: .*'identity', 'sigmoid'.*torch.nn.Sigmoid"):
        ours.predict([("a", "b")], activation_fn="gelu")
    with pytest.raises(InputError, match="batch_size must be a positive int"):
        ours.predict([("a", "b")], batch_size=0)
    with pytest.raises(InputError, match="prompts are not supported"):
        ours.predict([("a", "b")], prompt="query: ")
    with pytest.raises(InputError, match="convert_to_tensor=True needs torch"):
        ours.predict([("a", "b")], convert_to_tensor=True)
    with pytest.raises(InputError, match="documents must be a list of str, got None"):
        ours.rank("q", None)
    with pytest.raises(InputError, match="documents must be a list of str, got str"):
        ours.rank("q", "a single document")
    with pytest.raises(InputError, match=r"documents\[1\] is NoneType"):
        ours.rank("q", ["a", None])
    with pytest.raises(InputError, match="query must be a str"):
        ours.rank(None, ["a"])
    with pytest.raises(InputError, match="top_k must be None or a non-negative int"):
        ours.rank("q", ["a"], top_k=-1)
    with pytest.raises(InputError, match="max_seq_length must be an int in"):
        ours.max_seq_length = 10_000
    with pytest.raises(InputError, match="unknown variant 'int8'; this export has: \\['fp32'\\]"):
        CrossEncoder(tiny_cross[1], device="cpu", variant="int8")
    with pytest.raises(InputError, match="unknown device 'tpu'; valid choices"):
        CrossEncoder(tiny_cross[1], device="tpu")


def test_max_seq_length_setter_truncates_like_reference(tiny_cross):
    from sentence_transformers import CrossEncoder as Reference

    model_dir, export_dir = tiny_cross
    ref = Reference(str(model_dir), device="cpu")
    ours = CrossEncoder(export_dir, device="cpu")
    ref.max_seq_length = ours.max_seq_length = 10
    docs = [("the model reads every token", "once and pools them into one vector"), ("a", "b")]
    _close(ours.predict(docs), ref.predict([list(p) for p in docs]))
    assert max(len(r) for r in ours.tokenizer.encode_pairs(docs)[0]) == 10


def test_max_batch_tokens_and_progress_bar(tiny_cross):
    ours = CrossEncoder(tiny_cross[1], device="cpu")
    docs = [("query", d) for d in DOCS]
    _close(ours.predict(docs, max_batch_tokens=30, show_progress_bar=True), ours.predict(docs))
