"""``embedrt bench``: every runner in its own subprocess, alternating (A B C A B C ...), medians and
pair-by-pair ratios, agreement with the PyTorch reference, and efficiency against a matmul roofline.

One orchestrator for every task: a ``TaskSpec`` says what differs (the items and their tokens, how agreement
is measured, the report's names and table). ``EMBEDDING`` is here; the cross-encoder spec is ``cross.CROSS``,
the sparse one ``sparse.SPARSE_SPEC``, the multi-vector one ``multivector.MULTI_VECTOR_SPEC``. The runners,
embedrt's and the peers', are one registry table in ``worker.PEERS``."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmbedrtError, InputError
from ..manifest import MANIFEST_NAME, Manifest, read_manifest
from ..textfile import iter_lines
from .flops import corpus_gflop
from .worker import PEERS as RUNNERS
from .worker import read_texts

SCHEMA = "embedrt-bench/1"
#: The peers ``--peers`` accepts (every runner of ``worker.PEERS`` but embedrt itself).
PEERS = tuple(name for name in RUNNERS if name != "embedrt")
REFERENCE = "st-torch"
WORKER = Path(__file__).with_name("worker.py")


@dataclass
class BenchConfig:
    """What to measure. ``target`` is an export directory, or a model that is exported first."""

    target: str
    corpus: str
    limit: int = 4000
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8, 32, 128])
    headline_batch_size: int = 32
    variants: list[str] | None = None
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    repeats: int = 3
    latency_calls: int = 200
    sweep_limit: int = 1000
    peer_python: str | None = None
    workdir: str | None = None
    roofline_shape: tuple[int, int, int] = (2048, 1024, 1024)
    worker_timeout_s: float = 1800.0

    def validate(self) -> None:
        bad = [p for p in self.peers if p not in PEERS]
        if bad:
            raise InputError(f"unknown peers {bad}; valid choices: {list(PEERS)}")
        if self.repeats < 1 or self.limit < 1 or self.latency_calls < 1:
            raise InputError("repeats, limit and latency_calls must be positive")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise InputError(f"batch sizes must be positive ints, got {self.batch_sizes}")
        if self.headline_batch_size not in self.batch_sizes:
            self.batch_sizes = sorted({*self.batch_sizes, self.headline_batch_size})
        if not any(line.strip() for line in iter_lines(self.corpus, "corpus file")):
            raise InputError(f"corpus file {self.corpus} has no text: give one text (or pair) per line")


class Progress:
    def __init__(self, total: int, quiet: bool) -> None:
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.done = 0
        self.total = total
        self.bar = None
        if not quiet:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, unit="run", desc="bench", file=sys.stderr)
            except ImportError:
                self.bar = None

    def phase(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description(text)
        elif not self.quiet:
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
            print(
                f"[{self.done}/{self.total}] {text} (elapsed {elapsed:.0f} s, ETA {eta:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    def step(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif not self.quiet:
            print(text, file=sys.stderr, flush=True)


def call_worker(python: str, cfg: dict[str, Any], tmp: Path, name: str, timeout: float) -> dict[str, Any]:
    """Run ``worker.py`` on ``cfg`` under ``python``; its JSON result, or ``{"ok": False, "error": ...}``."""
    cfg = dict(cfg)
    cfg["result_out"] = str(tmp / f"{name}.result.json")
    cfg_path = tmp / f"{name}.config.json"
    cfg["t_spawn"] = time.time()
    cfg_path.write_text(json.dumps(cfg))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore", TRANSFORMERS_VERBOSITY="error")
    try:
        proc = subprocess.run(
            [python, str(WORKER), str(cfg_path)], capture_output=True, text=True, timeout=timeout, env=env
        )
    except FileNotFoundError:
        return {"ok": False, "error": f"interpreter not found: {python}"}
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    result_path = Path(cfg["result_out"])
    if not result_path.is_file():
        return {"ok": False, "error": f"worker exited {proc.returncode}: {proc.stderr.strip()[-400:]}"}
    return json.loads(result_path.read_text())


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = " ".join(
            f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if f" {f}" in text
        )
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "isa": flags,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions(python: str) -> dict[str, str]:
    code = (
        "import json,importlib.metadata as m\nout={}\n"
        "for d in ['embedrt','onnxruntime','sentence-transformers','transformers','torch','optimum-onnx',"
        "'fastembed','tokenizers','numpy']:\n"
        "    try: out[d]=m.version(d)\n    except Exception: pass\nprint(json.dumps(out))"
    )
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)
    except Exception:  # noqa: BLE001
        return {}


def median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.median(vals)) if vals else None


def fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


@dataclass(frozen=True)
class TaskSpec:
    """What one benchmark task changes on the shared orchestrator."""

    task: str  #: the worker's task (``worker.TASKS``) and the manifest's ``task``
    schema: str
    unit: str  #: "sentences" or "pairs": the report's ``{unit}_per_s`` keys
    count_key: str  #: ``n_texts`` or ``n_pairs`` in the report's config
    noun: str  #: "texts" or "pairs", in the markdown
    #: (cfg, export_dir, manifest) -> the real token count of every item, in order
    lengths: Callable[[BenchConfig, Path, dict[str, Any]], list[int]]
    #: (values, reference) -> agreement figures, both float64 arrays of the same shape
    compare: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    #: (report) -> the markdown's first line
    title: Callable[[dict[str, Any]], str]
    #: the markdown's agreement columns: (header, key, format)
    agreement_columns: tuple[tuple[str, str, str], ...]
    onnx_copy_dir: str = "st-onnx"
    config_tag: dict[str, str] = field(default_factory=dict)
    #: (manifest) -> more entries of the report's config
    config_extra: Callable[[Manifest], dict[str, Any]] = lambda manifest: {}
    worker_extra: Callable[[dict[str, Any]], dict[str, Any]] = lambda manifest: {}
    #: the roofline measured in every repetition (the fraction taken per repetition), or once before them
    roofline_per_repetition: bool = True
    #: extra pair-by-pair ratios: (ratio key, run key)
    ratio_extras: tuple[tuple[str, str], ...] = ()
    report_graph: bool = False  #: the summary says which graph the embedrt runner served
    #: GFLOP/s against a matmul roofline (False: neither is measured, e.g. where FLOPs are not modelled)
    roofline: bool = True
    flip_order: bool = False  #: every other repetition runs the runners in reverse order
    rate_format: str = ".0f"
    rate_header: str = "sent/s"


def _prepare_target(cfg: BenchConfig, workdir: Path, progress: Progress) -> Path:
    target = Path(cfg.target).expanduser()
    if (target / MANIFEST_NAME).is_file():
        return target
    export_dir = workdir / "export"
    if not (export_dir / MANIFEST_NAME).is_file():
        progress.note(f"exporting {cfg.target} to {export_dir} first")
        from ..export import export_model

        export_model(cfg.target, export_dir, force=True)
    return export_dir


def spec_for(task: str | None) -> TaskSpec:
    """The spec of a manifest's (or a report config's) ``task``; embedding when it has none."""
    if task == "cross-encoder":
        from .cross import CROSS

        return CROSS
    if task == "sparse":
        from .sparse import SPARSE_SPEC

        return SPARSE_SPEC
    if task == "multi-vector":
        from .multivector import MULTI_VECTOR_SPEC

        return MULTI_VECTOR_SPEC
    return EMBEDDING


def run_bench(cfg: BenchConfig, quiet: bool = False) -> dict[str, Any]:
    """Run the whole benchmark and return the JSON-able report (its keys: docs/performance.md)."""
    cfg.validate()
    workdir = (
        Path(cfg.workdir)
        if cfg.workdir
        else Path.home()
        / ".cache"
        / "embedrt"
        / "bench"
        / hashlib.sha1(str(Path(cfg.target).expanduser().absolute()).encode()).hexdigest()[:12]
    )
    workdir.mkdir(parents=True, exist_ok=True)
    export_dir = _prepare_target(cfg, workdir, Progress(total=0, quiet=True))
    manifest = read_manifest(export_dir)
    spec = spec_for(manifest.task)
    variants = cfg.variants or list(manifest.variants)
    unknown = [v for v in variants if v not in manifest.variants]
    if unknown:
        raise InputError(f"unknown variants {unknown}; this export has {sorted(manifest.variants)}")
    model_dir = manifest.source_path
    peer_python = cfg.peer_python or sys.executable
    lengths = spec.lengths(cfg, export_dir, manifest)  # NOTE: our tokenizer: the same tokens every peer sees
    gflop = corpus_gflop(lengths, manifest.raw.get("model_config", {})) if spec.roofline else None

    labels: list[tuple[str, str, str, dict[str, Any]]] = [  # (label, runner, python, extra cfg)
        (f"embedrt-{v}", "embedrt", sys.executable, {"variant": v}) for v in variants
    ]
    skipped: list[dict[str, str]] = []
    for peer in cfg.peers:
        if spec.task not in RUNNERS[peer].runners:
            has = " and ".join(RUNNERS[peer].runners)
            skipped.append(
                {"runner": peer, "reason": f"no {spec.task} runner for this peer ({has} peers only)"}
            )
    peers = [p for p in cfg.peers if spec.task in RUNNERS[p].runners]
    roofline_runs = 0 if not spec.roofline else cfg.repeats if spec.roofline_per_repetition else 1
    progress = Progress(
        total=len(peers) + 1 + roofline_runs + cfg.repeats * (len(variants) + len(peers)), quiet=quiet
    )
    for s in skipped:
        progress.note(f"skipping {s['runner']}: {s['reason']}")
    report: dict[str, Any] = {
        "schema": spec.schema,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": machine(),
        "config": {
            **{k: v for k, v in asdict(cfg).items() if k not in ("workdir",)},
            **spec.config_tag,
            **spec.config_extra(manifest),
            "export_dir": str(export_dir),
            "model_dir": model_dir,
            spec.count_key: len(lengths),
            "real_tokens": int(sum(lengths)),
            "mean_tokens": float(np.mean(lengths)) if lengths else 0.0,
            "corpus_gflop": gflop,
            "max_seq_length": manifest.max_seq_length,
        },
    }
    if spec.task == "embedding":  # NOTE: long texts (passages) are cut at the window, for every runner alike
        report["config"]["truncated_texts"] = _truncated_texts(cfg, manifest)
    report["versions"] = {"embedrt": versions(sys.executable)}
    if peer_python != sys.executable:
        report["versions"]["peers"] = versions(peer_python)

    with tempfile.TemporaryDirectory(prefix=f"embedrt-bench-{spec.task}-") as tmpdir:
        tmp = Path(tmpdir)
        common = {
            "task": spec.task,
            "input": str(Path(cfg.corpus).absolute()),
            "limit": cfg.limit,
            "batch_sizes": cfg.batch_sizes,
            "headline_batch_size": cfg.headline_batch_size,
            "sweep_limit": cfg.sweep_limit,
            "latency_calls": cfg.latency_calls,
            "export_dir": str(export_dir),
            "model_dir": model_dir,
            "onnx_model_dir": str(workdir / spec.onnx_copy_dir),
            "openvino_model_dir": str(workdir / "st-openvino"),
            **spec.worker_extra(manifest),
        }
        prepared: dict[str, dict[str, Any]] = {}
        labels = _probe_peers(cfg, peers, common, tmp, peer_python, labels, skipped, progress, prepared)
        if prepared:
            report["prepared"] = prepared
        runs = _repetitions(spec, cfg, common, tmp, labels, report, progress)
        names = [lab for lab, *_ in labels]
        agreement = _agreement(spec, names, tmp, cfg.repeats)

    report["runs"] = runs
    report["skipped"] = skipped
    report["summary"] = _summarize(spec, runs, names, cfg, report, agreement)
    report["ratios"] = _ratios(spec, runs, names, cfg)
    return report


def _probe_peers(
    cfg: BenchConfig,
    peers: list[str],
    common: dict[str, Any],
    tmp: Path,
    peer_python: str,
    labels: list[tuple[str, str, str, dict[str, Any]]],
    skipped: list[dict[str, str]],
    progress: Progress,
    prepared: dict[str, dict[str, Any]] | None = None,
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The labels to run: ``labels`` plus every peer that imports under ``peer_python`` (and whose ONNX copy,
    or own copy, could be made); the others go to ``skipped`` with their reason. What each peer's own
    preparation reported (its conversion time, say) goes to ``prepared``."""
    for peer in peers:
        progress.phase(f"probe {peer}")
        # NOTE: the probe imports the peer's libraries (optimum, onnxruntime, torch); on a loaded machine that
        # alone can take over 120 s
        res = call_worker(
            peer_python,
            {**common, "mode": "probe", "runner": peer},
            tmp,
            f"probe-{peer}",
            min(600.0, cfg.worker_timeout_s),
        )
        progress.step()
        if not res.get("ok"):
            reason = (
                "not installed: " + ", ".join(res.get("missing", []))
                if res.get("missing")
                else res.get("error", "unknown")
            )
            skipped.append({"runner": peer, "reason": reason})
            progress.note(f"skipping {peer}: {reason}")
            continue
        labels.append((peer, peer, peer_python, {}))
    on_copy = [label for label, runner, *_ in labels if RUNNERS[runner].onnx_copy]
    if on_copy:
        progress.phase("prepare the sentence-transformers ONNX copies")
        res = call_worker(peer_python, {**common, "mode": "prepare"}, tmp, "prepare", cfg.worker_timeout_s)
        if not res.get("ok"):
            skipped += [
                {"runner": label, "reason": f"ONNX export failed: {res.get('error')}"} for label in on_copy
            ]
            labels = [lab for lab in labels if lab[0] not in on_copy]
    for label, runner, python, _ in list(labels):
        if RUNNERS[runner].prepare is None:
            continue
        # NOTE: a peer's own conversion (OpenVINO IR, its int8 calibration) is made and timed here, once per
        # workdir, and is not part of the timed runs' cold start
        progress.phase(f"prepare {label}")
        res = call_worker(
            python,
            {**common, "mode": "prepare-peer", "runner": runner},
            tmp,
            f"prepare-{label}",
            cfg.worker_timeout_s,
        )
        if not res.get("ok"):
            skipped.append({"runner": label, "reason": f"preparing its model failed: {res.get('error')}"})
            progress.note(f"skipping {label}: preparing its model failed: {res.get('error')}")
            labels = [lab for lab in labels if lab[0] != label]
        elif prepared is not None:
            prepared[label] = {k: v for k, v in res.items() if k != "ok"}
    progress.step()
    return labels


