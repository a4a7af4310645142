"""Request validation, the batcher and the padding split of ``embedrt serve``: pure functions, no server."""

from __future__ import annotations

import numpy as np
import pytest

from embedrt.errors import InputError
from embedrt.integrations.serve import (
    Limits,
    ServeConfig,
    decode_base64,
    encode_vector,
    parse_request,
)

LIMITS = Limits(max_inputs=4, max_text_chars=10)


def parse(body):
    return parse_request(body, LIMITS, dim=32, model_names=("m",))


@pytest.mark.parametrize(
    "body, param, match",
    [
        ({"input": []}, "input", "empty list"),
        ({"input": ["a", 3]}, "input", r"input\[1\]' is an int"),
        ({"input": ["a", None]}, "input", r"input\[1\]' is NoneType"),
        ({"input": [[1, 2]]}, "input", "token arrays are not supported"),
        ({"input": 5}, "input", "must be a string or a list"),
        ({"input": ["a"] * 5}, "input", "5 items; at most 4"),
        ({"input": ["x" * 11]}, "input", "11 characters; at most 10"),
        (
            {"input": "a", "encoding_format": "int8"},
            "encoding_format",
            r"valid choices: \['float', 'base64'\]",
        ),
        ({"input": "a", "dimensions": 0}, "dimensions", r"\[1, 32\]"),
        ({"input": "a", "dimensions": 33}, "dimensions", r"\[1, 32\]"),
        ({"input": "a", "model": "other"}, "model", r"serves 'm' \(start it with --accept-any-model"),
        ({"input": "\ud800"}, "input", r"'input\[0\]' is not valid Unicode"),
        ({}, "input", "'input' is required"),
        ([], None, "JSON object"),
    ],
)
def test_bad_requests_name_the_parameter(body, param, match):
    from embedrt.integrations.serve import RequestError

    with pytest.raises(RequestError, match=match) as err:
        parse(body)
    assert err.value.param == param
    assert err.value.body()["error"]["type"] == "invalid_request_error"


def test_good_requests():
    r = parse({"input": "hello", "model": "m"})
    assert (r.texts, r.encoding_format, r.dimensions) == (["hello"], "float", None)
    r = parse({"input": ["a", "b"], "encoding_format": "base64", "dimensions": 8})
    assert (r.texts, r.encoding_format, r.dimensions) == (["a", "b"], "base64", 8)


def test_base64_is_little_endian_float32_like_openai():
    v = np.array([1.0, -2.5, 3.25e-8], dtype=np.float32)
    s = encode_vector(v, "base64")
    assert np.array_equal(decode_base64(s), v)
    assert np.array_equal(np.frombuffer(__import__("base64").b64decode(s), dtype="<f4"), v)
    f = encode_vector(v, "float")  # the array itself: the response writes it (render_json)
    assert f.dtype == np.float32 and np.array_equal(f, v)


def test_response_json_gives_back_the_float32_bits_with_orjson_and_with_json():
    pytest.importorskip("starlette")
    import json

    from embedrt.integrations._http_app import orjson, render_json

    rng = np.random.default_rng(3)
    v = rng.standard_normal((5, 384)).astype(np.float32)
    v[0, :4] = [1e-38, -3.4e38, 0.0, 1.0 / 3.0]
    body = {"data": [{"index": i, "embedding": row} for i, row in enumerate(v[:, ::2])], "n": np.int64(5)}
    paths = [False] + ([True] if orjson is not None else [])
    for fast in paths:
        back = json.loads(render_json(body, fast=fast))
        got = np.array([d["embedding"] for d in back["data"]], dtype=np.float32)
        assert np.array_equal(got, v[:, ::2]), f"fast={fast}: not the same float32 bits"
        assert back["n"] == 5 and [d["index"] for d in back["data"]] == list(range(5))
    if orjson is not None:  # float32's shortest decimals: fewer bytes than json's float64 ones
        assert len(render_json(body)) < 0.7 * len(render_json(body, fast=False))
    with pytest.raises(TypeError, match="not JSON serializable"):
        render_json({"x": object()}, fast=False)


