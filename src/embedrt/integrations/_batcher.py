"""In-process dynamic batching and the server's Prometheus metrics: pure Python, no web framework, no Ray.

An encode thread takes jobs (a request's texts, or a slice of them) from a bounded queue, joins the ones
that can share a graph run into one batch, runs it, and hands each job its rows back on the event loop it came
from.
While a batch runs, the next one fills: under load batches grow by themselves, and a lone request never waits.
With ``workers`` > 1 that many encode threads take batches, so that the next batch starts while the last
one's slowest graph run is still going (the model's runs then share its threads instead of waiting for them).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: seconds; from 0.1 ms (a queue hop) to 10 s (a long request behind a full queue)
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Overloaded(Exception):
    """The queue is full, or the server is shutting down: answered 503 at once."""


class Histogram:
    """A Prometheus histogram (cumulative buckets, sum, count); thread-safe."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self.sum += value
            self.count += 1
            for k, b in enumerate(self.buckets):
                if value <= b:
                    self.counts[k] += 1

    def render(self, name: str, labels: str) -> list[str]:
        with self._lock:
            counts, total, n = list(self.counts), self.sum, self.count
        out = [f'{name}_bucket{{{labels},le="{b:g}"}} {c}' for b, c in zip(self.buckets, counts, strict=True)]
        return out + [
            f'{name}_bucket{{{labels},le="+Inf"}} {n}',
            f"{name}_sum{{{labels}}} {total:.9g}",
            f"{name}_count{{{labels}}} {n}",
        ]


def _label(value: str) -> str:
    """A Prometheus label value, escaped (a model name may hold quotes or backslashes)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """The server's counters and histograms, rendered in the Prometheus text format (0.0.4)."""

    def __init__(self, replica: str, model: str) -> None:
        self.replica = replica
        self.model = model
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.inputs = 0
        self.tokens = 0
        self.ongoing = 0
        self.queued_texts = 0
        self.batch_size = Histogram(BATCH_SIZE_BUCKETS)
        self.request_seconds = Histogram(LATENCY_BUCKETS)
        self.queue_seconds = Histogram(LATENCY_BUCKETS)
        self.tokenize_seconds = Histogram(LATENCY_BUCKETS)
        self.inference_seconds = Histogram(LATENCY_BUCKETS)

    def count_request(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[(route, status)] = self.requests.get((route, status), 0) + 1

    def count_work(self, inputs: int, tokens: int) -> None:
        with self._lock:
            self.inputs += inputs
            self.tokens += tokens

    def render(self) -> str:
        lab = f'replica="{_label(self.replica)}",model="{_label(self.model)}"'
        lines = [
            "# HELP embedrt_requests_total Requests by route and HTTP status.",
            "# TYPE embedrt_requests_total counter",
        ]
        with self._lock:
            requests = sorted(self.requests.items())
            inputs, tokens, ongoing, queued = self.inputs, self.tokens, self.ongoing, self.queued_texts
        lines += [f'embedrt_requests_total{{{lab},route="{r}",status="{s}"}} {n}' for (r, s), n in requests]
        for name, kind, value, help_ in (
            ("embedrt_inputs_total", "counter", inputs, "Texts (or rerank documents) processed."),
            ("embedrt_prompt_tokens_total", "counter", tokens, "Tokens embedded (after truncation)."),
            ("embedrt_ongoing_requests", "gauge", ongoing, "Requests admitted and not yet answered."),
            ("embedrt_queued_texts", "gauge", queued, "Texts waiting for an encode thread."),
        ):
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name}{{{lab}}} {value}"]
        for name, hist, help_ in (
            ("embedrt_batch_size", self.batch_size, "Texts (or pairs) per dynamic batch."),
            ("embedrt_request_duration_seconds", self.request_seconds, "Successful requests, end to end."),
            (
                "embedrt_queue_duration_seconds",
                self.queue_seconds,
                "Time a job waited for an encode thread.",
            ),
            ("embedrt_tokenization_duration_seconds", self.tokenize_seconds, "Tokenization per request."),
            ("embedrt_inference_duration_seconds", self.inference_seconds, "Graph runs per dynamic batch."),
        ):
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} histogram", *hist.render(name, lab)]
        return "\n".join(lines) + "\n"


