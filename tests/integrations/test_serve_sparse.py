"""TEI's ``POST /embed_sparse`` on the lean ``embedrt serve`` of a tiny sparse (SPLADE) export, end to end: a
real subprocess on a free loopback port.

Covers the values against ``SparseEncoder.encode_document`` / ``encode_query`` (1e-6, the same active
dimensions), batching under 16 concurrent clients, every 400/404/405/413 case of the route, a normal request
after abuse, and the start-up refusal of a multi-vector export.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette", reason="needs embedrt[serve]")
pytest.importorskip("uvicorn", reason="needs embedrt[serve]")
pytest.importorskip("sentence_transformers", reason="builds the tiny models")

from embedrt import SparseEncoder, export_model  # noqa: E402
from serving import metric, serve  # noqa: E402

MAX_INPUTS, MAX_CHARS, MAX_BODY = 32, 2000, 50_000
PROMPTS = {"query": "query: ", "document": "passage: "}
TEXTS = [
    "A man is playing a guitar.",
    "",
    "Someone plays an instrument on a stage in front of a crowd.",
    "Ünïcödé, 漢字 and emoji 👍🏽",
    "x " * 300,  # NOTE: far beyond the 24-token window: cut, as SparseEncoder.encode cuts it
]


@pytest.fixture(scope="module")
def sparse_export(tmp_path_factory):
    from tiny_models import build_tiny_sparse

    base = tmp_path_factory.mktemp("serve-sparse")
    export_model(str(build_tiny_sparse(base / "st", prompts=PROMPTS)), base / "export")
    return base / "export"


@pytest.fixture(scope="module")
def server(sparse_export, tmp_path_factory):
    log = tmp_path_factory.mktemp("lean-sparse") / "serve.log"
    args = ("--model-name", "splade", "--max-batch-size", "32", "--batch-wait-timeout-ms", "2")
    limits = ("--max-inputs", str(MAX_INPUTS), "--max-text-chars", str(MAX_CHARS))
    with serve(sparse_export, log, *args, *limits, "--max-body-bytes", str(MAX_BODY)) as s:
        yield s.base, SparseEncoder(sparse_export, device="cpu")


def post(base, body, route="/embed_sparse", **kw):
    return httpx.post(f"{base}{route}", json=body, timeout=kw.pop("timeout", 60), **kw)


def assert_rows_equal(got, ref) -> None:
    """``got``: TEI's ``[[{"index", "value"}]]``; ``ref``: a CSR matrix with the same rows."""
    assert len(got) == ref.shape[0]
    for i, row in enumerate(got):
        idx = [x["index"] for x in row]
        assert idx == sorted(idx), f"row {i}: indices not ascending"
        lo, hi = ref.indptr[i], ref.indptr[i + 1]
        assert idx == ref.indices[lo:hi].tolist(), f"row {i}: other active dimensions"
        np.testing.assert_allclose([x["value"] for x in row], ref.data[lo:hi], atol=1e-6, rtol=0)


def test_health_names_the_sparse_task_and_its_routes(server):
    base, enc = server
    h = httpx.get(f"{base}/health", timeout=10).json()
    assert h["status"] == "ok" and h["task"] == "sparse" and h["model"] == "splade"
    assert h["dim"] == enc.get_sentence_embedding_dimension()
    assert sorted(h["routes"]) == ["GET /health", "GET /metrics", "GET /v1/models", "POST /embed_sparse"]
    assert httpx.get(f"{base}/v1/models", timeout=10).json()["data"][0]["id"] == "splade"


def test_embed_sparse_equals_encode_document(server):
    base, enc = server
    r = post(base, {"inputs": TEXTS})
    assert r.status_code == 200, r.text
    ref = enc.encode_document(TEXTS)
    assert ref.nnz > 0
    assert_rows_equal(r.json(), ref)
    # the document prompt is there: the plain encode differs
    assert not np.allclose(ref.toarray(), enc.encode(TEXTS).toarray())


