"""``embedrt bench``: every runner in its own subprocess, alternating (A B C A B C ...), medians and
pair-by-pair ratios, agreement with the PyTorch reference, and efficiency against a matmul roofline."""

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmbedrtError, InputError
from ..manifest import MANIFEST_NAME, read_manifest
from .flops import corpus_gflop

SCHEMA = "embedrt-bench/1"
PEERS = ("st-torch", "st-onnx", "st-onnx-int8", "fastembed")
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
        if not Path(self.corpus).is_file():
            raise InputError(f"corpus file not found: {self.corpus}")


class _Progress:
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
            print(f"[{self.done}/{self.total}] {text} (elapsed {elapsed:.0f} s, ETA {eta:.0f} s)",
                  file=sys.stderr, flush=True)

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


def _call_worker(python: str, cfg: dict[str, Any], tmp: Path, name: str, timeout: float,
                 worker: Path = WORKER) -> dict[str, Any]:
    cfg = dict(cfg)
    cfg["result_out"] = str(tmp / f"{name}.result.json")
    cfg_path = tmp / f"{name}.config.json"
    cfg["t_spawn"] = time.time()
    cfg_path.write_text(json.dumps(cfg))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore", TRANSFORMERS_VERBOSITY="error")
    try:
        proc = subprocess.run([python, str(worker), str(cfg_path)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except FileNotFoundError:
        return {"ok": False, "error": f"interpreter not found: {python}"}
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    result_path = Path(cfg["result_out"])
    if not result_path.is_file():
        return {"ok": False, "error": f"worker exited {proc.returncode}: {proc.stderr.strip()[-400:]}"}
    return json.loads(result_path.read_text())


def _machine() -> dict[str, Any]:
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
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8")
                         if f" {f}" in text)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "isa": flags, "platform": platform.platform(),
            "python": platform.python_version()}


def _versions(python: str) -> dict[str, str]:
    code = ("import json,importlib.metadata as m\nout={}\n"
            "for d in ['embedrt','onnxruntime','sentence-transformers','transformers','torch','optimum-onnx',"
            "'fastembed','tokenizers','numpy']:\n"
            "    try: out[d]=m.version(d)\n    except Exception: pass\nprint(json.dumps(out))")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)
    except Exception:  # noqa: BLE001
        return {}


def _prepare_target(cfg: BenchConfig, workdir: Path, progress: _Progress) -> Path:
    target = Path(cfg.target).expanduser()
    if (target / MANIFEST_NAME).is_file():
        return target
    export_dir = workdir / "export"
    if not (export_dir / MANIFEST_NAME).is_file():
        progress.note(f"exporting {cfg.target} to {export_dir} first")
        from ..export import export_model

        export_model(cfg.target, export_dir, force=True)
    return export_dir


def _median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.median(vals)) if vals else None