def _repetitions(
    spec: TaskSpec,
    cfg: BenchConfig,
    common: dict[str, Any],
    tmp: Path,
    labels: list[tuple[str, str, str, dict[str, Any]]],
    report: dict[str, Any],
    progress: Progress,
) -> list[dict[str, Any]]:
    """Every runner once per repetition, alternating, and the roofline; the runs (the roofline goes into
    ``report``)."""
    runs: list[dict[str, Any]] = []
    roofs: list[dict[str, Any]] = []
    for rep in range(cfg.repeats):
        if spec.roofline and (spec.roofline_per_repetition or rep == 0):
            # NOTE: measured in every repetition (where the spec asks), between the runners, so that
            # it sees the same machine load as they do; the fraction is taken per repetition, then the
            # median.
            progress.phase(f"rep {rep + 1}/{cfg.repeats}: roofline (onnxruntime MatMul / MatMulInteger)")
            roof = call_worker(
                sys.executable,
                {"mode": "roofline", "shape": list(cfg.roofline_shape), "reps": 20},
                tmp,
                f"roofline.rep{rep}",
                600,
            )
            progress.step()
            if not spec.roofline_per_repetition:
                report["roofline"] = roof if "fp32_gflops" in roof else {"error": roof.get("error")}
            elif roof.get("ok", True) and "fp32_gflops" in roof:
                roofs.append({**roof, "rep": rep})
        # NOTE: where the spec asks, the order flips every repetition, so that no runner always runs first
        order = labels[::-1] if spec.flip_order and rep % 2 else labels
        for label, runner, python, extra in order:
            progress.phase(f"rep {rep + 1}/{cfg.repeats}: {label}")
            wcfg = {
                **common,
                **extra,
                "mode": "run",
                "runner": runner,
                "label": label,
                "rep": rep,
                "values_out": str(tmp / f"{label}.rep{rep}.npy"),
            }
            res = call_worker(python, wcfg, tmp, f"{label}.rep{rep}", cfg.worker_timeout_s)
            res.setdefault("label", label)
            res.setdefault("rep", rep)
            if res.get("ok"):
                res.pop("traceback", None)
            else:
                progress.note(f"{label} failed in rep {rep + 1}: {res.get('error')}")
            runs.append(res)
            progress.step()
    progress.close()
    if spec.roofline and spec.roofline_per_repetition:
        report["roofline"] = (
            {
                "shape": list(cfg.roofline_shape),
                "provider": "CPUExecutionProvider",
                "reps": roofs,
                "fp32_gflops": median([r["fp32_gflops"] for r in roofs]),
                "int8_gflops": median([r["int8_gflops"] for r in roofs]),
            }
            if roofs
            else {"error": "roofline measurement failed"}
        )
    return runs


