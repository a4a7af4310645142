"""``embedrt bench`` for a sparse (SPLADE) export: texts/s of ``embedrt.SparseEncoder`` against
sentence-transformers' ``SparseEncoder`` (PyTorch, and its ONNX backend where optimum is importable), every
runner in its own process, alternating, with medians, ratios repetition by repetition and agreement.

``run_bench`` comes here when the export's manifest says ``task: sparse``; texts are the ``--corpus`` lines.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..manifest import Manifest
from .orchestrate import REFERENCE, BenchConfig
from .orchestrate import Progress as _Progress
from .orchestrate import fmt as _fmt
from .orchestrate import machine as _machine
from .orchestrate import median as _median
from .orchestrate import versions as _versions

SCHEMA = "embedrt-bench-sparse/1"
SPARSE_WORKER = Path(__file__).with_name("sparse_worker.py")
PEERS = ("st-torch", "st-onnx")
NO_SPARSE_RUNNER = "no sparse-encoder runner for this peer (dense peers only)"
AGREEMENT_ROWS = 256


def _call_worker(
    python: str, cfg: dict[str, Any], tmp: Path, name: str, timeout: float, worker: Path = SPARSE_WORKER
) -> dict[str, Any]:
    """Run ``sparse_worker.py`` on ``cfg`` under ``python``; its JSON result, or ``{"ok": False, ...}``."""
    cfg = dict(cfg, result_out=str(tmp / f"{name}.result.json"), t_spawn=time.time())
    cfg_path = tmp / f"{name}.config.json"
    cfg_path.write_text(json.dumps(cfg))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore", TRANSFORMERS_VERBOSITY="error")
    try:
        proc = subprocess.run(
            [python, str(worker), str(cfg_path)], capture_output=True, text=True, timeout=timeout, env=env
        )
    except FileNotFoundError:
        return {"ok": False, "error": f"interpreter not found: {python}"}
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    result = Path(cfg["result_out"])
    if not result.is_file():
        return {"ok": False, "error": f"worker exited {proc.returncode}: {proc.stderr.strip()[-400:]}"}
    return json.loads(result.read_text())


def run_sparse_bench(
    cfg: BenchConfig, export_dir: Path, manifest: Manifest, workdir: Path, quiet: bool = False
) -> dict[str, Any]:
    """Benchmark a sparse export; the report has the cross-encoder report's layout with texts for pairs."""
    from ..runtime.session import load_tokenizer
    from .sparse_worker import read_texts

    texts = read_texts(cfg.corpus, cfg.limit)
    model_dir = manifest.source_path
    peer_python = cfg.peer_python or sys.executable
    tok = load_tokenizer(manifest)  # NOTE: checked against its sha256, as every runtime load
    lengths = [len(r) for r in tok.encode_ids(texts)]
    labels: list[tuple[str, str, str]] = [("embedrt-fp32", "embedrt", sys.executable)]
    skipped = [{"runner": p, "reason": NO_SPARSE_RUNNER} for p in cfg.peers if p not in PEERS]
    peers = [p for p in cfg.peers if p in PEERS]
    progress = _Progress(total=cfg.repeats * (1 + len(peers)) + len(peers) + 1, quiet=quiet)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": _machine(),
        "config": {
            **{k: v for k, v in asdict(cfg).items() if k != "workdir"},
            "task": "sparse",
            "export_dir": str(export_dir),
            "model_dir": model_dir,
            "n_texts": len(texts),
            "real_tokens": int(sum(lengths)),
            "mean_tokens": float(np.mean(lengths)) if lengths else 0.0,
            "vocab": manifest.dim,
            "max_seq_length": manifest.max_seq_length,
        },
        "versions": {"embedrt": _versions(sys.executable)},
    }
    if peer_python != sys.executable:
        report["versions"]["peers"] = _versions(peer_python)
    with tempfile.TemporaryDirectory(prefix="embedrt-bench-sparse-") as tmpdir:
        tmp = Path(tmpdir)
        common = {
            "corpus": str(Path(cfg.corpus).absolute()),
            "limit": cfg.limit,
            "batch_sizes": cfg.batch_sizes,
            "headline_batch_size": cfg.headline_batch_size,
            "sweep_limit": cfg.sweep_limit,
            "latency_calls": cfg.latency_calls,
            "export_dir": str(export_dir),
            "model_dir": model_dir,
            "onnx_model_dir": str(workdir / "st-onnx-sparse"),
            "agreement_rows": AGREEMENT_ROWS,
        }
        for peer in peers:
            progress.phase(f"probe {peer}")
            res = _call_worker(
                peer_python,
                {**common, "mode": "probe", "runner": peer},
                tmp,
                f"probe-{peer}",
                120,
                worker=SPARSE_WORKER,
            )
            progress.step()
            if not res.get("ok"):
                reason = (
                    "not installed: " + ", ".join(res.get("missing", []))
                    if res.get("missing")
                    else res.get("error", "unknown")
                )
                skipped.append({"runner": peer, "reason": reason})
                continue
            labels.append((peer, peer, peer_python))
        if any(label == "st-onnx" for label, *_ in labels):
            progress.phase("prepare the sentence-transformers ONNX copy")
            res = _call_worker(
                peer_python,
                {**common, "mode": "prepare"},
                tmp,
                "prepare",
                cfg.worker_timeout_s,
                worker=SPARSE_WORKER,
            )
            if not res.get("ok"):
                skipped.append({"runner": "st-onnx", "reason": f"ONNX export failed: {res.get('error')}"})
                labels = [lab for lab in labels if lab[0] != "st-onnx"]
        progress.step()
        runs: list[dict[str, Any]] = []
        for rep in range(cfg.repeats):
            # NOTE: the order flips every repetition, so neither side always runs first
            order = labels if rep % 2 == 0 else labels[::-1]
            for label, runner, python in order:
                progress.phase(f"rep {rep + 1}/{cfg.repeats}: {label}")
                wcfg = {
                    **common,
                    "mode": "run",
                    "runner": runner,
                    "label": label,
                    "rep": rep,
                    "vectors_out": str(tmp / f"{label}.rep{rep}.npy"),
                }
                res = _call_worker(
                    python, wcfg, tmp, f"{label}.rep{rep}", cfg.worker_timeout_s, worker=SPARSE_WORKER
                )
                res.setdefault("label", label)
                res.setdefault("rep", rep)
                if res.get("ok"):
                    res.pop("traceback", None)
                else:
                    progress.note(f"{label} failed in rep {rep + 1}: {res.get('error')}")
                runs.append(res)
                progress.step()
        progress.close()
        names = [lab for lab, *_ in labels]
        agreement = _agreement(names, tmp, cfg.repeats)
    report["runs"] = runs
    report["skipped"] = skipped
    report["summary"] = _summarize(runs, names, cfg, report, agreement)
    report["ratios"] = _ratios(runs, names, cfg)
    return report