def run_bench(cfg: BenchConfig, quiet: bool = False) -> dict[str, Any]:
    """Run the whole benchmark and return the JSON-able report (see README for the schema)."""
    cfg.validate()
    workdir = Path(cfg.workdir) if cfg.workdir else Path.home() / ".cache" / "embedrt" / "bench" / \
        hashlib.sha1(str(Path(cfg.target).expanduser().absolute()).encode()).hexdigest()[:12]
    workdir.mkdir(parents=True, exist_ok=True)
    peer_python = cfg.peer_python or sys.executable
    progress = _Progress(total=0, quiet=True)
    export_dir = _prepare_target(cfg, workdir, progress)
    manifest = read_manifest(export_dir)
    if manifest.get("task") == "cross-encoder":  # NOTE: pairs/s against sentence-transformers' CrossEncoder
        from .cross import run_cross_bench

        return run_cross_bench(cfg, export_dir, manifest, workdir, quiet)
    variants = cfg.variants or list(manifest["variants"])
    unknown = [v for v in variants if v not in manifest["variants"]]
    if unknown:
        raise InputError(f"unknown variants {unknown}; this export has {sorted(manifest['variants'])}")
    model_dir = manifest["source"]["path"]

    # Corpus statistics with our tokenizer (the same tokens every peer sees).
    from ..runtime.tokenize import TextTokenizer

    with open(cfg.corpus, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f][: cfg.limit]
    tok = TextTokenizer(export_dir / manifest["tokenizer"]["file"], manifest["max_seq_length"],
                        manifest["tokenizer"]["pad_token_id"])
    lengths = [len(r) for r in tok.encode_ids(texts)]
    gflop = corpus_gflop(lengths, manifest.get("model_config", {}))

    labels: list[tuple[str, str, str, dict[str, Any]]] = []  # (label, runner, python, extra cfg)
    for v in variants:
        labels.append((f"embedrt-{v}", "embedrt", sys.executable, {"variant": v}))
    skipped: list[dict[str, str]] = []
    n_runs = cfg.repeats * (len(variants) + len(cfg.peers) + 1) + len(cfg.peers) + 1
    progress = _Progress(total=n_runs, quiet=quiet)
    report: dict[str, Any] = {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(
        timespec="seconds"), "command": " ".join(sys.argv), "machine": _machine(), "config": {
        **{k: v for k, v in asdict(cfg).items() if k not in ("workdir",)}, "export_dir": str(export_dir),
        "model_dir": model_dir, "n_texts": len(texts), "real_tokens": int(sum(lengths)),
        "mean_tokens": float(np.mean(lengths)) if lengths else 0.0, "corpus_gflop": gflop,
        "max_seq_length": manifest["max_seq_length"]}}
    report["versions"] = {"embedrt": _versions(sys.executable)}
    if peer_python != sys.executable:
        report["versions"]["peers"] = _versions(peer_python)

    with tempfile.TemporaryDirectory(prefix="embedrt-bench-") as tmpdir:
        tmp = Path(tmpdir)
        common = {"corpus": str(Path(cfg.corpus).absolute()), "limit": cfg.limit, "batch_sizes": cfg.batch_sizes,
                  "headline_batch_size": cfg.headline_batch_size, "sweep_limit": cfg.sweep_limit,
                  "latency_calls": cfg.latency_calls, "export_dir": str(export_dir), "model_dir": model_dir,
                  "onnx_model_dir": str(workdir / "st-onnx"), "pooling": manifest["pooling"]["modes"],
                  "normalize": manifest["normalize"], "dim": manifest["dim"]}
        for peer in cfg.peers:
            progress.phase(f"probe {peer}")
            # NOTE: the probe imports the peer's libraries (optimum, onnxruntime, torch): on a busy machine that
            # alone took over 120 s
            res = _call_worker(peer_python, {**common, "mode": "probe", "runner": peer}, tmp, f"probe-{peer}",
                               min(600.0, cfg.worker_timeout_s))
            progress.step()
            if not res.get("ok"):
                reason = "not installed: " + ", ".join(res.get("missing", [])) if res.get("missing") else \
                    res.get("error", "unknown")
                skipped.append({"runner": peer, "reason": reason})
                progress.note(f"skipping {peer}: {reason}")
                continue
            labels.append((peer, peer, peer_python, {}))
        if any(label in ("st-onnx", "st-onnx-int8", "fastembed") for label, *_ in labels):
            progress.phase("prepare sentence-transformers ONNX copies")
            res = _call_worker(peer_python, {**common, "mode": "prepare"}, tmp, "prepare", cfg.worker_timeout_s)
            if not res.get("ok"):
                for label in ("st-onnx", "st-onnx-int8", "fastembed"):
                    if any(lab == label for lab, *_ in labels):
                        skipped.append({"runner": label, "reason": f"ONNX export failed: {res.get('error')}"})
                labels = [lab for lab in labels if lab[0] not in ("st-onnx", "st-onnx-int8", "fastembed")]
        progress.step()
        progress.step()

        runs: list[dict[str, Any]] = []
        roofs: list[dict[str, Any]] = []
        for rep in range(cfg.repeats):
            # NOTE: the roofline is measured in every repetition, between the runners, so that it sees the same
            # machine load as they do; the fraction is taken per repetition, then the median.
            progress.phase(f"rep {rep + 1}/{cfg.repeats}: roofline (onnxruntime MatMul / MatMulInteger)")
            roof = _call_worker(sys.executable, {"mode": "roofline", "shape": list(cfg.roofline_shape),
                                                 "reps": 20}, tmp, f"roofline.rep{rep}", 600)
            if roof.get("ok", True) and "fp32_gflops" in roof:
                roofs.append({**roof, "rep": rep})
            for label, runner, python, extra in labels:
                progress.phase(f"rep {rep + 1}/{cfg.repeats}: {label}")
                emb_path = tmp / f"{label}.rep{rep}.npy"
                wcfg = {**common, **extra, "mode": "run", "runner": runner, "label": label, "rep": rep,
                        "embeddings_out": str(emb_path)}
                res = _call_worker(python, wcfg, tmp, f"{label}.rep{rep}", cfg.worker_timeout_s)
                res.setdefault("label", label)
                res.setdefault("rep", rep)
                res.pop("traceback", None) if res.get("ok") else None
                runs.append(res)
                progress.step()
                if not res.get("ok"):
                    progress.note(f"{label} failed in rep {rep + 1}: {res.get('error')}")
        progress.close()
        report["roofline"] = {
            "shape": list(cfg.roofline_shape), "provider": "CPUExecutionProvider", "reps": roofs,
            "fp32_gflops": _median([r["fp32_gflops"] for r in roofs]),
            "int8_gflops": _median([r["int8_gflops"] for r in roofs]),
        } if roofs else {"error": "roofline measurement failed"}
        agreement = _agreement([lab for lab, *_ in labels], tmp, cfg.repeats)

    report["runs"] = runs
    report["skipped"] = skipped
    report["summary"] = _summarize(runs, [lab for lab, *_ in labels], cfg, report, agreement)
    report["ratios"] = _ratios(runs, [lab for lab, *_ in labels], cfg)
    return report