def _first(tmp: Path, label: str, repeats: int) -> Path | None:
    return next(
        (tmp / f"{label}.rep{r}.npy" for r in range(repeats) if (tmp / f"{label}.rep{r}.npy").is_file()), None
    )


def _agreement(spec: TaskSpec, labels: list[str], tmp: Path, repeats: int) -> dict[str, dict[str, float]]:
    ref = _first(tmp, REFERENCE, repeats)
    if ref is None:
        return {}
    reference = np.load(ref).astype(np.float64)
    out = {}
    for label in labels:
        path = _first(tmp, label, repeats)
        if path is None:
            continue
        values = np.load(path).astype(np.float64)
        if values.shape != reference.shape:
            out[label] = {"error": f"shape {values.shape} != reference {reference.shape}"}
            continue
        out[label] = spec.compare(values, reference)
    return out


def _compare_embeddings(emb: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    cos = (emb * reference).sum(1) / np.maximum(
        np.linalg.norm(emb, axis=1) * np.linalg.norm(reference, axis=1), 1e-30
    )
    return {
        "max_abs_diff": float(np.abs(emb - reference).max()),
        "mean_cosine": float(cos.mean()),
        "min_cosine": float(cos.min()),
    }


def _headline(spec: TaskSpec, run: dict[str, Any], cfg: BenchConfig) -> float | None:
    t = run.get("throughput", {}).get(str(cfg.headline_batch_size))
    return t[f"{spec.unit}_per_s"] if t else None


def _summarize(spec: TaskSpec, runs, labels, cfg, report, agreement) -> dict[str, Any]:
    tokens = report["config"]["real_tokens"]
    n = report["config"][spec.count_key]
    gflop = report["config"]["corpus_gflop"]
    roof = report.get("roofline", {})
    rate = f"{spec.unit}_per_s"
    out = {}
    for label in labels:
        ok = [r for r in runs if r.get("label") == label and r.get("ok")]
        if not ok:
            continue
        per_s = median([_headline(spec, r, cfg) for r in ok])
        entry: dict[str, Any] = {
            "runs_ok": len(ok),
            "provider": ok[0].get("provider"),
            "version": ok[0].get("version"),
        }
        if spec.report_graph:
            entry["graph"] = ok[0].get("graph")
            entry["cpu_kernels"] = ok[0].get("cpu_kernels")
        entry.update(
            {
                rate: per_s,
                "tokens_per_s": per_s * tokens / n if per_s else None,
                f"sweep_{rate}": {
                    str(bs): median([r["throughput"][str(bs)][rate] for r in ok]) for bs in cfg.batch_sizes
                },
                "latency_p50_ms": median([r["latency_ms"]["p50"] for r in ok]),
                "latency_p99_ms": median([r["latency_ms"]["p99"] for r in ok]),
                "cold_start_s": median([r["cold_start_s"] for r in ok]),
                "peak_rss_mib": median([r["peak_rss_mib"] for r in ok]),
                "agreement": agreement.get(label),
            }
        )
        if gflop and per_s:
            entry["gflops"] = gflop * per_s / n
            if spec.roofline_per_repetition:
                kind = "int8" if "int8" in label else "fp32"
                peaks = {r["rep"]: r.get(f"{kind}_gflops") for r in roof.get("reps", [])}
                # Per repetition: this runner's GFLOP/s over the roofline measured in the same repetition.
                fractions = [
                    gflop * _headline(spec, r, cfg) / n / peaks[r["rep"]]
                    for r in ok
                    if _headline(spec, r, cfg) and peaks.get(r.get("rep"))
                ]
                entry["roofline_fraction"] = median(fractions)
                entry["roofline_kind"] = kind
            else:
                peak = roof.get("fp32_gflops")
                entry["roofline_fraction"] = entry["gflops"] / peak if peak else None
        out[label] = entry
    return out


def _ratios(spec: TaskSpec, runs, labels, cfg) -> dict[str, dict[str, dict[str, float | None]]]:
    """Pair by pair: for each repetition, runner / peer, then the median over repetitions."""
    by = {(r.get("label"), r.get("rep")): r for r in runs if r.get("ok")}
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for a in labels:
        for b in labels:
            if a == b:
                continue
            thr, lat = [], []
            extras: dict[str, list[float]] = {name: [] for name, _ in spec.ratio_extras}
            for rep in range(cfg.repeats):
                ra, rb = by.get((a, rep)), by.get((b, rep))
                if not ra or not rb:
                    continue
                ha, hb = _headline(spec, ra, cfg), _headline(spec, rb, cfg)
                if ha and hb:
                    thr.append(ha / hb)
                lat.append(ra["latency_ms"]["p50"] / rb["latency_ms"]["p50"])
                for name, key in spec.ratio_extras:
                    extras[name].append(ra[key] / rb[key])
            if thr or lat:
                out.setdefault(a, {})[b] = {
                    "throughput": median(thr),
                    "latency_p50": median(lat),
                    **{name: median(v) for name, v in extras.items()},
                    "pairs": len(thr),
                    "per_repetition": thr,
                }
    return out


def to_markdown(report: dict[str, Any]) -> str:
    """The table of docs/performance.md: one row per runner, ratios against every peer measured in the same
    run, then the batch-size sweep, the graph each embedrt runner ran, and the skipped peers."""
    spec = spec_for(report.get("config", {}).get("task"))
    cfg = report["config"]
    s = report["summary"]
    labels = list(s)
    peers = [p for p in (*PEERS, "embedrt-fp32") if p in s]
    rate = f"{spec.unit}_per_s"
    lines = [
        spec.title(report),
        "",
        f"| runner | {spec.rate_header} | tokens/s | "
        + " | ".join(f"vs {p}" for p in peers)
        + " | p50 ms | p99 ms | cold start s | peak RSS MiB | "
        + " | ".join(h for h, *_ in spec.agreement_columns)
        + (" | GFLOP/s | roofline |" if spec.roofline else " |"),
        "|---" * (7 + 2 * spec.roofline + len(spec.agreement_columns) + len(peers)) + "|",
    ]
    for label in labels:
        e = s[label]
        ag = e.get("agreement") or {}
        ratios = [
            report["ratios"].get(label, {}).get(p, {}).get("throughput") if p != label else None
            for p in peers
        ]
        frac = e.get("roofline_fraction")
        roofline = f"{fmt(100 * frac if frac else None, '.0f')}%"
        if spec.roofline_per_repetition:
            roofline += f" {e.get('roofline_kind', '')}"
        lines.append(
            f"| {label} | {fmt(e[rate], spec.rate_format)} | {fmt(e['tokens_per_s'], '.0f')} | "
            + " | ".join("–" if r is None else f"{r:.2f}x" for r in ratios)
            + f" | {fmt(e['latency_p50_ms'], '.2f')} | {fmt(e['latency_p99_ms'], '.2f')} | "
            f"{fmt(e['cold_start_s'], '.2f')} | {fmt(e['peak_rss_mib'], '.0f')} | "
            + " | ".join(fmt(ag.get(key), form) for _, key, form in spec.agreement_columns)
            + (f" | {fmt(e.get('gflops'), '.0f')} | {roofline} |" if spec.roofline else " |")
        )
    bss = cfg["batch_sizes"]
    lines += [
        "",
        f"Batch-size sweep, {spec.unit}/s (batch {cfg['headline_batch_size']} on all {spec.noun}; others "
        f"on the first {min(cfg['sweep_limit'], cfg[spec.count_key])}):",
        "",
        "| runner | " + " | ".join(f"bs {b}" for b in bss) + " |",
        "|---" * (len(bss) + 1) + "|",
    ]
    for label in labels:
        sw = s[label][f"sweep_{rate}"]
        lines.append(f"| {label} | " + " | ".join(fmt(sw.get(str(b)), spec.rate_format) for b in bss) + " |")
    graphs = [f"{label}: {s[label]['graph']}" for label in labels if s[label].get("graph")]
    if graphs:
        lines += ["", "Graph each embedrt runner ran: " + "; ".join(graphs) + "."]
    kernels = next((s[label]["cpu_kernels"] for label in labels if s[label].get("cpu_kernels")), None)
    if kernels:
        lines += [
            "",
            f"embedrt's CPU kernels: native ops {kernels['isa']} (CPU best {kernels['cpu_isa']}), "
            f"PackedMatMul {kernels['packed_matmul']}; PackedMatMulInteger "
            f"{kernels.get('packed_int8_gemm', 'not in this build')}; int8 GEMM {kernels['int8_gemm']}.",
        ]
    for label, prep in report.get("prepared", {}).items():
        lines += ["", f"Prepared {label} (before the runs, not in their cold start): " + _prepared_text(prep)]
    if report.get("skipped"):
        lines += [""] + [f"Skipped {x['runner']}: {x['reason']}" for x in report["skipped"]]
    return "\n".join(lines) + "\n"


def _prepared_text(prep: dict[str, Any]) -> str:
    """What a peer's own preparation took: ``OpenVINO IR conversion 12.3 s; int8 calibration ...``."""
    parts = []
    if "convert_s" in prep:
        parts.append(f"model conversion {prep['convert_s']:.1f} s")
    elif prep.get("cached"):
        parts.append("model conversion cached in the workdir")
    if "int8_quantize_s" in prep:
        parts.append(
            f"static int8 quantization {prep['int8_quantize_s']:.1f} s "
            f"({prep.get('int8_calibration_samples')} corpus lines to calibrate)"
        )
    elif prep.get("int8_cached"):
        parts.append("static int8 IR cached in the workdir")
    return "; ".join(parts) + "."


def _text_lengths(cfg: BenchConfig, export_dir: Path, manifest: Manifest) -> list[int]:
    from ..runtime.session import load_tokenizer

    texts = read_texts(cfg.corpus, cfg.limit)
    tok = load_tokenizer(manifest)
    return [len(r) for r in tok.encode_ids(texts)]


def _truncated_texts(cfg: BenchConfig, manifest: Manifest) -> int:
    """Texts of the corpus longer than the model's window (cut to ``max_seq_length`` tokens)."""
    from ..runtime.session import load_tokenizer

    rows = load_tokenizer(manifest).encode_full(read_texts(cfg.corpus, cfg.limit))
    return sum(len(r) > manifest.max_seq_length for r in rows)


def _embedding_title(report: dict[str, Any]) -> str:
    cfg, m, roof = report["config"], report["machine"], report.get("roofline", {})
    cut = cfg.get("truncated_texts")
    truncated = f" ({cut} truncated at {cfg['max_seq_length']} tokens)" if cut else ""
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['isa']}); {report['created']}. "
        f"Corpus: {cfg['n_texts']} texts{truncated}, {cfg['real_tokens']} real tokens "
        f"({cfg['mean_tokens']:.1f}/text), "
        f"batch {cfg['headline_batch_size']}, median of {cfg['repeats']} alternating repetitions. "
        f"Roofline: onnxruntime MatMul {fmt(roof.get('fp32_gflops'), '.0f')} GFLOP/s fp32, "
        f"MatMulInteger {fmt(roof.get('int8_gflops'), '.0f')} GOP/s int8."
    )