def _agreement(labels: list[str], tmp: Path, repeats: int) -> dict[str, dict[str, Any]]:
    def first(label):
        return next(
            (tmp / f"{label}.rep{r}.npy" for r in range(repeats) if (tmp / f"{label}.rep{r}.npy").is_file()),
            None,
        )

    ref_path = first(REFERENCE)
    if ref_path is None:
        return {}
    ref = np.load(ref_path).astype(np.float64)
    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        path = first(label)
        if path is None:
            continue
        vec = np.load(path).astype(np.float64)
        if vec.shape != ref.shape:
            out[label] = {"error": f"shape {vec.shape} != reference {ref.shape}"}
            continue
        out[label] = {
            "max_abs_diff": float(np.abs(vec - ref).max()),
            "active_dims_differing": int(((vec > 0) != (ref > 0)).sum()),
            "mean_active_dims": float((vec > 0).sum(1).mean()),
        }
    return out


def _headline(run: dict[str, Any], cfg: BenchConfig) -> float | None:
    t = run.get("throughput", {}).get(str(cfg.headline_batch_size))
    return t["texts_per_s"] if t else None


def _summarize(runs, labels, cfg, report, agreement) -> dict[str, Any]:
    n, tokens = report["config"]["n_texts"], report["config"]["real_tokens"]
    out = {}
    for label in labels:
        ok = [r for r in runs if r.get("label") == label and r.get("ok")]
        if not ok:
            continue
        tps = _median([_headline(r, cfg) for r in ok])
        out[label] = {
            "runs_ok": len(ok),
            "provider": ok[0].get("provider"),
            "version": ok[0].get("version"),
            "texts_per_s": tps,
            "tokens_per_s": tps * tokens / n if tps else None,
            "sweep_texts_per_s": {
                str(bs): _median([r["throughput"][str(bs)]["texts_per_s"] for r in ok])
                for bs in cfg.batch_sizes
            },
            "latency_p50_ms": _median([r["latency_ms"]["p50"] for r in ok]),
            "latency_p99_ms": _median([r["latency_ms"]["p99"] for r in ok]),
            "cold_start_s": _median([r["cold_start_s"] for r in ok]),
            "peak_rss_mib": _median([r["peak_rss_mib"] for r in ok]),
            "agreement": agreement.get(label),
        }
    return out


