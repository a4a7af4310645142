"""Seeded random arguments to the public methods: every call either works or raises an ``EmbedrtError``
(``InputError`` and the rest); no TypeError, IndexError or numpy error leaks out of embedrt's own code."""

from __future__ import annotations

import inspect
import random

import numpy as np
import pytest

import embedrt
from embedrt import CrossEncoder, EmbedrtError, Encoder

ODD = [
    None, True, False, 0, -1, 1, 3, 10**12, 2.5, float("nan"), "", "x", "float32", "int8", "binary", "chunk",
    "truncate", "query", "sentence_embedding", "token_embeddings", [], ["a"], {}, np.int64(2), b"ab", "cpu",
    "cuda", "sigmoid",
]  # fmt: skip
TEXTS = ["a text", ["a", "b"], [], "", [""], ["a" * 3000], [None], ("a", "b"), ["a", 1], 5, None, {"a": 1}]
PAIRS = [[("a", "b")], ("a", "b"), [["a", "b"]], [("a",)], [], ["ab"], [("a", None)], "ab", [[1, 2]], None]


def _calls(fn, args_choices, names, n, seed, pool=ODD):
    """``n`` calls of ``fn``: positional arguments drawn from ``args_choices``, each keyword of ``names``
    drawn from ``pool`` three times in ten; the errors that are not embedrt's, by message."""
    rnd = random.Random(seed)
    leaks = {}
    for _ in range(n):
        kwargs = {k: rnd.choice(pool) for k in names if rnd.random() < 0.3}
        args = [rnd.choice(c) for c in args_choices]
        try:
            fn(*args, **kwargs)
        except EmbedrtError:
            continue
        except Exception as e:  # noqa: BLE001 - what the test looks for
            leaks.setdefault(f"{type(e).__name__}: {str(e)[:100]}", (args, kwargs))
    return leaks


def _names(fn, skip=()):
    return [
        n
        for n, p in inspect.signature(fn).parameters.items()
        if n not in ("self", *skip) and p.kind != p.VAR_KEYWORD
    ]


def test_encoder_encode(tiny_bert):
    enc = Encoder(tiny_bert[1], device="cpu")
    leaks = _calls(enc.encode, [TEXTS], [*_names(Encoder.encode, ("sentences",)), "inputs"], 600, 1)
    assert not leaks, leaks


def test_cross_encoder_predict_and_rank(tiny_cross):
    ce = CrossEncoder(tiny_cross[1], device="cpu")
    leaks = _calls(ce.predict, [PAIRS], _names(CrossEncoder.predict, ("inputs",)), 400, 2)
    docs = [["d1", "d2"], [], "d", [None], np.array(["a"]), [{"text": "a"}]]
    leaks |= _calls(
        ce.rank, [["q", "", None, 5], docs], _names(CrossEncoder.rank, ("query", "documents")), 400, 3
    )
    assert not leaks, leaks


@pytest.mark.parametrize(
    "name", ["semantic_search", "paraphrase_mining_embeddings", "community_detection", "quantize_embeddings",
             "cos_sim", "dot_score", "normalize"],
)  # fmt: skip
def test_util_functions(name):
    fn = getattr(embedrt, name)
    e = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    arrays = [
        e,
        e[:2],
        e[:, :3],
        np.zeros((0, 8), np.float32),
        np.zeros((2, 2, 8)),
        [[1.0] * 8],
        "x",
        None,
        {},
    ]
    params = list(inspect.signature(fn).parameters.values())
    required = [arrays for p in params if p.default is inspect.Parameter.empty]
    # NOTE: not show_progress_bar: an array is no flag (its truth value is numpy's error, as anywhere)
    optional = [
        p.name for p in params if p.default is not inspect.Parameter.empty and p.name != "show_progress_bar"
    ]
    leaks = _calls(fn, required, optional, 300, 4, pool=ODD + arrays)
    assert not leaks, leaks
