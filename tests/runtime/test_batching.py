"""The split of texts into graph runs (runtime.batching): exact, bounded, and invisible in the vectors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from embedrt import Encoder
from embedrt.runtime.batching import RUN_COST_TOKENS, length_sorted_batches


def cost(runs, lengths, run_cost):
    return sum(run_cost + len(r) * int(lengths[r].max()) for r in runs)


def brute_force(lengths, batch_size, budget, run_cost):
    """The cheapest split of the length-sorted texts into consecutive runs, by trying every one."""
    order = np.argsort(-lengths, kind="stable")
    n = len(order)
    best = None
    for cuts in itertools.product([False, True], repeat=n - 1):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [n]
        runs = [order[a:b] for a, b in itertools.pairwise(bounds)]
        if any(len(r) > batch_size for r in runs):
            continue
        if budget is not None and any(len(r) > 1 and len(r) * lengths[r].max() > budget for r in runs):
            continue
        c = cost(runs, lengths, run_cost)
        best = c if best is None else min(best, c)
    return best


def check_partition(runs, n, batch_size, budget, lengths):
    flat = np.concatenate(runs)
    assert sorted(flat.tolist()) == list(range(n))
    for r in runs:
        assert 1 <= len(r) <= batch_size
        if budget is not None and len(r) > 1:
            assert len(r) * lengths[r].max() <= budget


@pytest.mark.parametrize("seed", range(12))
def test_split_is_the_cheapest(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 11))
    lengths = rng.integers(1, 120, n)
    batch_size = int(rng.integers(1, 8))
    budget = None if seed % 3 == 0 else int(rng.integers(60, 400))
    run_cost = int(rng.choice([0, 8, RUN_COST_TOKENS, 200]))
    runs = length_sorted_batches(lengths, batch_size, budget, run_cost)
    check_partition(runs, n, batch_size, budget, lengths)
    assert cost(runs, lengths, run_cost) == brute_force(lengths, batch_size, budget, run_cost)


def test_mixed_lengths_split_and_equal_lengths_fill():
    lengths = np.array([20, 256, 18, 22, 30, 25, 200, 19])
    runs = length_sorted_batches(lengths, 32, None)
    assert [len(r) for r in runs] == [1, 1, 2, 4]  # 256 | 200 | 30 25 | 22 20 19 18: 604 padded, not 2048
    assert [lengths[r].tolist() for r in runs[:2]] == [[256], [200]]
    one_run = RUN_COST_TOKENS + len(lengths) * lengths.max()
    assert cost(runs, lengths, RUN_COST_TOKENS) < 0.4 * one_run
    # one length: full runs of batch_size from the start, the remainder last (as the greedy split)
    assert [len(r) for r in length_sorted_batches(np.full(104, 20), 32, None)] == [32, 32, 32, 8]
    assert [len(r) for r in length_sorted_batches(np.full(10, 20), 32, None)] == [10]
    # a large fixed cost keeps texts together; none at all splits at every length that saves a token
    assert len(length_sorted_batches(lengths, 32, None, run_cost=10_000)) == 1
    assert len(length_sorted_batches(np.array([9, 8, 7]), 32, None, run_cost=0)) == 3


def test_budget_bounds_every_run_but_a_lone_row():
    lengths = np.array([5000, 300, 300, 300, 40, 40, 40, 40, 40])
    runs = length_sorted_batches(lengths, 32, 600)
    check_partition(runs, len(lengths), 32, 600, lengths)
    assert [len(r) for r in runs][:1] == [1]  # 5000 tokens: alone, over the budget
    assert length_sorted_batches(np.array([], dtype=np.int64), 32, 100) == []


def test_stable_order_within_a_length():
    lengths = np.array([3, 7, 3, 7, 3])
    runs = length_sorted_batches(lengths, 2, None, run_cost=1000)
    assert [r.tolist() for r in runs] == [[1, 3], [0, 2], [4]]


@pytest.fixture(scope="module")
def native_encoders(tmp_path_factory):
    import os

    from embedrt import export_model
    from embedrt.runtime.native import library_path
    from tiny_models import build_tiny_st

    if library_path() is None:
        if os.environ.get("EMBEDRT_REQUIRE_OPS") == "1":
            pytest.fail("libembedrt_ops.so is not built; EMBEDRT_REQUIRE_OPS=1 makes this a failure")
        pytest.skip("libembedrt_ops.so is not built")
    base = tmp_path_factory.mktemp("split")
    st_dir = build_tiny_st(base / "st", arch="bert", pooling="mean", normalize=True)
    export_model(str(st_dir), base / "export", variants=["fp32", "int8"])
    return {v: Encoder(base / "export", device="cpu", variant=v) for v in ("fp32", "int8")}


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_split_leaves_vectors_unchanged_bit_for_bit(native_encoders, variant):
    """The native graphs are batch-invariant: a text's vector is the same bits whichever run it shares."""
    enc = native_encoders[variant]
    assert enc.native, enc.graph_status
    rng = np.random.default_rng(0)
    words = ["the", "index", "of", "a", "model", "runs", "passage", "query", "fast", "tokens"]
    texts = [" ".join(rng.choice(words, int(rng.integers(1, 20)))) for _ in range(40)]
    tokens = enc.tokenize(texts)
    split = length_sorted_batches(tokens.lengths, 32, enc.max_batch_tokens)
    assert len(split) > 2  # mixed lengths: more runs than ceil(40 / 32)
    batched = enc.encode(texts, batch_size=32)
    alone = np.stack([enc.encode(t) for t in texts])
    one_run = enc._run(*enc.tokenizer.pad(tokens.ids), None)  # all 40 padded to the longest, one run
    assert np.array_equal(batched, alone)
    assert np.array_equal(batched, one_run)