def _ratios(runs, labels, cfg) -> dict[str, dict[str, dict[str, float | None]]]:
    by = {(r.get("label"), r.get("rep")): r for r in runs if r.get("ok")}
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for a in labels:
        for b in labels:
            if a == b:
                continue
            thr, lat = [], []
            for rep in range(cfg.repeats):
                ra, rb = by.get((a, rep)), by.get((b, rep))
                if not ra or not rb:
                    continue
                ha, hb = _headline(ra, cfg), _headline(rb, cfg)
                if ha and hb:
                    thr.append(ha / hb)
                lat.append(ra["latency_ms"]["p50"] / rb["latency_ms"]["p50"])
            if thr or lat:
                out.setdefault(a, {})[b] = {
                    "throughput": _median(thr),
                    "latency_p50": _median(lat),
                    "per_repetition": thr,
                }
    return out


def to_markdown(report: dict[str, Any]) -> str:
    """One row per runner: texts/s, ratios against every peer measured in the same run, latency, agreement."""
    cfg, s, m = report["config"], report["summary"], report["machine"]
    labels = list(s)
    peers = [p for p in ("st-torch", "st-onnx", "embedrt-fp32") if p in s]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['isa']}). Sparse encoder {Path(cfg['model_dir']).name} "
        f"(vocab {cfg['vocab']}): {cfg['n_texts']} texts from {Path(cfg['corpus']).name}, "
        f"{cfg['real_tokens']} "
        f"real tokens ({cfg['mean_tokens']:.1f}/text), batch {cfg['headline_batch_size']}, median of "
        f"{cfg['repeats']} alternating repetitions.",
        "",
        "| runner | texts/s | tokens/s | "
        + " | ".join(f"vs {p}" for p in peers)
        + " | p50 ms | p99 ms | cold start s | peak RSS MiB | max abs diff vs st-torch "
        "| active dims (mean) |",
        "|---" * (9 + len(peers)) + "|",
    ]
    for label in labels:
        e = s[label]
        ag = e.get("agreement") or {}
        ratios = [
            report["ratios"].get(label, {}).get(p, {}).get("throughput") if p != label else None
            for p in peers
        ]
        lines.append(
            f"| {label} | {_fmt(e['texts_per_s'], '.1f')} | {_fmt(e['tokens_per_s'], '.0f')} | "
            + " | ".join("–" if r is None else f"{r:.2f}x" for r in ratios)
            + f" | {_fmt(e['latency_p50_ms'], '.2f')} | {_fmt(e['latency_p99_ms'], '.2f')} | "
            f"{_fmt(e['cold_start_s'], '.2f')} | {_fmt(e['peak_rss_mib'], '.0f')} | "
            f"{_fmt(ag.get('max_abs_diff'), '.1e')} | {_fmt(ag.get('mean_active_dims'), '.0f')} |"
        )
    bss = cfg["batch_sizes"]
    lines += [
        "",
        f"Batch-size sweep, texts/s (batch {cfg['headline_batch_size']} on all texts; others on the "
        f"first {min(cfg['sweep_limit'], cfg['n_texts'])}):",
        "",
        "| runner | " + " | ".join(f"bs {b}" for b in bss) + " |",
        "|---" * (len(bss) + 1) + "|",
    ]
    for label in labels:
        sw = s[label]["sweep_texts_per_s"]
        lines.append(f"| {label} | " + " | ".join(_fmt(sw.get(str(b)), ".1f") for b in bss) + " |")
    if report.get("skipped"):
        lines += [""] + [f"Skipped {x['runner']}: {x['reason']}" for x in report["skipped"]]
    return "\n".join(lines) + "\n"
