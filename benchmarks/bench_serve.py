"""Requests/s and p50/p99 latency of ``embedrt serve`` at several client concurrencies.

    python benchmarks/bench_serve.py /tmp/ray-minilm --corpus ../shared/data/corpus-qnli.txt

Needs ``embedrt[ray,test]`` (Ray Serve for the server, httpx for the clients).

Starts ``embedrt serve`` on a free loopback port (or measures ``--url``), checks the served vectors against
``Encoder.encode`` first (and stops if they differ by more than 1e-5), warms up, then for each concurrency runs
closed-loop clients (each sends its next request when the previous answer arrived), one text per request,
``--repeats`` times, alternating the concurrencies, and reports medians. The mean dynamic batch size comes from
the server's /metrics. The peer is the same single-text ``Encoder.encode`` called in this process with no server
(concurrency 1), measured in the same run: the difference is the cost of HTTP and Ray Serve. The clients run on the same machine as the server, so
they compete with it for the CPU: on a small machine the figures are a floor, not the server's capacity.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(export_dir: str, serve_args: list[str]):
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "embedrt.cli", "serve", export_dir, "--port", str(port), "-q", *serve_args]
    log = open(os.devnull, "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"embedrt serve exited with {proc.returncode}: {' '.join(cmd)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("embedrt serve not healthy after 300 s")
            time.sleep(1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


def batch_stats(base: str) -> tuple[float, float]:
    import httpx

    text = httpx.get(f"{base}/metrics", timeout=10).text
    vals = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(("embedrt_batch_size_sum", "embedrt_batch_size_count"))}
    return vals.get("embedrt_batch_size_sum", 0.0), vals.get("embedrt_batch_size_count", 0.0)


def run_level(base: str, texts: list[str], concurrency: int, requests: int) -> dict:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client(_: int) -> None:
        with httpx.Client(timeout=60) as c:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                r = c.post(f"{base}/v1/embeddings", json={"input": texts[i % len(texts)]})
                dt = time.perf_counter() - t0
                with lock:
                    (latencies.append(dt) if r.status_code == 200 else errors.append(f"{r.status_code} {r.text}"))

    s0, n0 = batch_stats(base)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client, range(concurrency)))
    wall = time.perf_counter() - t0
    s1, n1 = batch_stats(base)
    lat = np.array(latencies) * 1000
    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors),
            "first_error": errors[0] if errors else None, "wall_s": wall, "rps": len(latencies) / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "mean_batch": (s1 - s0) / (n1 - n0) if n1 > n0 else float("nan")}


def run_direct(enc, texts: list[str], requests: int) -> dict:
    lat = []
    t0 = time.perf_counter()
    for i in range(requests):
        t = time.perf_counter()
        enc.encode(texts[i % len(texts)])
        lat.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {"concurrency": "direct", "requests": requests, "errors": 0, "first_error": None, "wall_s": wall,
            "rps": requests / wall, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_batch": 1.0}


def median_row(c, rs: list[dict]) -> dict:
    row = {k: float(np.median([r[k] for r in rs])) for k in ("rps", "p50_ms", "p99_ms", "mean_batch", "wall_s")}
    return {"concurrency": c, "requests": sum(r["requests"] for r in rs), "errors": sum(r["errors"] for r in rs),
            **row, "runs": rs}


def _threads(serve_args: str) -> int | None:
    a = serve_args.split()
    for flag in ("--threads", "--num-cpus"):
        if flag in a:
            return max(1, int(float(a[a.index(flag) + 1])))
    return 1


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    import onnxruntime
    import ray

    import embedrt

    return (f"{cpu}, {os.cpu_count()} cores, load average {load[0]:.2f} at start; Python {platform.python_version()}, "
            f"embedrt {embedrt.__version__}, onnxruntime {onnxruntime.__version__}, ray {ray.__version__}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir")
    p.add_argument("--corpus", required=True, help="text file, one request text per line")
    p.add_argument("--concurrency", default="1,8,32", help="client concurrencies (default 1,8,32)")
    p.add_argument("--requests", type=int, default=400, help="requests per concurrency (default 400)")
    p.add_argument("--warmup", type=int, default=50, help="requests before timing (default 50)")
    p.add_argument("--repeats", type=int, default=3, help="rounds over all concurrencies; medians (default 3)")
    p.add_argument("--url", default=None, help="measure this running server instead of starting one")
    p.add_argument("--serve-args", default="--replicas 1 --num-cpus 2 --device cpu",
                   help="extra arguments for embedrt serve (default: '--replicas 1 --num-cpus 2 --device cpu')")
    p.add_argument("--json", default=None, help="also write the results as JSON")
    args = p.parse_args(argv)

    import httpx

    from embedrt import Encoder

    texts = [t for t in Path(args.corpus).read_text(encoding="utf-8").splitlines() if t.strip()][:5000]
    levels = [int(c) for c in args.concurrency.split(",")]
    ctx = contextlib.nullcontext(args.url) if args.url else served(args.export_dir, args.serve_args.split())
    host = machine()  # NOTE: once, at the start: its load average is the one the run started under
    print(host, flush=True)
    enc = Encoder(args.export_dir, device="cpu", intra_op_threads=_threads(args.serve_args))
    with ctx as base:
        # validate before timing: the served vectors are Encoder.encode's
        probe = texts[:16]
        r = httpx.post(f"{base}/v1/embeddings", json={"input": probe}, timeout=120)
        r.raise_for_status()
        got = np.array([d["embedding"] for d in r.json()["data"]], dtype=np.float32)
        diff = float(np.abs(got - enc.encode(probe)).max())
        print(f"served vs Encoder.encode: max abs diff {diff:.1e} over {len(probe)} texts", flush=True)
        if diff > 1e-5:
            raise SystemExit("the server's vectors differ from Encoder.encode; not timing it")
        run_level(base, texts, min(8, max(levels)), args.warmup)
        runs: dict = {c: [] for c in ["direct", *levels]}
        for rep in range(args.repeats):
            runs["direct"].append(run_direct(enc, texts, args.requests))
            for c in levels:
                runs[c].append(run_level(base, texts, c, args.requests))
            print(f"  round {rep + 1}/{args.repeats}: " + ", ".join(
                f"{c}: {runs[c][-1]['rps']:.1f} req/s" for c in runs), flush=True)
    rows = [median_row(c, rs) for c, rs in runs.items()]
    print("\n| clients | requests | req/s | p50 ms | p99 ms | mean batch | errors |\n|---|---|---|---|---|---|---|")
    for r in rows:
        name = "Encoder.encode in-process (no server)" if r["concurrency"] == "direct" else r["concurrency"]
        print(f"| {name} | {r['requests']} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['mean_batch']:.1f} | {r['errors']} |")
    print(f"medians of {args.repeats} rounds; embedrt serve {args.serve_args}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": host, "serve_args": args.serve_args, "rows": rows},
                                              indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