EMBEDDING = TaskSpec(
    task="embedding",
    schema=SCHEMA,
    unit="sentences",
    count_key="n_texts",
    noun="texts",
    lengths=_text_lengths,
    compare=_compare_embeddings,
    title=_embedding_title,
    agreement_columns=(
        ("max abs diff", "max_abs_diff", ".1e"),
        ("mean cos", "mean_cosine", ".5f"),
        ("min cos", "min_cosine", ".5f"),
    ),
    worker_extra=lambda manifest: {
        "pooling": list(manifest.pooling.modes),
        "normalize": manifest.normalize,
        "dim": manifest.dim,
    },
    ratio_extras=(("cold_start", "cold_start_s"), ("peak_rss", "peak_rss_mib")),
    report_graph=True,
)


def to_plot(report: dict[str, Any], path: str) -> None:
    """Throughput against batch size for every runner, and single-sentence latency bars (PNG)."""
    if spec_for(report.get("config", {}).get("task")) is not EMBEDDING:
        raise InputError(
            "--plot is available for embedding benchmarks only; use --json for cross-encoder and sparse ones"
        )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise EmbedrtError("--plot needs matplotlib: pip install 'embedrt[bench]'") from e
    s = report["summary"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, e in s.items():
        bss = sorted(int(b) for b in e["sweep_sentences_per_s"])
        ax1.plot(bss, [e["sweep_sentences_per_s"][str(b)] for b in bss], marker="o", label=label)
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("batch size")
    ax1.set_ylabel("sentences/s")
    ax1.set_title("Throughput")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    names = list(s)
    p50 = [s[n]["latency_p50_ms"] for n in names]
    p99 = [s[n]["latency_p99_ms"] for n in names]
    x = np.arange(len(names))
    ax2.bar(x - 0.2, p50, 0.4, label="p50")
    ax2.bar(x + 0.2, p99, 0.4, label="p99")
    ax2.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax2.set_ylabel("ms")
    ax2.set_title("Single-sentence latency")
    ax2.legend()
    m = report["machine"]
    fig.suptitle(f"{Path(report['config']['model_dir']).name}: {m['cpu']}, {m['cores']} cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
