"""Start ``embedrt serve`` as a real subprocess on a free loopback port, wait until it is healthy, always tear
it down (the whole process group: Ray's agents outlive ray.shutdown)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base: str
    port: int
    proc: subprocess.Popen
    log: Path


@contextlib.contextmanager
def serve(export_dir, log: Path, *args: str, timeout: float = 120.0):
    import httpx

    port = free_port()
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
        *args,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"embedrt serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"embedrt serve not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Server(base, port, proc, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def metric(base: str, name: str) -> float:
    """The sum of a metric's samples (over its labels) from /metrics."""
    import httpx

    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )
