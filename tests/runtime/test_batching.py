"""The split of texts into graph runs (runtime.batching): exact, bounded, and invisible in the vectors."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from embedrt import Encoder
from embedrt.errors import ArtifactError, InputError
from embedrt.runtime.batching import RUN_COST_TOKENS, length_sorted_batches, spread_runs
from embedrt.runtime.util import available_cores


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


class _CountingSession:
    """Wraps a session: counts run() calls, and makes the first two wait for each other, so that a test
    fails (BrokenBarrierError) unless two runs are in flight at once."""

    def __init__(self, session, barrier):
        self.session, self.barrier, self.calls, self.lock = session, barrier, 0, threading.Lock()
        self.threads: list[threading.Thread] = []

    def run(self, *args, **kwargs):
        with self.lock:
            self.calls += 1
            first_two = self.calls <= 2
            self.threads.append(threading.current_thread())  # held: a thread object is never recycled
        if first_two and self.barrier is not None:
            self.barrier.wait()
        return self.session.run(*args, **kwargs)


@pytest.mark.parametrize("n, workers", [(1, 2), (2, 2), (3, 2), (4, 2), (5, 3), (7, 4), (40, 2)])
def test_spread_runs_gives_each_worker_a_run_and_keeps_every_text_once(n, workers):
    lengths = np.random.default_rng(n).integers(3, 60, n)
    runs = length_sorted_batches(lengths, 32, 2048)
    spread = spread_runs(runs, lengths, workers)
    assert len(spread) == max(len(runs), min(workers, n))
    assert sorted(np.concatenate(spread).tolist()) == list(range(n))  # every text once
    for r in spread:  # each part stays longest first
        assert len(r) > 0 and np.all(np.diff(lengths[r]) <= 0)
    if len(runs) >= workers:
        assert all(a is b for a, b in zip(spread, runs, strict=True))  # nothing to spread: the same runs


def test_a_few_texts_go_one_run_per_worker(native_encoders):
    """A call of 2-4 texts that the split would put in one run runs as two, side by side, with the bits of
    the serial encoder."""
    path = native_encoders["int8"].path
    par = Encoder(path, device="cpu", variant="int8", parallel_runs=2)
    serial = Encoder(path, device="cpu", variant="int8", parallel_runs=1)
    texts = ["the index of a model", "the index of a passage", "a query"]
    assert len(length_sorted_batches(par.tokenize(texts).lengths, 32, par.max_batch_tokens)) == 1
    spy = _CountingSession(par._parallel(), threading.Barrier(2, timeout=10))
    par._parallel_session = spy
    assert np.array_equal(par.encode(texts), serial.encode(texts))
    assert spy.calls == 2


def _mixed_texts(n=40, seed=0):
    rng = np.random.default_rng(seed)
    words = ["the", "index", "of", "a", "model", "runs", "passage", "query", "fast", "tokens"]
    return [" ".join(rng.choice(words, int(rng.integers(1, 20)))) for _ in range(n)]


def test_parallel_runs_default_int8_only_and_validated(native_encoders):
    path = native_encoders["int8"].path
    cores = available_cores()
    assert Encoder(path, device="cpu", variant="int8").parallel_runs == (cores if cores > 1 else 1)
    assert Encoder(path, device="cpu", variant="int8", intra_op_threads=1).parallel_runs == 1
    assert Encoder(path, device="cpu", variant="fp32").parallel_runs == 1
    assert Encoder(path, device="cpu", variant="fp32", parallel_runs=2).parallel_runs == 2
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(InputError, match="parallel_runs must be a positive int"):
            Encoder(path, device="cpu", variant="int8", parallel_runs=bad)


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_parallel_runs_overlap_and_give_the_same_bits(native_encoders, variant):
    """Two runs of one encode call are in flight at once on the second session, the vectors equal the serial
    ones bit for bit, and a single text runs on the first session."""
    path = native_encoders[variant].path
    texts = _mixed_texts()
    serial = Encoder(path, device="cpu", variant=variant, parallel_runs=1)
    par = Encoder(path, device="cpu", variant=variant, parallel_runs=2)
    par.encode(texts[0])
    assert par._parallel_session is None  # a call of one run does not open the second session
    spy = _CountingSession(par._parallel(), threading.Barrier(2, timeout=10))
    par._parallel_session = spy
    runs = length_sorted_batches(serial.tokenize(texts).lengths, 8, serial.max_batch_tokens)
    got = par.encode(texts, batch_size=8)
    assert spy.calls == len(runs) > 2
    assert np.array_equal(got, serial.encode(texts, batch_size=8))
    for _ in range(3):  # the same two threads run every call's runs: none is started per call
        assert np.array_equal(par.encode(texts, batch_size=8), got)
    assert spy.calls == 4 * len(runs) and len({id(t) for t in spy.threads}) == 2
    main = _CountingSession(par._session, None)
    par._session = main
    assert np.array_equal(par.encode(texts[3]), serial.encode(texts[3]))
    assert main.calls == 1 and spy.calls == 4 * len(runs)


def test_a_single_text_beside_another_call_runs_on_the_run_threads(native_encoders):
    """While another encode call runs (a server's other batch), a single text goes to the run threads and
    the second session, not to the first session's threads on top of them; the same bits either way."""
    path = native_encoders["int8"].path
    par = Encoder(path, device="cpu", variant="int8", parallel_runs=2)
    serial = Encoder(path, device="cpu", variant="int8", parallel_runs=1)
    entered, parallel_ran = threading.Event(), threading.Event()

    class HeldMain:  # the first call holds the first session until the second call has run beside it
        def __init__(self, session):
            self.session = session

        def run(self, *args, **kwargs):
            entered.set()
            assert parallel_ran.wait(10), "the second call did not run on the run threads"
            return self.session.run(*args, **kwargs)

    class SeenParallel:
        def __init__(self, session):
            self.session, self.threads = session, []

        def run(self, *args, **kwargs):
            self.threads.append(threading.current_thread().name)
            out = self.session.run(*args, **kwargs)
            parallel_ran.set()
            return out

    par._session = HeldMain(par._session)
    spy = SeenParallel(par._parallel())
    par._parallel_session = spy
    texts = ["the index of a model", "a query"]
    got: dict[int, np.ndarray] = {}
    first = threading.Thread(target=lambda: got.__setitem__(0, par.encode(texts[0])))
    first.start()
    assert entered.wait(10)
    got[1] = par.encode(texts[1])
    first.join(20)
    assert not first.is_alive()
    assert len(spy.threads) == 1 and spy.threads[0].startswith("embedrt-run")
    assert np.array_equal(got[0], serial.encode(texts[0])) and np.array_equal(got[1], serial.encode(texts[1]))
    assert par._calls == 0


def test_a_failed_parallel_run_raises_its_error(native_encoders):
    enc = Encoder(native_encoders["int8"].path, device="cpu", variant="int8", parallel_runs=2)

    class Failing:
        calls = 0

        def run(self, *args, **kwargs):
            Failing.calls += 1
            if Failing.calls == 2:
                raise RuntimeError("run 2 failed")
            return enc._session.run(*args, **kwargs)

    session = enc._parallel_session
    enc._parallel_session = Failing()
    with pytest.raises(RuntimeError, match="run 2 failed"):
        enc.encode(_mixed_texts(), batch_size=4)
    enc._parallel_session = session  # the encoder still answers, with the serial vectors
    serial = Encoder(enc.path, device="cpu", variant="int8", parallel_runs=1)
    assert np.array_equal(
        enc.encode(_mixed_texts(), batch_size=4), serial.encode(_mixed_texts(), batch_size=4)
    )


def test_parallel_session_checks_the_graph_again(native_encoders, tmp_path):
    from dataclasses import replace

    from embedrt.manifest import read_manifest
    from embedrt.runtime.session import open_graph, open_parallel_session

    path = native_encoders["int8"].path
    m = read_manifest(path)
    graph = open_graph(path, m, "int8", outputs={"sentence_embedding": int(m.dim)}, device="cpu")
    assert graph.graph_path.name == graph.status.graph
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        open_parallel_session(replace(graph, graph_sha256="0" * 64))
    assert open_parallel_session(graph).get_inputs()[0].name == "input_ids"
