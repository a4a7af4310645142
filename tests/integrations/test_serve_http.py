"""``embedrt serve --ray`` (Ray Serve) end to end: a real subprocess on loopback, real HTTP, always torn down.

The replicas run the lean server's app (tests/integrations/test_serve_lean.py covers its routes and limits in
depth); this checks that it serves the same on Ray Serve, batches there, and that Serve's backpressure holds.

One server for the module (starting Ray Serve costs tens of seconds on this machine), configured so that 32
concurrent clients fit (max-ongoing-requests 48) and a flood does not (max-queued-requests 4).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("ray", reason="needs embedrt[ray]")
pytest.importorskip("ray.serve")
httpx = pytest.importorskip("httpx")

from embedrt import Encoder  # noqa: E402
from embedrt.integrations.serve import decode_base64  # noqa: E402

pytestmark = pytest.mark.ray

MAX_INPUTS, MAX_CHARS = 256, 2000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serve(export_dir, log, *args):
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "embedrt.cli",
        "serve",
        str(export_dir),
        "--port",
        str(port),
        "--device",
        "cpu",
        "--ray",
        "--replicas",
        "1",
        "--num-cpus",
        "1",
        "--model-name",
        "tiny",
        *args,
    ]
    with open(log, "wb") as out:
        # NOTE: a new session, so teardown can kill every process Ray started (its agents outlive
        # ray.shutdown)
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"embedrt serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"embedrt serve not healthy after 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tiny_bert, tmp_path_factory):
    """Room for 32 concurrent clients: up to 48 requests in flight on the replica."""
    _, export_dir = tiny_bert
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with _serve(
        export_dir,
        log,
        "--max-batch-size",
        "32",
        "--batch-wait-timeout-ms",
        "10",
        "--max-ongoing-requests",
        "48",
        "--max-queued-requests",
        "256",
        "--max-inputs",
        str(MAX_INPUTS),
        "--max-text-chars",
        str(MAX_CHARS),
    ) as base:
        yield base, Encoder(export_dir, device="cpu")


@pytest.fixture
def small_server(tiny_bert, tmp_path):
    """Two requests in flight and two waiting at most: the third concurrent one on is refused."""
    _, export_dir = tiny_bert
    with _serve(
        export_dir, tmp_path / "serve.log", "--max-ongoing-requests", "2", "--max-queued-requests", "2"
    ) as base:
        yield base


def _post(base, body, timeout=60):
    return httpx.post(f"{base}/v1/embeddings", json=body, timeout=timeout)


TEXTS = [
    "A man is playing a guitar.",
    "",
    "Someone plays an instrument on a stage in front of a crowd.",
    "Ünïcödé, 漢字 and emoji 👍🏽",
    "x " * 300,
]


def test_health_and_model_name(server):
    base, enc = server
    h = httpx.get(f"{base}/health", timeout=10).json()
    assert h["status"] == "ok" and h["model"] == "tiny" and h["dim"] == enc.get_sentence_embedding_dimension()


def test_float_response_equals_encoder(server):
    base, enc = server
    r = _post(base, {"input": TEXTS, "model": "tiny"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "tiny"
    assert [d["index"] for d in body["data"]] == list(range(len(TEXTS)))
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, enc.encode(TEXTS), atol=1e-6, rtol=0)
    tokens = sum(len(ids) for ids in enc.tokenizer.encode_ids(TEXTS))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_single_string_base64_and_dimensions(server):
    base, enc = server
    r = _post(base, {"input": TEXTS[0], "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    (item,) = r.json()["data"]
    np.testing.assert_allclose(decode_base64(item["embedding"]), enc.encode(TEXTS[0]), atol=1e-6, rtol=0)
    r = _post(base, {"input": TEXTS, "dimensions": 8, "encoding_format": "base64"})
    got = np.stack([decode_base64(d["embedding"]) for d in r.json()["data"]])
    assert got.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(got, enc.encode(TEXTS, truncate_dim=8), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "body, match",
    [
        ({"input": []}, "empty list"),
        ({"input": ["ok", 7]}, "input[1]' is an int"),
        ({"input": ["ok", None]}, "input[1]' is NoneType"),
        ({"input": ["t"] * (MAX_INPUTS + 1)}, f"at most {MAX_INPUTS}"),
        ({"input": ["y" * (MAX_CHARS + 1)]}, f"at most {MAX_CHARS}"),
        ({"input": "ok", "encoding_format": "float16"}, "valid choices"),
        ({"input": "ok", "dimensions": 10_000}, "'dimensions' must be"),
        ({"input": "ok", "model": "gpt"}, "unknown model 'gpt'"),
    ],
)
def test_bad_input_is_400_with_json_error(server, body, match):
    base, _ = server
    r = _post(base, body)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert match in r.json()["error"]["message"]


def test_lone_surrogate_is_400(server):
    base, _ = server
    r = httpx.post(f"{base}/v1/embeddings", content=b'{"input": "\\ud800"}', timeout=30)
    assert r.status_code == 400 and "not valid Unicode" in r.json()["error"]["message"]


def test_rerank_route_on_an_embedding_export_is_404(server):
    base, _ = server
    r = httpx.post(f"{base}/v1/rerank", json={"query": "q", "documents": ["d"]}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "route_not_found"


def test_invalid_json_is_400(server):
    base, _ = server
    r = httpx.post(f"{base}/v1/embeddings", content=b"{not json", timeout=30)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def _batch_count(base) -> tuple[int, int]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    values = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(("embedrt_batch_size_sum", "embedrt_batch_size_count"))
    }
    return int(values["embedrt_batch_size_sum"]), int(values["embedrt_batch_size_count"])


def test_32_concurrent_clients_are_batched_and_exact(server, shared_data):
    base, enc = server
    texts = (shared_data / "corpus-qnli.txt").read_text(encoding="utf-8").splitlines()[:320]
    texts_before, batches_before = _batch_count(base)
    sizes: list[int] = []
    lock = threading.Lock()

    def client(k: int) -> list[tuple[int, np.ndarray]]:
        out = []
        with httpx.Client(timeout=60) as c:
            for i in range(k, len(texts), 32):  # 10 single-text requests per client, 320 in all
                r = c.post(f"{base}/v1/embeddings", json={"input": texts[i]})
                assert r.status_code == 200, r.text
                with lock:
                    sizes.append(int(r.headers["x-embedrt-batch-size"]))
                out.append((i, np.array(r.json()["data"][0]["embedding"], dtype=np.float32)))
        return out

    t0 = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        results = [x for f in [pool.submit(client, k) for k in range(32)] for x in f.result(timeout=300)]
    elapsed = time.monotonic() - t0
    assert len(results) == len(texts)
    got = np.stack([v for _, v in sorted(results, key=lambda x: x[0])])
    np.testing.assert_allclose(got, enc.encode(texts), atol=1e-6, rtol=0)
    texts_after, batches_after = _batch_count(base)
    n_texts, n_batches = texts_after - texts_before, batches_after - batches_before
    assert n_texts == len(texts)
    # batching happened: fewer graph runs than requests, and some requests rode in a batch of several
    assert n_batches < len(texts) and max(sizes) > 1, (n_batches, max(sizes))
    print(
        f"\n320 requests from 32 clients in {elapsed:.1f} s: {n_batches} batches, "
        f"mean {n_texts / n_batches:.1f} texts/batch, largest {max(sizes)}"
    )


def test_overload_gives_503_not_a_hang(small_server):
    base = small_server
    heavy = {"input": ["a fairly long sentence that keeps the replica busy for a while " * 4] * 512}
    start = threading.Barrier(40)

    def one(_: int) -> int:
        start.wait(timeout=60)
        r = _post(base, heavy, timeout=120)
        return r.status_code, r.text

    t0 = time.monotonic()
    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(one, range(40), timeout=300))
    codes = [c for c, _ in results]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(503) > 0 and codes.count(200) > 0, codes
    refused = next(text for c, text in results if c == 503)
    assert "backpressure" in refused or "overloaded" in refused, refused
    print(
        f"\n40 concurrent heavy requests: {codes.count(200)} x 200, {codes.count(503)} x 503, "
        f"{time.monotonic() - t0:.1f} s"
    )
    # and the server is fine afterwards
    assert _post(base, {"input": "still alive"}).status_code == 200