def test_single_string_prompt_name_and_truncate(server):
    base, enc = server
    r = post(base, {"inputs": TEXTS[0], "truncate": True, "truncation_direction": "right"})
    assert r.status_code == 200 and len(r.json()) == 1
    assert_rows_equal(r.json(), enc.encode_document([TEXTS[0]]))
    r = post(base, {"inputs": TEXTS, "prompt_name": "query"})
    assert_rows_equal(r.json(), enc.encode_query(TEXTS))
    r = post(base, {"inputs": TEXTS[:2], "prompt_name": "document", "truncate": False})
    assert_rows_equal(r.json(), enc.encode(TEXTS[:2], prompt_name="document"))
    # truncate: false refuses a text longer than the window (its prompt counted), as TEI does
    long = "the theory " * 40
    assert enc.count_tokens(long, prompt_name="document") > enc.max_seq_length
    r = post(base, {"inputs": [TEXTS[0], long], "truncate": False})
    assert r.status_code == 413 and "inputs[1] has" in r.json()["error"]["message"], r.text
    assert post(base, {"inputs": [TEXTS[0], long]}).status_code == 200


def test_requests_and_inputs_are_counted(server):
    base, _ = server
    before = metric(base, "embedrt_inputs_total")
    assert post(base, {"inputs": TEXTS[:3]}).status_code == 200
    assert metric(base, "embedrt_inputs_total") - before == 3
    text = httpx.get(f"{base}/metrics", timeout=10).text
    assert 'route="/embed_sparse",status="200"' in text


# ---------------------------------------------------------------- the other tasks' routes: 404, JSON
@pytest.mark.parametrize(
    "route, kind",
    [
        ("/v1/embeddings", "embedding"),
        ("/embed", "embedding"),
        ("/v1/rerank", "cross-encoder"),
        ("/rerank", "cross-encoder"),
    ],
)
def test_other_tasks_routes_are_404(server, route, kind):
    base, _ = server
    r = post(base, {"input": "x", "inputs": "x", "query": "q", "texts": ["d"]}, route=route)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == "route_not_found" and f"serves {kind}" in err["message"]
    assert "the sparse (SPLADE) model 'splade'" in err["message"] and "POST /embed_sparse" in err["message"]