def _agreement(labels: list[str], tmp: Path, repeats: int) -> dict[str, dict[str, float]]:
    ref = next((tmp / f"{REFERENCE}.rep{r}.npy" for r in range(repeats)
                if (tmp / f"{REFERENCE}.rep{r}.npy").is_file()), None)
    if ref is None:
        return {}
    reference = np.load(ref).astype(np.float64)
    out = {}
    for label in labels:
        path = next((tmp / f"{label}.rep{r}.npy" for r in range(repeats) if (tmp / f"{label}.rep{r}.npy").is_file()),
                    None)
        if path is None:
            continue
        emb = np.load(path).astype(np.float64)
        if emb.shape != reference.shape:
            out[label] = {"error": f"shape {emb.shape} != reference {reference.shape}"}
            continue
        cos = (emb * reference).sum(1) / np.maximum(np.linalg.norm(emb, axis=1) * np.linalg.norm(reference, axis=1),
                                                     1e-30)
        out[label] = {"max_abs_diff": float(np.abs(emb - reference).max()), "mean_cosine": float(cos.mean()),
                      "min_cosine": float(cos.min())}
    return out


def _headline(run: dict[str, Any], cfg: BenchConfig) -> float | None:
    t = run.get("throughput", {}).get(str(cfg.headline_batch_size))
    return t["sentences_per_s"] if t else None


def _summarize(runs, labels, cfg, report, agreement) -> dict[str, Any]:
    tokens = report["config"]["real_tokens"]
    n = report["config"]["n_texts"]
    gflop = report["config"]["corpus_gflop"]
    roof = report.get("roofline", {})
    out = {}
    for label in labels:
        ok = [r for r in runs if r.get("label") == label and r.get("ok")]
        if not ok:
            continue
        sps = _median([_headline(r, cfg) for r in ok])
        entry: dict[str, Any] = {
            "runs_ok": len(ok), "provider": ok[0].get("provider"), "version": ok[0].get("version"),
            "graph": ok[0].get("graph"), "cpu_kernels": ok[0].get("cpu_kernels"),
            "sentences_per_s": sps, "tokens_per_s": sps * tokens / n if sps else None,
            "sweep_sentences_per_s": {str(bs): _median([r["throughput"][str(bs)]["sentences_per_s"] for r in ok])
                                      for bs in cfg.batch_sizes},
            "latency_p50_ms": _median([r["latency_ms"]["p50"] for r in ok]),
            "latency_p99_ms": _median([r["latency_ms"]["p99"] for r in ok]),
            "cold_start_s": _median([r["cold_start_s"] for r in ok]),
            "peak_rss_mib": _median([r["peak_rss_mib"] for r in ok]),
            "agreement": agreement.get(label),
        }
        kind = "int8" if "int8" in label else "fp32"
        peaks = {r["rep"]: r.get(f"{kind}_gflops") for r in roof.get("reps", [])}
        if gflop and sps:
            entry["gflops"] = gflop * sps / n
            # Per repetition: this runner's GFLOP/s over the roofline measured in the same repetition.
            fractions = [gflop * _headline(r, cfg) / n / peaks[r["rep"]] for r in ok
                         if _headline(r, cfg) and peaks.get(r.get("rep"))]
            entry["roofline_fraction"] = _median(fractions)
            entry["roofline_kind"] = kind
        out[label] = entry
    return out


