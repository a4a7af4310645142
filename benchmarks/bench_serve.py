"""``embedrt serve`` side by side: the lean server, Ray Serve and in-process ``Encoder.encode``, in one run.

    python benchmarks/bench_serve.py minilm.embedrt --corpus ../shared/data/corpus-qnli.txt

Needs ``embedrt[serve]`` for the lean server and ``embedrt[ray]`` for Ray Serve (``--modes lean`` skips Ray).

Each round runs the in-process peers with no server up, then each server alone (the order flipping every
round): it starts on a free loopback port (127.0.0.1 only), its vectors are checked against ``Encoder.encode``
(the run stops if they differ by more than 1e-5), it warms up, then closed-loop clients (each sends its next
request when the previous answer arrived, over one kept-alive connection) run at each concurrency (1, 8, 32),
with one text and with 32 texts per request, and the server stops. Reported: the medians over the rounds of
requests/s, texts/s, p50/p99 latency, and the mean dynamic batch from each server's /metrics. Both servers
run the model with the same onnxruntime threads (``--threads``, default
the lean server's: every core). The in-process peers are ``Encoder.encode`` called in this process, one
request's texts at a time, with no server: once with those threads, once with onnxruntime's default (all
cores); the targets are checked against the better of the two. Every level is bounded: ``--requests`` requests
or ``--level-seconds`` seconds, whichever comes first. The clients run on the same machine as the servers and
compete with them for the CPU.

At the end it checks the serving targets on the one-text rows: lean >= 3x Ray Serve's req/s at 8 and 32
clients; lean 1-client p50 <= in-process p50 + 3 ms; lean 32-client texts/s >= 1.2x in-process one-at-a-time.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


@contextlib.contextmanager
def served(export_dir: str, serve_args: list[str], log_path: Path | None):
    """``embedrt serve`` in a subprocess on a free loopback port; SIGTERM then SIGKILL at exit."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "embedrt.cli",
        "serve",
        export_dir,
        "--host",
        HOST,
        "--port",
        str(port),
        "-q",
        *serve_args,
    ]
    log = open(log_path, "wb") if log_path else open(os.devnull, "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"embedrt serve exited with {proc.returncode}: {' '.join(cmd)}")
            with contextlib.suppress(OSError):
                if _get(port, "/health")[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"embedrt serve not healthy after 300 s: {' '.join(cmd)}")
            time.sleep(0.5)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


def batch_stats(port: int) -> tuple[float, float]:
    text = _get(port, "/metrics")[1].decode()
    vals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("embedrt_batch_size_sum", "embedrt_batch_size_count")):
            name = line.split("{")[0]
            vals[name] = vals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return vals.get("embedrt_batch_size_sum", 0.0), vals.get("embedrt_batch_size_count", 0.0)


def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", "/v1/embeddings", body=body, headers={"content-type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


def run_level(
    port: int, bodies: list[bytes], texts_per_request: int, concurrency: int, requests: int, seconds: float
) -> dict:
    """Closed-loop clients, one kept-alive connection each, until ``requests`` or ``seconds`` run out."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    stop_at = time.perf_counter() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        try:
            while time.perf_counter() < stop_at:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                try:
                    status, data = post(conn, bodies[i % len(bodies)])
                except (OSError, http.client.HTTPException) as e:
                    status, data = -1, repr(e).encode()
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, port, timeout=120)
                dt = time.perf_counter() - t0
                with lock:
                    if status == 200:
                        latencies.append(dt)
                    else:
                        errors.append(f"{status} {data[:200]!r}")
        finally:
            conn.close()

    s0, n0 = batch_stats(port)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    s1, n1 = batch_stats(port)
    return _row(
        latencies, wall, texts_per_request, errors, (s1 - s0) / (n1 - n0) if n1 > n0 else float("nan")
    )


def _row(
    latencies: list[float], wall: float, texts_per_request: int, errors: list[str], mean_batch: float
) -> dict:
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "wall_s": wall,
        "rps": len(latencies) / wall,
        "texts_s": len(latencies) * texts_per_request / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_batch": mean_batch,
    }


def run_direct(enc, batches: list[list[str]], requests: int, seconds: float) -> dict:
    """``Encoder.encode`` of one request's texts at a time, in this process: the peer with no server."""
    lat = []
    stop_at = time.perf_counter() + seconds
    t0 = time.perf_counter()
    for i in range(requests):
        if time.perf_counter() >= stop_at:
            break
        texts = batches[i % len(batches)]
        t = time.perf_counter()
        enc.encode(texts[0] if len(texts) == 1 else texts)
        lat.append(time.perf_counter() - t)
    return _row(lat, time.perf_counter() - t0, len(batches[0]), [], float(len(batches[0])))


def machine() -> str:
    cpu, flags = "?", ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "?":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    isa = (
        "avx512_vnni"
        if "avx512_vnni" in flags
        else "avx512"
        if "avx512f" in flags
        else "avx2"
        if "avx2" in flags
        else "other"
    )
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    import onnxruntime

    import embedrt

    versions = [
        f"Python {platform.python_version()}",
        f"embedrt {embedrt.__version__}",
        f"onnxruntime {onnxruntime.__version__}",
    ]
    for mod in ("uvicorn", "starlette", "ray"):
        with contextlib.suppress(ImportError):
            versions.append(f"{mod} {__import__(mod).__version__}")
    return f"{cpu} ({isa}), {os.cpu_count()} cores, load average {load[0]:.2f} at start; " + ", ".join(
        versions
    )