def test_wrong_method_is_405(server):
    base, _ = server
    r = httpx.get(f"{base}/embed_sparse", timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "POST"


# ---------------------------------------------------------------- bad input: 400 with the parameter
BAD = [
    ({"input": "x"}, "inputs", "'inputs' is required"),
    ({"inputs": []}, "inputs", "empty list"),
    ({"inputs": ["ok", 7]}, "inputs", "inputs[1]' is an int"),
    ({"inputs": ["ok", None]}, "inputs", "inputs[1]' is NoneType"),
    ({"inputs": [[101, 102]]}, "inputs", "token arrays are not supported"),
    ({"inputs": {"a": 1}}, "inputs", "must be a string or a list"),
    ({"inputs": ["t"] * (MAX_INPUTS + 1)}, "inputs", f"at most {MAX_INPUTS} per request"),
    ({"inputs": ["y" * (MAX_CHARS + 1)]}, "inputs", f"at most {MAX_CHARS}"),
    ({"inputs": "x", "truncate": "yes"}, "truncate", "'truncate' must be true or false"),
    ({"inputs": "x", "truncation_direction": "Left"}, "truncation_direction", "valid choices: ['right']"),
    ({"inputs": "x", "prompt_name": "passage"}, "prompt_name", "this model's prompts: ['document', 'query']"),
    ({"inputs": "x", "prompt_name": 3}, "prompt_name", "unknown prompt_name 3"),
    ([1, 2], None, "must be a JSON object"),
]


@pytest.mark.parametrize("body, param, match", BAD)
def test_bad_request_is_400_with_the_parameter(server, body, param, match):
    base, _ = server
    r = post(base, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert match in err["message"] and err["param"] == param and err["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"", b'{"inputs": ["fine", "a\\udfffb"]}'])
def test_invalid_json_or_unicode_is_400(server, raw):
    base, _ = server
    r = httpx.post(f"{base}/embed_sparse", content=raw, timeout=30)
    assert r.status_code == 400, r.text
    assert "not valid JSON" in r.json()["error"]["message"] or "not valid Unicode" in r.text


def test_body_over_the_limit_is_413_and_a_normal_request_follows(server):
    base, enc = server
    big = json.dumps({"inputs": "a" * MAX_BODY}).encode()
    r = httpx.post(f"{base}/embed_sparse", content=big, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks():  # NOTE: no Content-Length: the server counts while the body streams
        yield b'{"inputs": "'
        for _ in range(MAX_BODY // 1000 + 1):
            yield b"b" * 1000
        yield b'"}'

    r = httpx.post(f"{base}/embed_sparse", content=chunks(), timeout=30)
    assert r.status_code == 413 and "more than" in r.json()["error"]["message"]
    for body, _, _ in BAD:  # every kind of abuse once more, then a normal request
        assert post(base, body).status_code == 400
    r = post(base, {"inputs": TEXTS})
    assert r.status_code == 200
    assert_rows_equal(r.json(), enc.encode_document(TEXTS))


# ---------------------------------------------------------------- batching under 16 concurrent clients
def test_16_concurrent_clients_are_batched_and_exact(server, shared_data):
    base, enc = server
    texts = (shared_data / "corpus-qnli.txt").read_text(encoding="utf-8").splitlines()[:160]
    texts_before = metric(base, "embedrt_batch_size_sum")
    batches_before = metric(base, "embedrt_batch_size_count")
    sizes: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def client(k: int) -> list[tuple[int, list]]:
        out = []
        with httpx.Client(timeout=60) as c:
            start.wait(timeout=60)
            for i in range(k, len(texts), 16):  # 10 single-text requests per client
                r = c.post(f"{base}/embed_sparse", json={"inputs": texts[i]})
                assert r.status_code == 200, r.text
                with lock:
                    sizes.append(int(r.headers["x-embedrt-batch-size"]))
                out.append((i, r.json()[0]))
        return out

    with ThreadPoolExecutor(16) as pool:
        results = [x for f in [pool.submit(client, k) for k in range(16)] for x in f.result(timeout=300)]
    assert_rows_equal([row for _, row in sorted(results, key=lambda x: x[0])], enc.encode_document(texts))
    n_texts = metric(base, "embedrt_batch_size_sum") - texts_before
    n_batches = metric(base, "embedrt_batch_size_count") - batches_before
    assert n_texts == len(texts)
    assert n_batches < len(texts) / 2 and max(sizes) > 1, (n_batches, max(sizes))


def test_one_request_of_many_texts_is_exact(server):
    """More texts than --max-batch-size: sliced into jobs, each handed its own ragged rows back in order."""
    base, enc = server
    texts = [f"text number {i} " + "word " * (i % 7) for i in range(MAX_INPUTS)]
    r = post(base, {"inputs": texts})
    assert r.status_code == 200
    assert_rows_equal(r.json(), enc.encode_document(texts))


# ---------------------------------------------------------------- a multi-vector export: refused at start-up
def test_multi_vector_export_is_refused_at_startup(tmp_path):
    from tiny_models import build_tiny_multivector

    export = tmp_path / "export"
    export_model(str(build_tiny_multivector(tmp_path / "st")), export)
    r = subprocess.run(
        [sys.executable, "-m", "embedrt.cli", "serve", str(export), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "UnsupportedModelError" in r.stderr and "does not serve 'multi-vector' exports" in r.stderr
    assert "['embedding', 'cross-encoder', 'sparse']" in r.stderr

    from embedrt.errors import UnsupportedModelError
    from embedrt.integrations._http_app import Service
    from embedrt.integrations.serve import ServeConfig

    with pytest.raises(UnsupportedModelError, match="multi-vector"):  # Ray's replicas build the Service
        Service(ServeConfig(export_dir=str(export), model_name="m"), replica="r")