def _ratios(runs, labels, cfg) -> dict[str, dict[str, dict[str, float | None]]]:
    """Pair by pair: for each repetition, runner / peer, then the median over repetitions."""
    by = {(r.get("label"), r.get("rep")): r for r in runs if r.get("ok")}
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for a in labels:
        for b in labels:
            if a == b:
                continue
            thr, lat, cold, rss = [], [], [], []
            for rep in range(cfg.repeats):
                ra, rb = by.get((a, rep)), by.get((b, rep))
                if not ra or not rb:
                    continue
                ha, hb = _headline(ra, cfg), _headline(rb, cfg)
                if ha and hb:
                    thr.append(ha / hb)
                lat.append(ra["latency_ms"]["p50"] / rb["latency_ms"]["p50"])
                cold.append(ra["cold_start_s"] / rb["cold_start_s"])
                rss.append(ra["peak_rss_mib"] / rb["peak_rss_mib"])
            if thr or lat:
                out.setdefault(a, {})[b] = {"throughput": _median(thr), "latency_p50": _median(lat),
                                            "cold_start": _median(cold), "peak_rss": _median(rss), "pairs": len(thr)}
    return out


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def to_markdown(report: dict[str, Any]) -> str:
    """The README table: one row per runner, ratios against every peer measured in the same run."""
    if report.get("config", {}).get("task") == "cross-encoder":
        from .cross import to_markdown as cross_markdown

        return cross_markdown(report)
    cfg = report["config"]
    s = report["summary"]
    labels = list(s)
    peers = [p for p in ("st-torch", "st-onnx", "st-onnx-int8", "fastembed", "embedrt-fp32") if p in s]
    m = report["machine"]
    roof = report.get("roofline", {})
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['isa']}); {report['created']}. "
        f"Corpus: {cfg['n_texts']} texts, {cfg['real_tokens']} real tokens ({cfg['mean_tokens']:.1f}/text), "
        f"batch {cfg['headline_batch_size']}, median of {cfg['repeats']} alternating repetitions. "
        f"Roofline: onnxruntime MatMul {_fmt(roof.get('fp32_gflops'), '.0f')} GFLOP/s fp32, "
        f"MatMulInteger {_fmt(roof.get('int8_gflops'), '.0f')} GOP/s int8.",
        "",
        "| runner | sent/s | tokens/s | " + " | ".join(f"vs {p}" for p in peers) +
        " | p50 ms | p99 ms | cold start s | peak RSS MiB | max abs diff | mean cos | min cos | GFLOP/s | roofline |",
        "|---" * (12 + len(peers)) + "|",
    ]
    for label in labels:
        e = s[label]
        ag = e.get("agreement") or {}
        ratios = [report["ratios"].get(label, {}).get(p, {}).get("throughput") if p != label else None for p in peers]
        lines.append(
            f"| {label} | {_fmt(e['sentences_per_s'], '.0f')} | {_fmt(e['tokens_per_s'], '.0f')} | "
            + " | ".join("–" if r is None else f"{r:.2f}x" for r in ratios)
            + f" | {_fmt(e['latency_p50_ms'], '.2f')} | {_fmt(e['latency_p99_ms'], '.2f')} | "
            f"{_fmt(e['cold_start_s'], '.2f')} | {_fmt(e['peak_rss_mib'], '.0f')} | "
            f"{_fmt(ag.get('max_abs_diff'), '.1e')} | {_fmt(ag.get('mean_cosine'), '.5f')} | "
            f"{_fmt(ag.get('min_cosine'), '.5f')} | {_fmt(e.get('gflops'), '.0f')} | "
            f"{_fmt(100 * e['roofline_fraction'] if e.get('roofline_fraction') else None, '.0f')}% "
            f"{e.get('roofline_kind', '')} |")
    bss = cfg["batch_sizes"]
    lines += ["", f"Batch-size sweep, sentences/s (batch {cfg['headline_batch_size']} on all texts; others on the "
              f"first {min(cfg['sweep_limit'], cfg['n_texts'])}):", "",
              "| runner | " + " | ".join(f"bs {b}" for b in bss) + " |", "|---" * (len(bss) + 1) + "|"]
    for label in labels:
        sw = s[label]["sweep_sentences_per_s"]
        lines.append(f"| {label} | " + " | ".join(_fmt(sw.get(str(b)), ".0f") for b in bss) + " |")
    graphs = [f"{label}: {s[label]['graph']}" for label in labels if s[label].get("graph")]
    if graphs:
        lines += ["", "Graph each embedrt runner ran: " + "; ".join(graphs) + "."]
    kernels = next((s[label]["cpu_kernels"] for label in labels if s[label].get("cpu_kernels")), None)
    if kernels:
        lines += ["", f"embedrt's CPU kernels: native ops {kernels['isa']} (CPU best {kernels['cpu_isa']}), "
                  f"PackedMatMul {kernels['packed_matmul']}; int8 GEMM {kernels['int8_gemm']}."]
    if report.get("skipped"):
        lines += [""] + [f"Skipped {x['runner']}: {x['reason']}" for x in report["skipped"]]
    return "\n".join(lines) + "\n"


def to_plot(report: dict[str, Any], path: str) -> None:
    """Throughput against batch size for every runner, and single-sentence latency bars (PNG)."""
    if report.get("config", {}).get("task") == "cross-encoder":
        raise InputError("--plot is available for embedding benchmarks only; use --json for cross-encoders")
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