def check_vectors(port: int, enc, probe: list[str]) -> float:
    c = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        status, data = post(c, json.dumps({"input": probe}).encode())
    finally:
        c.close()
    if status != 200:
        raise SystemExit(f"validation request failed: {status} {data[:300]!r}")
    got = np.array([d["embedding"] for d in json.loads(data)["data"]], dtype=np.float32)
    return float(np.abs(got - enc.encode(probe)).max())


def targets(rows: dict) -> list[tuple[str, float, float, bool]]:
    """(name, measured, threshold, met) for the serving targets on one-text requests, against the better
    in-process peer (the lower p50, the higher texts/s)."""
    out = []
    peers = [r for r in (rows.get(("direct", 1, 1)), rows.get(("direct-all", 1, 1))) if r]
    d = (
        {"p50_ms": min(r["p50_ms"] for r in peers), "texts_s": max(r["texts_s"] for r in peers)}
        if peers
        else None
    )
    for c in (8, 32):
        lean, ray = rows.get(("lean", 1, c)), rows.get(("ray", 1, c))
        if lean and ray:
            r = lean["rps"] / ray["rps"]
            out.append((f"lean / Ray Serve req/s at {c} clients", r, 3.0, r >= 3.0))
    lean1 = rows.get(("lean", 1, 1))
    if lean1 and d:
        extra = lean1["p50_ms"] - d["p50_ms"]
        out.append(("lean 1-client p50 minus in-process encode p50 (ms)", extra, 3.0, extra <= 3.0))
    lean32 = rows.get(("lean", 1, 32))
    if lean32 and d:
        r = lean32["texts_s"] / d["texts_s"]
        out.append(("lean 32-client texts/s / in-process one-at-a-time texts/s", r, 1.2, r >= 1.2))
    return out