def test_config_check_names_the_bad_value():
    with pytest.raises(InputError, match="max_batch_size must be a positive int"):
        ServeConfig(export_dir="x", model_name="m", max_batch_size=0).check()
    with pytest.raises(InputError, match="max_queued_requests"):
        ServeConfig(export_dir="x", model_name="m", max_queued_requests=0).check()


def test_missing_ray_gives_the_install_hint(monkeypatch):
    import builtins

    from embedrt.errors import MissingDependencyError
    from embedrt.integrations import require_ray

    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(MissingDependencyError, match=r"pip install 'embedrt\[ray\]'"):
        require_ray()


def test_cli_does_not_import_ray_or_pyarrow():
    import subprocess
    import sys

    code = (
        "import sys, embedrt.cli; embedrt.cli.build_parser(); import embedrt.integrations.ray, "
        "embedrt.integrations.serve; bad = [m for m in ('ray', 'pyarrow', 'fastapi', 'starlette', "
        "'uvicorn') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_accept_any_model_and_no_model():
    from embedrt.integrations.serve import parse_request

    assert parse_request(
        {"input": "a", "model": "text-embedding-ada-002"}, LIMITS, 32, ("m",), accept_any_model=True
    ).texts == ["a"]
    assert parse_request({"input": "a"}, LIMITS, 32, ("m",)).texts == ["a"]


def test_hub_alias_never_a_local_path(tmp_path):
    from embedrt.integrations.serve import hub_alias

    assert hub_alias("sentence-transformers/all-MiniLM-L6-v2") == ("sentence-transformers/all-MiniLM-L6-v2",)
    assert hub_alias(str(tmp_path / "model")) == ()
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "name").mkdir()
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert hub_alias("org/name") == ()  # an existing relative directory is a path, not a hub id
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize(
    "body, match",
    [
        ({"inputs": ["a", 1]}, r"inputs\[1\]' is an int"),
        ({"inputs": "a", "normalize": 1}, "'normalize' must be true or false"),
        ({"inputs": "a", "dimensions": 40}, r"\[1, 32\]"),
    ],
)
def test_parse_embed(body, match):
    from embedrt.integrations.serve import RequestError, parse_embed

    with pytest.raises(RequestError, match=match):
        parse_embed(body, LIMITS, 32)
    r = parse_embed({"inputs": "hi", "normalize": False, "truncate": False}, LIMITS, 32)
    assert (r.texts, r.normalize, r.dimensions) == (["hi"], False, None)
    assert parse_embed({"inputs": ["a", "b"]}, LIMITS, 32).normalize is True  # TEI's default


def test_parse_rerank_shapes():
    from embedrt.integrations.serve import Limits, RequestError, parse_rerank, parse_tei_rerank

    lim = Limits(max_documents=3, max_text_chars=10)
    r = parse_rerank(
        {"query": "q", "documents": ["a", {"text": "b"}], "top_n": 1, "return_documents": True}, lim, ("m",)
    )
    assert (r.query, r.documents, r.top_n) == ("q", ["a", "b"], 1)
    assert (r.return_documents, r.raw_scores) == (True, False)
    r = parse_tei_rerank({"query": "q", "texts": ["a"], "raw_scores": True, "return_text": True}, lim)
    assert (r.documents, r.raw_scores, r.return_documents) == (["a"], True, True)
    with pytest.raises(RequestError, match="4 documents; at most 3"):
        parse_rerank({"query": "q", "documents": ["a"] * 4}, lim, ("m",))
    with pytest.raises(RequestError, match="'query' has 11 characters; at most 10"):
        parse_tei_rerank({"query": "q" * 11, "texts": ["a"]}, lim)
    with pytest.raises(RequestError, match=r"documents\[0\]' is dict"):
        parse_rerank({"query": "q", "documents": [{"title": "no text"}]}, lim, ("m",))


