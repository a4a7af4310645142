"""The lean ``embedrt serve`` (one process, no Ray) end to end: a real subprocess on a free loopback port.

Covers every route against ``Encoder.encode`` / ``CrossEncoder.rank`` (1e-6), every 400/404/405/413 case, the
official ``openai`` client, batching under 32 concurrent clients (seen in /metrics), a 503 flood, and SIGTERM
with requests in flight.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette", reason="needs embedrt[serve]")
pytest.importorskip("uvicorn", reason="needs embedrt[serve]")

from embedrt import CrossEncoder, Encoder  # noqa: E402
from embedrt.integrations.serve import decode_base64  # noqa: E402
from serving import metric, serve  # noqa: E402

MAX_INPUTS, MAX_CHARS, MAX_DOCS, MAX_BODY = 64, 2000, 16, 100_000
TEXTS = [
    "A man is playing a guitar.",
    "",
    "Someone plays an instrument on a stage in front of a crowd.",
    "Ünïcödé, 漢字 and emoji 👍🏽",
    "x " * 300,
]
DOCS = ["the man plays guitar", "pizza is food", "a guitar on a stage", "", "who plays the guitar"]
LIMIT_ARGS = (
    "--max-inputs",
    str(MAX_INPUTS),
    "--max-text-chars",
    str(MAX_CHARS),
    "--max-documents",
    str(MAX_DOCS),
    "--max-body-bytes",
    str(MAX_BODY),
)


@pytest.fixture(scope="module")
def server(tiny_bert, tmp_path_factory):
    _, export_dir = tiny_bert
    log = tmp_path_factory.mktemp("lean") / "serve.log"
    with serve(
        export_dir,
        log,
        "--model-name",
        "tiny",
        "--max-batch-size",
        "32",
        "--batch-wait-timeout-ms",
        "2",
        *LIMIT_ARGS,
    ) as s:
        yield s.base, Encoder(export_dir, device="cpu")


@pytest.fixture(scope="module")
def rerank_server(tiny_cross, tmp_path_factory):
    """No --model-name: the name comes from the export's source, a local directory here."""
    _, export_dir = tiny_cross
    log = tmp_path_factory.mktemp("lean-rerank") / "serve.log"
    with serve(export_dir, log, *LIMIT_ARGS) as s:
        yield s.base, CrossEncoder(export_dir, device="cpu"), export_dir


def post(base, route, body, **kw):
    return httpx.post(f"{base}{route}", json=body, timeout=kw.pop("timeout", 60), **kw)


def vectors(body):
    return np.array([d["embedding"] for d in body["data"]], dtype=np.float32)


# ---------------------------------------------------------------- embeddings
def test_health_models_and_metrics(server):
    base, enc = server
    h = httpx.get(f"{base}/health", timeout=10).json()
    assert h["status"] == "ok" and h["model"] == "tiny" and h["task"] == "embedding"
    assert h["dim"] == enc.get_sentence_embedding_dimension() and "POST /v1/embeddings" in h["routes"]
    assert httpx.get(f"{base}/v1/models", timeout=10).json()["data"][0]["id"] == "tiny"
    assert post(base, "/v1/embeddings", {"input": "warm"}).status_code == 200
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for name in (
        "embedrt_queue_duration_seconds",
        "embedrt_tokenization_duration_seconds",
        "embedrt_inference_duration_seconds",
        "embedrt_request_duration_seconds",
        "embedrt_batch_size",
    ):
        assert f"# TYPE {name} histogram" in text and f"{name}_count" in text
    assert metric(base, "embedrt_inference_duration_seconds_count") >= 1