def ceilings(rows: dict) -> list[str]:
    """What each lean/Ray target needs against what the model can give with no HTTP at all: the texts/s of
    in-process ``Encoder.encode`` on 32 texts per call (the better peer), a bound no server of this model on
    this machine passes. Empty when the 32-text rows were not run."""
    peers = [r for r in (rows.get(("direct", 32, 1)), rows.get(("direct-all", 32, 1))) if r]
    if not peers:
        return []
    ceiling = max(r["texts_s"] for r in peers)
    out = []
    for c in (8, 32):
        ray = rows.get(("ray", 1, c))
        if ray:
            need = 3.0 * ray["rps"]
            out.append(
                f"3x Ray Serve's req/s at {c} clients needs {need:.0f} one-text req/s; in-process encode of "
                f"32 texts per call gave {ceiling:.0f} texts/s ({need / ceiling:.2f}x of it)"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export_dir")
    p.add_argument("--corpus", required=True, help="text file, one request text per line")
    p.add_argument("--modes", default="lean,ray", help="servers to run (default lean,ray)")
    p.add_argument("--concurrency", default="1,8,32", help="client concurrencies (default 1,8,32)")
    p.add_argument("--sizes", default="1,32", help="texts per request (default 1,32)")
    p.add_argument("--requests", type=int, default=300, help="one-text requests per level (default 300)")
    p.add_argument(
        "--batch-requests", type=int, default=40, help="multi-text requests per level (default 40)"
    )
    p.add_argument("--level-seconds", type=float, default=20.0, help="time bound of one level (default 20)")
    p.add_argument("--warmup", type=int, default=50, help="requests per server before timing (default 50)")
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds; medians (default 3)")
    p.add_argument("--lean-args", default="--device cpu", help="extra arguments of the lean server")
    p.add_argument(
        "--ray-args",
        default="--ray --replicas 1 --num-cpus 2 --device cpu",
        help="extra arguments of the Ray Serve server",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="onnxruntime threads of both servers and of the first in-process peer (default: the lean "
        "server's default, every core)",
    )
    p.add_argument(
        "--variant",
        default=None,
        help="graph variant of both servers and the in-process peers (default: the server's, fp32)",
    )
    p.add_argument("--logs", default=None, help="directory for the servers' logs")
    p.add_argument("--json", default=None, help="also write the results as JSON")
    p.add_argument("--markdown", default=None, help="also write the table as markdown")
    args = p.parse_args(argv)

    from embedrt import Encoder
    from embedrt.integrations._http_app import lean_threads

    threads = args.threads or lean_threads()
    variant = f" --variant {args.variant}" if args.variant else ""
    lean_args = f"{args.lean_args} --threads {threads}{variant}"
    ray_args = f"{args.ray_args} --threads {threads}{variant}"
    enc_variant = {"variant": args.variant} if args.variant else {}

    corpus = [t for t in Path(args.corpus).read_text(encoding="utf-8").splitlines() if t.strip()][:4000]
    levels = [int(c) for c in args.concurrency.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    host = machine()  # NOTE: once, at the start: its load average is the one the run started under
    print(host, flush=True)
    enc = Encoder(args.export_dir, device="cpu", intra_op_threads=threads, **enc_variant)
    enc_all = Encoder(args.export_dir, device="cpu", **enc_variant)  # NOTE: onnxruntime's default threads
    batches = {n: [corpus[i : i + n] for i in range(0, len(corpus) - n + 1, n)] for n in sizes}
    bodies = {n: [json.dumps({"input": b[0] if n == 1 else b}).encode() for b in batches[n]] for n in sizes}
    logs = Path(args.logs) if args.logs else None
    if logs:
        logs.mkdir(parents=True, exist_ok=True)
    runs: dict[tuple, list[dict]] = {}
    run_direct(enc, batches[1], args.warmup, args.level_seconds)
    run_direct(enc_all, batches[1], args.warmup, args.level_seconds)
    for rep in range(args.repeats):
        # NOTE: nothing else is up while the in-process peers run, and each server runs alone: an idle Ray
        # cluster (raylet, GCS, proxy) beside the lean server taxes it and the in-process peers on two cores
        for n in sizes:
            budget = args.requests if n == 1 else args.batch_requests
            for name, e in (("direct", enc), ("direct-all", enc_all)):
                run = run_direct(e, batches[n], budget, args.level_seconds)
                runs.setdefault((name, n, 1), []).append(run)
        order = modes if rep % 2 == 0 else modes[::-1]  # NOTE: A B, B A, ...: neither always goes first
        for m in order:
            extra = (lean_args if m == "lean" else ray_args).split()
            t0 = time.perf_counter()
            with served(args.export_dir, extra, logs / f"{m}.{rep}.log" if logs else None) as port:
                diff = check_vectors(port, enc, corpus[:16])
                print(
                    f"{m}: healthy after {time.perf_counter() - t0:.1f} s; vs Encoder.encode: max abs diff "
                    f"{diff:.1e} over 16 texts",
                    flush=True,
                )
                if diff > 1e-5:
                    raise SystemExit(f"{m}: the server's vectors differ from Encoder.encode; not timing it")
                run_level(port, bodies[1], 1, 8, args.warmup, args.level_seconds)
                for n in sizes:
                    budget = args.requests if n == 1 else args.batch_requests
                    for c in levels:
                        runs.setdefault((m, n, c), []).append(
                            run_level(port, bodies[n], n, c, budget, args.level_seconds)
                        )
        print(
            f"  round {rep + 1}/{args.repeats}: "
            + ", ".join(f"{m}/{n}x{c}: {rs[-1]['rps']:.0f} req/s" for (m, n, c), rs in runs.items()),
            flush=True,
        )
    keys = ("rps", "texts_s", "p50_ms", "p99_ms", "mean_batch")
    rows = {
        k: {
            **{f: float(np.median([r[f] for r in rs])) for f in keys},
            "requests": sum(r["requests"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
            "first_error": next((r["first_error"] for r in rs if r["first_error"]), None),
        }
        for k, rs in runs.items()
    }
    names = {
        "direct": f"in-process `Encoder.encode`, {threads} thread(s)",
        "direct-all": "in-process `Encoder.encode`, all cores",
        "lean": "`embedrt serve` (lean)",
        "ray": "`embedrt serve --ray`",
    }
    lines = [
        "| server | texts/request | clients | requests | req/s | texts/s | p50 ms | p99 ms | mean batch "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        for m in ["direct", "direct-all", *modes]:
            for c in [1] if m.startswith("direct") else levels:
                r = rows[(m, n, c)]
                lines.append(
                    f"| {names[m]} | {n} | {c} | {r['requests']} | {r['rps']:.1f} | {r['texts_s']:.0f} | "
                    f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['mean_batch']:.1f} | {r['errors']} |"
                )
    table = "\n".join(lines)
    print("\n" + table)
    print(f"medians of {args.repeats} alternating rounds; lean: {lean_args}; ray: {ray_args}")
    checks = targets(rows)
    for name, value, threshold, ok in checks:
        print(
            f"{'MET ' if ok else 'MISSED'} {name}: {value:.2f} (target {'<=' if 'minus' in name else '>='} "
            f"{threshold:g})"
        )
    notes = ceilings(rows)
    for line in notes:
        print(f"ceiling: {line}")
    for k, r in rows.items():
        if r["first_error"]:
            print(f"first error of {k}: {r['first_error']}")
    if args.markdown:
        Path(args.markdown).write_text(f"{host}\n\n{table}\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": host,
                    "variant": args.variant or "server default",
                    "lean_args": lean_args,
                    "ray_args": ray_args,
                    "repeats": args.repeats,
                    "rows": [
                        {"server": m, "texts_per_request": n, "clients": c, **r}
                        for (m, n, c), r in rows.items()
                    ],
                    "runs": {f"{m}/{n}/{c}": rs for (m, n, c), rs in runs.items()},
                    "targets": [{"name": a, "value": b, "threshold": t, "met": ok} for a, b, t, ok in checks],
                    "ceilings": notes,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