def test_config_checks_queue_holds_a_request():
    with pytest.raises(InputError, match="max_queued_texts .* must hold one whole request"):
        ServeConfig(export_dir="x", model_name="m", max_queued_texts=10, max_inputs=64).check()
    with pytest.raises(InputError, match="max_body_bytes must be a positive int"):
        ServeConfig(export_dir="x", model_name="m", max_body_bytes=0).check()


def test_missing_serve_extra_gives_the_install_hint(monkeypatch):
    import builtins

    from embedrt.errors import MissingDependencyError
    from embedrt.integrations.serve import require_lean

    real = builtins.__import__

    def no_uvicorn(name, *a, **k):
        if name == "uvicorn" or name.startswith("uvicorn."):
            raise ImportError("No module named 'uvicorn'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_uvicorn)
    with pytest.raises(MissingDependencyError, match=r"pip install 'embedrt\[serve\]'"):
        require_lean()


# ---------------------------------------------------------------- the batcher (no server, no model)
def _batcher(run, **kw):
    from embedrt.integrations._batcher import Batcher, Metrics

    args = dict(max_batch_size=8, max_batch_tokens=1000, wait_s=0.0, max_queued_texts=100)
    args.update(kw)
    return Batcher(run, metrics=Metrics("t", "m"), **args)


def test_batcher_joins_concurrent_jobs_and_keeps_keys_apart():
    import asyncio
    import threading

    seen = []
    gate = threading.Event()

    def run(key, parts):
        gate.wait(5)  # NOTE: hold the first batch, so the next ones queue behind it
        seen.append((key, [len(p) for p in parts]))
        return [[key] * len(p) for p in parts]

    b = _batcher(run)

    async def main():
        first = asyncio.ensure_future(b.submit("a", [(["x"], 1, 1)]))
        await asyncio.sleep(0.05)
        rest = [
            asyncio.ensure_future(b.submit(k, [(["x"] * n, n, n)]))
            for k, n in [("a", 3), ("b", 2), ("a", 4), ("a", 2)]
        ]
        await asyncio.sleep(0.05)
        gate.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(main())
    b.close()
    assert first == ([["a"]], 1)
    assert [r[0] for r in rest] == [[["a"] * 3], [["b"] * 2], [["a"] * 4], [["a"] * 2]]
    # the second batch took the queued "a" jobs that fit in 8 texts (3 + 4), leaving "b" and the last "a"
    assert seen == [("a", [1]), ("a", [3, 4]), ("b", [2]), ("a", [2])]
    assert b.metrics.batch_size.count == 4 and b.metrics.batch_size.sum == 12


def test_batcher_token_budget_and_wait():
    import asyncio

    seen = []

    def run(key, parts):
        seen.append(len(parts))
        return [None] * len(parts)

    b = _batcher(run, max_batch_tokens=10, wait_s=0.2)

    async def main():
        return await asyncio.gather(*[b.submit("k", [(["x"], 1, 4)]) for _ in range(5)])

    asyncio.run(main())
    b.close()
    assert seen == [2, 2, 1]  # 4 tokens each, at most 10 per batch; the wait let all five queue first


def test_batcher_refuses_when_full_or_closed_and_passes_errors_on():
    import asyncio
    import threading

    from embedrt.integrations._batcher import Overloaded

    gate = threading.Event()

    def run(key, parts):
        gate.wait(5)
        if key == "boom":
            raise ValueError("graph failed")
        return [None] * len(parts)

    b = _batcher(run, max_queued_texts=10)

    async def main():
        held = asyncio.ensure_future(b.submit("k", [(None, 1, 1)]))
        await asyncio.sleep(0.05)  # the encode thread holds it; the queue is empty again
        queued = asyncio.ensure_future(b.submit("k", [(None, 5, 1), (None, 4, 1)]))
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match="queue is full"):
            await b.submit("k", [(None, 2, 1)])
        boom = asyncio.ensure_future(b.submit("boom", [(None, 1, 1)]))
        gate.set()
        await held, await queued
        with pytest.raises(ValueError, match="graph failed"):
            await boom

    asyncio.run(main())
    b.close()

    async def after():
        with pytest.raises(Overloaded, match="shutting down"):
            await b.submit("k", [(None, 1, 1)])

    asyncio.run(after())