def test_openai_embeddings_equal_encoder(server):
    base, enc = server
    r = post(base, "/v1/embeddings", {"input": TEXTS, "model": "tiny"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "tiny"
    assert [d["index"] for d in body["data"]] == list(range(len(TEXTS)))
    np.testing.assert_allclose(vectors(body), enc.encode(TEXTS), atol=1e-6, rtol=0)
    tokens = int(enc.tokenize(TEXTS).lengths.sum())
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_base64_single_string_and_dimensions(server):
    base, enc = server
    (item,) = post(base, "/v1/embeddings", {"input": TEXTS[0], "encoding_format": "base64"}).json()["data"]
    np.testing.assert_allclose(decode_base64(item["embedding"]), enc.encode(TEXTS[0]), atol=1e-6, rtol=0)
    r = post(base, "/v1/embeddings", {"input": TEXTS, "dimensions": 8, "encoding_format": "base64"})
    got = np.stack([decode_base64(d["embedding"]) for d in r.json()["data"]])
    np.testing.assert_allclose(got, enc.encode(TEXTS, truncate_dim=8), atol=1e-6, rtol=0)


def test_tei_embed_equals_encoder(server):
    base, enc = server
    r = post(base, "/embed", {"inputs": TEXTS})
    assert r.status_code == 200, r.text
    got = np.array(r.json(), dtype=np.float32)
    np.testing.assert_allclose(got, enc.encode(TEXTS, normalize_embeddings=True), atol=1e-6, rtol=0)
    got = np.array(
        post(
            base, "/embed", {"inputs": "one text", "normalize": False, "truncate": True, "dimensions": 8}
        ).json(),
        dtype=np.float32,
    )
    np.testing.assert_allclose(got, enc.encode(["one text"], truncate_dim=8), atol=1e-6, rtol=0)


def test_openai_client(server):
    openai = pytest.importorskip("openai")
    base, enc = server
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
    res = client.embeddings.create(model="tiny", input=TEXTS[:3])  # NOTE: the client asks for base64 itself
    np.testing.assert_allclose(
        np.array([d.embedding for d in res.data], dtype=np.float32), enc.encode(TEXTS[:3]), atol=1e-6, rtol=0
    )
    res = client.embeddings.create(model="tiny", input="hello", encoding_format="float", dimensions=8)
    np.testing.assert_allclose(res.data[0].embedding, enc.encode("hello", truncate_dim=8), atol=1e-6, rtol=0)
    with pytest.raises(openai.BadRequestError, match="unknown model"):
        client.embeddings.create(model="text-embedding-3-small", input="x")


# ---------------------------------------------------------------- rerank
def test_rerank_equals_cross_encoder_rank(rerank_server):
    base, ce, _ = rerank_server
    q = "who plays the guitar?"
    r = post(base, "/v1/rerank", {"query": q, "documents": DOCS, "return_documents": True})
    assert r.status_code == 200, r.text
    body = r.json()
    ref = ce.rank(q, DOCS, return_documents=True)
    assert [x["index"] for x in body["results"]] == [x["corpus_id"] for x in ref]
    np.testing.assert_allclose(
        [x["relevance_score"] for x in body["results"]], [x["score"] for x in ref], atol=1e-6, rtol=0
    )
    assert [x["document"]["text"] for x in body["results"]] == [x["text"] for x in ref]
    top = post(base, "/v1/rerank", {"query": q, "documents": [{"text": d} for d in DOCS], "top_n": 2}).json()
    assert [x["index"] for x in top["results"]] == [x["corpus_id"] for x in ref[:2]]
    assert "document" not in top["results"][0]


def test_tei_rerank_equals_cross_encoder_rank(rerank_server):
    base, ce, _ = rerank_server
    q = "guitar"
    for raw, act in ((False, None), (True, "identity")):
        r = post(base, "/rerank", {"query": q, "texts": DOCS, "raw_scores": raw, "return_text": True})
        assert r.status_code == 200, r.text
        ref = ce.rank(q, DOCS, return_documents=True, activation_fn=act)
        assert [x["index"] for x in r.json()] == [x["corpus_id"] for x in ref]
        np.testing.assert_allclose(
            [x["score"] for x in r.json()], [x["score"] for x in ref], atol=1e-6, rtol=0
        )
        assert [x["text"] for x in r.json()] == [x["text"] for x in ref]
    assert "text" not in post(base, "/rerank", {"query": q, "texts": DOCS}).json()[0]


def test_tei_truncate_false_refuses_long_inputs(server, rerank_server):
    """TEI's ``truncate: false``: a text (or query-text pair) longer than the window is a 413 naming it,
    instead of a silently cut vector; inputs that fit are served as with truncation."""
    base, enc = server
    fits = [t for t in TEXTS if enc.count_tokens(t) <= enc.max_seq_length]
    assert len(fits) < len(TEXTS)  # "x " * 300 does not fit
    r = post(base, "/embed", {"inputs": TEXTS, "truncate": False})
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["param"] == "inputs" and err["code"] == "input_too_long"
    first = next(i for i, t in enumerate(TEXTS) if t not in fits)
    assert f"inputs[{first}] has {enc.count_tokens(TEXTS[first])} tokens" in err["message"]
    assert f"{len(TEXTS) - len(fits)} input(s) too long" in err["message"]
    r = post(base, "/embed", {"inputs": fits, "truncate": False})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(
        np.array(r.json()), enc.encode(fits, normalize_embeddings=True), atol=1e-6, rtol=0
    )
    base, ce, _ = rerank_server
    long_doc = "guitar " * 200
    r = post(base, "/rerank", {"query": "guitar", "texts": DOCS + [long_doc], "truncate": False})
    assert r.status_code == 413 and r.json()["error"]["param"] == "texts", r.text
    assert f"texts[{len(DOCS)}] has {ce.count_tokens(('guitar', long_doc))} tokens" in r.text
    assert post(base, "/rerank", {"query": "guitar", "texts": DOCS, "truncate": False}).status_code == 200


# ---------------------------------------------------------------- the wrong route
@pytest.mark.parametrize(
    "route, match",
    [
        ("/v1/rerank", "cross-encoder"),
        ("/rerank", "cross-encoder"),
        ("/embed_sparse", "serves sparse (SPLADE) exports; this server serves the embedding model 'tiny'"),
        ("/v1/nothing", "no route POST /v1/nothing"),
    ],
)
def test_wrong_route_on_embedding_server_is_404(server, route, match):
    base, _ = server
    r = post(base, route, {"query": "q", "documents": ["d"]})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert (
        match in err["message"]
        and "POST /v1/embeddings" in err["message"]
        and err["code"] == "route_not_found"
    )


@pytest.mark.parametrize("route", ["/v1/embeddings", "/embed"])
def test_embedding_routes_on_rerank_server_are_404(rerank_server, route):
    base, _, _ = rerank_server
    r = post(base, route, {"input": "x", "inputs": "x"})
    assert r.status_code == 404 and "embedding exports" in r.json()["error"]["message"]


def test_sparse_route_on_rerank_server_is_404(rerank_server):
    base, _, _ = rerank_server
    r = post(base, "/embed_sparse", {"inputs": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "route_not_found"
    assert "sparse (SPLADE) exports; this server serves the cross-encoder" in r.json()["error"]["message"]


def test_wrong_method_is_405(server):
    base, _ = server
    r = httpx.get(f"{base}/v1/embeddings", timeout=10)
    assert (
        r.status_code == 405
        and r.headers["allow"] == "POST"
        and r.json()["error"]["code"] == "method_not_allowed"
    )


# ---------------------------------------------------------------- bad input: 400
BAD_EMBEDDINGS = [
    ({"input": []}, "input", "empty list"),
    ({"input": ["ok", 7]}, "input", "input[1]' is an int"),
    ({"input": ["ok", None]}, "input", "input[1]' is NoneType"),
    ({"input": [[1, 2]]}, "input", "token arrays are not supported"),
    ({"input": {"a": 1}}, "input", "must be a string or a list"),
    ({"input": ["t"] * (MAX_INPUTS + 1)}, "input", f"at most {MAX_INPUTS} per request"),
    ({"input": ["y" * (MAX_CHARS + 1)]}, "input", f"at most {MAX_CHARS}"),
    ({"input": "ok", "encoding_format": "float16"}, "encoding_format", "valid choices"),
    ({"input": "ok", "dimensions": 10_000}, "dimensions", "'dimensions' must be"),
    ({"input": "ok", "dimensions": True}, "dimensions", "'dimensions' must be"),
    ({"input": "ok", "model": "gpt"}, "model", "unknown model 'gpt'; this server serves 'tiny'"),
    ({}, "input", "'input' is required"),
    ([1, 2], None, "must be a JSON object"),
]


@pytest.mark.parametrize("body, param, match", BAD_EMBEDDINGS)
def test_bad_embeddings_request_is_400(server, body, param, match):
    base, _ = server
    r = post(base, "/v1/embeddings", body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert match in err["message"] and err["param"] == param and err["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "body, match",
    [
        ({"input": "x"}, "'inputs' is required"),
        ({"inputs": []}, "empty list"),
        ({"inputs": "x", "normalize": "yes"}, "'normalize' must be true or false"),
        ({"inputs": "x", "truncation_direction": "Left"}, "truncation_direction"),
        ({"inputs": "x", "prompt_name": "query"}, "'prompt_name' is not supported"),
    ],
)
def test_bad_tei_embed_request_is_400(server, body, match):
    base, _ = server
    r = post(base, "/embed", body)
    assert r.status_code == 400 and match in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "route, body, match",
    [
        ("/v1/rerank", {"documents": ["d"]}, "'query' is required"),
        ("/v1/rerank", {"query": 3, "documents": ["d"]}, "'query' is an int"),
        ("/v1/rerank", {"query": "q", "documents": []}, "empty list"),
        ("/v1/rerank", {"query": "q", "documents": "d"}, "must be a list of strings"),
        ("/v1/rerank", {"query": "q", "documents": ["d", 5]}, "documents[1]' is an int"),
        (
            "/v1/rerank",
            {"query": "q", "documents": ["d"] * (MAX_DOCS + 1)},
            f"at most {MAX_DOCS} per request",
        ),
        ("/v1/rerank", {"query": "q", "documents": ["z" * (MAX_CHARS + 1)]}, f"at most {MAX_CHARS}"),
        ("/v1/rerank", {"query": "q", "documents": ["d"], "top_n": 0}, "'top_n' must be a positive int"),
        (
            "/v1/rerank",
            {"query": "q", "documents": ["d"], "return_documents": 1},
            "'return_documents' must be",
        ),
        ("/v1/rerank", {"query": "q", "documents": ["d"], "model": "other"}, "unknown model 'other'"),
        ("/rerank", {"query": "q"}, "'texts' must be a list"),
        ("/rerank", {"query": "q", "texts": ["d"], "raw_scores": "no"}, "'raw_scores' must be true or false"),
    ],
)
def test_bad_rerank_request_is_400(rerank_server, route, body, match):
    base, _, _ = rerank_server
    r = post(base, route, body)
    assert r.status_code == 400, r.text
    assert match in r.json()["error"]["message"]


def test_unknown_model_error_names_no_local_path(rerank_server):
    base, _, export_dir = rerank_server
    r = post(base, "/v1/rerank", {"query": "q", "documents": ["d"], "model": "nope"})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "/" not in message.split("serves", 1)[1] and str(export_dir.parent) not in message, message


@pytest.mark.parametrize(
    "route, raw",
    [
        ("/v1/embeddings", b'{"input": "\\ud800"}'),
        ("/v1/embeddings", b'{"input": ["fine", "a\\udfffb"]}'),
        ("/embed", b'{"inputs": "\\ud800"}'),
    ],
)
def test_lone_surrogate_is_400_not_500(server, route, raw):
    base, _ = server
    r = httpx.post(f"{base}{route}", content=raw, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    assert "not valid Unicode" in r.json()["error"]["message"]


def test_lone_surrogate_in_rerank_is_400(rerank_server):
    base, _, _ = rerank_server
    for raw in (b'{"query": "\\ud800", "documents": ["d"]}', b'{"query": "q", "texts": ["\\ud800"]}'):
        route = "/v1/rerank" if b"documents" in raw else "/rerank"
        r = httpx.post(f"{base}{route}", content=raw, timeout=30)
        assert r.status_code == 400 and "not valid Unicode" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"\xff\xfe",
        b"",
        b"[" * 5_000 + b"]" * 5_000,
        b'{"input": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    ],
    ids=["syntax", "not-utf8", "empty", "nested-array", "nested-input"],
)
def test_invalid_json_is_400(server, raw):
    base, _ = server
    r = httpx.post(f"{base}/v1/embeddings", content=raw, timeout=30)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


#: JSON values that clients get wrong: wrong types, empty and huge, non-finite, nested, mixed
ODD_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2,
    10**30,
    1.5,
    float("inf"),
    float("nan"),
    "",
    " ",
    "a",
    "x" * 5000,
    "\u0000",
    "\ud83d\ude00",
    [],
    [""],
    ["a"],
    ["a"] * 3000,
    [1, 2, 3],
    [[1, 2]],
    [None],
    [{"text": "a"}],
    {"text": "a"},
    {},
    "float",
    "base64",
    "int8",
    "left",
    "Right",
    384,
    0.0,
    "384",
    [True],
    ["a", 1],
    [["a"]],
    list(range(600)),
]
ROUTE_FIELDS = {
    "/v1/embeddings": ["input", "model", "encoding_format", "dimensions", "user"],
    "/embed": ["inputs", "normalize", "truncate", "truncation_direction", "prompt_name"],
    "/v1/rerank": ["query", "documents", "top_n", "return_documents", "model"],
    "/rerank": ["query", "texts", "raw_scores", "return_text", "truncate"],
}


@pytest.mark.parametrize("which", ["server", "rerank_server"])
def test_random_bodies_get_4xx_json_or_200_and_never_a_5xx(which, request):
    """250 seeded random bodies per server, on every route: each answer is a 200, or a 4xx with an
    OpenAI-style JSON error; none is a 5xx; a normal request still answers afterwards."""
    import random

    base = request.getfixturevalue(which)[0]
    rnd = random.Random(20261204)
    seen: dict[int, int] = {}
    with httpx.Client(timeout=60) as client:
        for _ in range(250):
            route = rnd.choice(list(ROUTE_FIELDS))
            body = {f: rnd.choice(ODD_VALUES) for f in ROUTE_FIELDS[route] if rnd.random() < 0.75}
            if rnd.random() < 0.1:
                body = rnd.choice(ODD_VALUES)
            r = client.post(f"{base}{route}", content=json.dumps(body, allow_nan=True).encode())
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            assert r.status_code < 500, (route, body, r.text[:300])
            if r.status_code != 200:
                assert set(r.json()["error"]) >= {"message", "type"}, r.text[:300]
        assert seen.get(400, 0) > 100 and seen.get(404, 0) > 50, seen  # NOTE: the bodies did reach validation
        ok = client.get(f"{base}/health")
        assert ok.status_code == 200


# ---------------------------------------------------------------- the body limit: 413 before it is read whole
def test_body_over_the_limit_is_413(server):
    base, enc = server
    r = httpx.post(
        f"{base}/v1/embeddings", content=json.dumps({"input": "a" * MAX_BODY}).encode(), timeout=30
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks():  # NOTE: no Content-Length: the server must count while the body streams
        yield b'{"input": "'
        for _ in range(MAX_BODY // 1000 + 1):
            yield b"b" * 1000
        yield b'"}'

    r = httpx.post(f"{base}/v1/embeddings", content=chunks(), timeout=30)
    assert r.status_code == 413 and "more than" in r.json()["error"]["message"]
    # a normal request right after still answers
    r = post(base, "/v1/embeddings", {"input": TEXTS[0]})
    assert r.status_code == 200
    np.testing.assert_allclose(vectors(r.json())[0], enc.encode(TEXTS[0]), atol=1e-6, rtol=0)


def test_huge_content_length_is_refused_without_reading_the_body(server):
    """Headers promise 1 GB and no body follows: the 413 comes at once, nothing waits for the gigabyte."""
    base, _ = server
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000000000\r\n\r\n{"input": "'
        )
        t0 = time.monotonic()
        data = b""
        while b"\r\n\r\n" not in data or b"}}" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b"body_too_large" in data and time.monotonic() - t0 < 5
    assert post(base, "/v1/embeddings", {"input": "after"}).status_code == 200


# ---------------------------------------------------------------- batching under 32 concurrent clients
def test_32_concurrent_clients_are_batched_and_exact(server, shared_data):
    base, enc = server
    texts = (shared_data / "corpus-qnli.txt").read_text(encoding="utf-8").splitlines()[:320]
    texts_before = metric(base, "embedrt_batch_size_sum")
    batches_before = metric(base, "embedrt_batch_size_count")
    sizes: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(32)

    def client(k: int) -> list[tuple[int, np.ndarray]]:
        out = []
        with httpx.Client(timeout=60) as c:
            start.wait(timeout=60)
            for i in range(k, len(texts), 32):  # 10 single-text requests per client, 320 in all
                r = c.post(f"{base}/v1/embeddings", json={"input": texts[i]})
                assert r.status_code == 200, r.text
                with lock:
                    sizes.append(int(r.headers["x-embedrt-batch-size"]))
                out.append((i, vectors(r.json())[0]))
        return out

    with ThreadPoolExecutor(32) as pool:
        results = [x for f in [pool.submit(client, k) for k in range(32)] for x in f.result(timeout=300)]
    got = np.stack([v for _, v in sorted(results, key=lambda x: x[0])])
    np.testing.assert_allclose(got, enc.encode(texts), atol=1e-6, rtol=0)
    n_texts = metric(base, "embedrt_batch_size_sum") - texts_before
    n_batches = metric(base, "embedrt_batch_size_count") - batches_before
    assert n_texts == len(texts)
    # batching happened: fewer graph runs than requests, and some requests rode in a batch of several
    assert n_batches < len(texts) / 2 and max(sizes) > 1, (n_batches, max(sizes))


# ---------------------------------------------------------------- overload: 503 at once, never a hang
@pytest.fixture
def small_server(tiny_bert, tmp_path):
    """4 requests in flight at most, 100 texts queued at most; batches wait 200 ms to fill, so a burst
    overlaps for sure."""
    _, export_dir = tiny_bert
    with serve(
        export_dir,
        tmp_path / "serve.log",
        "--model-name",
        "tiny",
        "--max-ongoing-requests",
        "4",
        "--max-queued-texts",
        "100",
        "--max-inputs",
        "64",
        "--max-documents",
        "16",
        "--batch-wait-timeout-ms",
        "200",
        "--accept-any-model",
    ) as s:
        yield s.base, Encoder(export_dir, device="cpu")


def test_flood_gets_503_at_once_and_the_server_recovers(small_server):
    base, enc = small_server
    heavy = {"input": ["a fairly long sentence that keeps the encode thread busy " * 3] * 60}
    start = threading.Barrier(40)

    def one(_: int) -> tuple[int, str, float]:
        start.wait(timeout=60)
        t0 = time.monotonic()
        r = post(base, "/v1/embeddings", heavy, timeout=120)
        return r.status_code, r.text, time.monotonic() - t0

    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(one, range(40), timeout=300))
    codes = [c for c, _, _ in results]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(503) > 0 and codes.count(200) > 0, codes
    refused = [(text, dt) for c, text, dt in results if c == 503]
    for text, _ in refused:
        err = json.loads(text)["error"]
        assert err["type"] == "overloaded_error" and (
            "in flight" in err["message"] or "queue is full" in err["message"]
        )
    assert min(dt for _, dt in refused) < 5  # refused at once, not after waiting
    # and a normal request right after answers; --accept-any-model takes the name LangChain sends
    r = post(base, "/v1/embeddings", {"input": "still alive", "model": "text-embedding-ada-002"})
    assert r.status_code == 200 and r.json()["model"] == "tiny"
    np.testing.assert_allclose(vectors(r.json())[0], enc.encode("still alive"), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- SIGTERM with requests in flight
def test_sigterm_finishes_requests_in_flight_and_refuses_new_ones(tiny_bert, tmp_path):
    _, export_dir = tiny_bert
    enc = Encoder(export_dir, device="cpu")
    texts = [f"request {i} about the guitar and the stage" for i in range(12)]
    # NOTE: batches wait 1.5 s to fill, so all 12 requests are queued (in flight) when SIGTERM comes
    with serve(export_dir, tmp_path / "serve.log", "--batch-wait-timeout-ms", "1500") as s:
        results: dict[int, object] = {}

        def one(i: int) -> None:
            try:
                r = post(s.base, "/v1/embeddings", {"input": [texts[i], texts[-1 - i]]}, timeout=60)
                results[i] = (r.status_code, r.json())
            except httpx.HTTPError as e:
                results[i] = e

        threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while metric(s.base, "embedrt_ongoing_requests") < 12:
            assert time.monotonic() < deadline, "the 12 requests never were in flight together"
            time.sleep(0.02)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        try:  # a new request after SIGTERM is refused: no connection, or a 503
            late = post(s.base, "/v1/embeddings", {"input": "late"}, timeout=10).status_code
        except httpx.TransportError:
            late = "refused"
        for t in threads:
            t.join(timeout=60)
        assert s.proc.wait(timeout=60) == 0
    assert late in ("refused", 503), late
    assert sorted(results) == list(range(12))
    for i, res in results.items():
        assert not isinstance(res, Exception), f"request {i} was lost: {res!r}"
        status, body = res
        assert status == 200, body
        np.testing.assert_allclose(vectors(body), enc.encode([texts[i], texts[-1 - i]]), atol=1e-6, rtol=0)
    assert "shutting down" in (tmp_path / "serve.log").read_text()


# ---------------------------------------------------------------- the command line
def test_cli_errors_are_typed_with_exit_2(tiny_bert, tmp_path):
    import subprocess
    import sys

    _, export_dir = tiny_bert

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "embedrt.cli", "serve", *args], capture_output=True, text=True, timeout=120
        )

    r = run(str(tmp_path / "missing"))
    assert r.returncode == 2 and "error: ArtifactError" in r.stderr and "Traceback" not in r.stderr
    r = run(str(export_dir), "--max-batch-size", "0")
    assert r.returncode == 2 and "max_batch_size must be a positive int" in r.stderr
    for port in ("65536", "-1"):
        r = run(str(export_dir), "--port", port)
        assert r.returncode == 2 and "port must be an int from 0 to 65535" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = run(str(export_dir), "--port", str(busy.getsockname()[1]))
    assert r.returncode == 2 and "cannot listen on 127.0.0.1" in r.stderr and "Traceback" not in r.stderr