@dataclass(eq=False)
class _Job:
    key: Hashable
    items: Any
    size: int
    tokens: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # NOTE: the request was cancelled (client gone); nothing to hand back
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Batcher:
    """A bounded queue and the encode threads (one by default) that run jobs in dynamic batches.

    Args:
        run: ``run(key, [items, ...]) -> [result, ...]``, one result per job, called on the encode thread with
            the jobs of one batch (they share ``key``: only jobs that can share a graph run share a batch).
        max_batch_size: texts per batch; a job is never split here (the caller slices big requests).
        max_batch_tokens: tokens per batch (jobs that report 0 tokens are bounded by size only).
        wait_s: once the encode thread is free, how long the oldest job waits for the batch to fill. 0: run
            at once; the jobs that arrive while a batch runs form the next one.
        max_queued_texts: texts waiting at most; ``submit`` raises Overloaded beyond that.
        metrics: where queue time, inference time and batch sizes go.
        workers: encode threads, each running one batch at a time (1: one batch at a time in all).
    """

    def __init__(
        self,
        run: Callable[[Hashable, list[Any]], list[Any]],
        *,
        max_batch_size: int,
        max_batch_tokens: int,
        wait_s: float,
        max_queued_texts: int,
        metrics: Metrics,
        workers: int = 1,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self._run = run
        self.workers = workers
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.wait_s = wait_s
        self.max_queued_texts = max_queued_texts
        self.metrics = metrics
        self._queue: deque[_Job] = deque()
        self._queued_texts = 0
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        with self._cond:
            if not self._threads and not self._closed:
                names = (
                    [f"embedrt-encode-{k}" for k in range(self.workers)]
                    if self.workers > 1
                    else ["embedrt-encode"]
                )
                self._threads = [threading.Thread(target=self._loop, name=n, daemon=True) for n in names]
                for t in self._threads:
                    t.start()

    @property
    def closed(self) -> bool:
        return self._closed

    async def submit(self, key: Hashable, jobs: Sequence[tuple[Any, int, int]]) -> tuple[list[Any], int]:
        """Queue ``jobs`` (``(items, texts, tokens)`` each) together, all or none, and await their results.

        Returns:
            The results in job order, and the texts of the largest batch they ran in.

        Raises:
            Overloaded: they do not fit in the queue, or the batcher is closing.
            Exception: whatever ``run`` raised for their batch.
        """
        if not self._threads:
            self.start()
        loop = asyncio.get_running_loop()
        texts = sum(n for _, n, _ in jobs)
        queued = [_Job(key, items, n, t, loop, loop.create_future()) for items, n, t in jobs]
        with self._cond:
            if self._closed:
                raise Overloaded("the server is shutting down")
            if self._queued_texts + texts > self.max_queued_texts:
                raise Overloaded(
                    f"the queue is full ({self._queued_texts} texts waiting, at most "
                    f"{self.max_queued_texts}); retry later"
                )
            self._queue.extend(queued)
            self._queued_texts += texts
            self.metrics.queued_texts = self._queued_texts
            self._cond.notify()
        try:
            done = await asyncio.gather(*[j.future for j in queued], return_exceptions=True)
        except asyncio.CancelledError:
            for j in queued:
                j.future.cancel()
            raise
        for d in done:
            if isinstance(d, BaseException):
                raise d
        return [r for r, _ in done], max(n for _, n in done)

    def close(self, timeout: float | None = None) -> None:
        """Refuse new jobs, run the queued ones, and stop the encode threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.perf_counter() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.perf_counter()))

    # ------------------------------------------------------------------ the encode thread
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                if self.wait_s > 0:
                    deadline = self._queue[0].enqueued + self.wait_s
                    while self._queued_texts < self.max_batch_size and not self._closed:
                        remaining = deadline - time.perf_counter()
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                if not self._queue:  # NOTE: another encode thread took them while this one waited
                    continue
                batch = self._take()
            if batch:
                self._run_batch(batch)

    def _take(self) -> list[_Job]:
        """The oldest job and the queued ones that fit beside it (same key, within size and tokens)."""
        first = self._queue.popleft()
        batch, size, tokens = [first], first.size, first.tokens
        rest: deque[_Job] = deque()
        while self._queue and size < self.max_batch_size:
            job = self._queue.popleft()
            if (
                job.key == first.key
                and size + job.size <= self.max_batch_size
                and tokens + job.tokens <= self.max_batch_tokens
            ):
                batch.append(job)
                size += job.size
                tokens += job.tokens
            else:
                rest.append(job)
                if len(rest) >= 64:  # NOTE: bound the scan; FIFO order of what is left stays as it was
                    break
        rest.extend(self._queue)
        self._queue = rest
        self._queued_texts -= sum(j.size for j in batch)
        self.metrics.queued_texts = self._queued_texts
        live = [j for j in batch if not j.future.cancelled()]
        return live

    def _run_batch(self, batch: list[_Job]) -> None:
        t0 = time.perf_counter()
        for j in batch:
            self.metrics.queue_seconds.observe(t0 - j.enqueued)
        error: BaseException | None = None
        results: list[Any] = [None] * len(batch)
        try:
            results = self._run(batch[0].key, [j.items for j in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} jobs")
        except Exception as e:  # noqa: BLE001 - handed to each request, which answers it
            error = e
        self.metrics.inference_seconds.observe(time.perf_counter() - t0)
        size = sum(j.size for j in batch)
        self.metrics.batch_size.observe(size)
        for j, r in zip(batch, results, strict=True):
            try:
                j.loop.call_soon_threadsafe(_resolve, j.future, (r, size), error)
            except RuntimeError:  # NOTE: that request's event loop is closed; nobody waits for it
                pass


def split_evenly(n: int, max_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` slices of ``range(n)``: the fewest parts of at most ``max_size``, of even sizes."""
    parts = max(1, math.ceil(n / max_size))
    bounds = [round(k * n / parts) for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts)]