def test_batcher_close_runs_what_is_queued():
    import asyncio

    b = _batcher(lambda key, parts: [1] * len(parts), wait_s=10.0)  # NOTE: would wait 10 s to fill

    async def main():
        job = asyncio.ensure_future(b.submit("k", [(None, 1, 1)]))
        await asyncio.sleep(0.05)
        await asyncio.get_running_loop().run_in_executor(None, b.close)
        return await job

    import time

    t0 = time.monotonic()
    assert asyncio.run(main()) == ([1], 1)
    assert time.monotonic() - t0 < 5


def test_batcher_workers_run_two_batches_at_once_and_drain_on_close():
    """With workers=2 a second batch starts while the first still runs (each run waits for the other: one
    worker would break the barrier), and close() still runs every queued job."""
    import asyncio
    import threading

    barrier = threading.Barrier(2, timeout=5)
    threads = set()

    def run(key, parts):
        threads.add(threading.current_thread().name)
        if key in ("a", "b"):
            barrier.wait()
        return [key] * len(parts)

    b = _batcher(run, workers=2)

    async def main():
        got = await asyncio.gather(b.submit("a", [(None, 1, 1)]), b.submit("b", [(None, 1, 1)]))
        queued = [asyncio.ensure_future(b.submit(f"k{i}", [(None, 1, 1)])) for i in range(6)]
        await asyncio.sleep(0)
        await asyncio.get_running_loop().run_in_executor(None, b.close)
        return got, await asyncio.gather(*queued)

    got, queued = asyncio.run(main())
    assert got == [(["a"], 1), (["b"], 1)]
    assert queued == [([f"k{i}"], 1) for i in range(6)]
    assert threads == {"embedrt-encode-0", "embedrt-encode-1"}
    for bad in (0, True, 1.5):
        with pytest.raises(ValueError, match="workers must be a positive int"):
            _batcher(run, workers=bad)


def test_metrics_text_format_and_label_escaping():
    from embedrt.integrations._batcher import Metrics

    m = Metrics("r1", 'my "model"')
    m.count_request("/v1/embeddings", 200)
    m.queue_seconds.observe(0.003)
    text = m.render()
    lab = 'replica="r1",model="my \\"model\\""'
    assert f'embedrt_requests_total{{{lab},route="/v1/embeddings",status="200"}} 1' in text
    assert 'embedrt_queue_duration_seconds_bucket{replica="r1",model="my \\"model\\"",le="0.0025"} 0' in text
    assert 'embedrt_queue_duration_seconds_bucket{replica="r1",model="my \\"model\\"",le="0.005"} 1' in text
    assert 'embedrt_queue_duration_seconds_count{replica="r1",model="my \\"model\\""} 1' in text


def test_embed_sparse_request_takes_the_model_prompts_only():
    from embedrt.integrations.serve import RequestError, parse_embed_sparse

    prompts = {"query": "q: "}
    r = parse_embed_sparse({"inputs": "a", "truncate": False, "prompt_name": "query"}, LIMITS, prompts)
    assert (r.texts, r.prompt_name) == (["a"], "query")
    assert parse_embed_sparse({"inputs": ["a", "b"], "prompt_name": None}, LIMITS, {}).prompt_name is None
    for body, param in (
        ({"inputs": "a", "prompt_name": "passage"}, "prompt_name"),
        ({"inputs": "a", "truncation_direction": "left"}, "truncation_direction"),
        ({"inputs": ["a"] * 5}, "inputs"),
    ):
        with pytest.raises(RequestError) as err:
            parse_embed_sparse(body, LIMITS, prompts)
        assert err.value.param == param


def test_served_tasks_leave_out_multi_vector():
    from embedrt.errors import UnsupportedModelError
    from embedrt.integrations.serve import check_task

    for task in ("embedding", "cross-encoder", "sparse"):
        check_task(task)
    served = r"serves the tasks \['embedding', 'cross-encoder', 'sparse'\]"
    with pytest.raises(UnsupportedModelError, match=served):
        check_task("multi-vector")
