"""``embedrt bench`` for a cross-encoder export: pairs/s of ``embedrt.CrossEncoder`` against
sentence-transformers' ``CrossEncoder`` (PyTorch, and its ONNX backend where optimum is importable), every
runner in its own process, alternating, with medians, pair-by-pair ratios and score agreement.

``run_bench`` comes here when the export's manifest says ``task: cross-encoder``; the pairs come from the
``--pairs-from``/``--corpus`` file (the last two tab-separated fields of each line, e.g. stsb-dev.tsv).
"""

from __future__ import annotations

import datetime as _dt
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .flops import corpus_gflop
from .orchestrate import (
    REFERENCE,
    WORKER,
    BenchConfig,
    _call_worker,
    _fmt,
    _machine,
    _median,
    _Progress,
    _versions,
)

SCHEMA = "embedrt-bench-cross/1"
CROSS_WORKER = Path(__file__).with_name("cross_worker.py")
#: Peers that have a cross-encoder runner; the other embedding peers are skipped with this reason.
PEERS = ("st-torch", "st-onnx")
NO_CROSS_RUNNER = "no cross-encoder runner for this peer (embedding peers only)"


def run_cross_bench(
    cfg: BenchConfig, export_dir: Path, manifest: dict[str, Any], workdir: Path, quiet: bool = False
) -> dict[str, Any]:
    """Benchmark a cross-encoder export; the report has the embedding report's layout with pairs for texts.

    Raises:
        InputError: an unknown variant, or a pairs file with no pair in it.
    """
    from ..runtime.cross_encoder import PairTokenizer
    from .cross_worker import read_pairs  # NOTE: the worker's own parser, so both sides read the same pairs

    variants = cfg.variants or list(manifest["variants"])
    unknown = [v for v in variants if v not in manifest["variants"]]
    if unknown:
        raise InputError(f"unknown variants {unknown}; this export has {sorted(manifest['variants'])}")
    pairs = read_pairs(cfg.corpus, cfg.limit)
    if not pairs:
        raise InputError(f"no pairs in {cfg.corpus}: expected lines with at least two tab-separated fields")
    model_dir = manifest["source"]["path"]
    peer_python = cfg.peer_python or sys.executable
    tok = PairTokenizer(
        export_dir / manifest["tokenizer"]["file"],
        manifest["max_seq_length"],
        manifest["tokenizer"]["pad_token_id"],
    )
    lengths = [len(r) for r in tok.encode_pairs(pairs)[0]]
    gflop = corpus_gflop(lengths, manifest.get("model_config", {}))

    labels: list[tuple[str, str, str, dict[str, Any]]] = [
        (f"embedrt-{v}", "embedrt", sys.executable, {"variant": v}) for v in variants
    ]
    skipped = [{"runner": p, "reason": NO_CROSS_RUNNER} for p in cfg.peers if p not in PEERS]
    peers = [p for p in cfg.peers if p in PEERS]
    progress = _Progress(total=cfg.repeats * (len(variants) + len(peers)) + len(peers) + 2, quiet=quiet)
    for s in skipped:
        progress.note(f"skipping {s['runner']}: {s['reason']}")
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": _machine(),
        "config": {
            **{k: v for k, v in asdict(cfg).items() if k not in ("workdir",)},
            "task": "cross-encoder",
            "export_dir": str(export_dir),
            "model_dir": model_dir,
            "n_pairs": len(pairs),
            "real_tokens": int(sum(lengths)),
            "mean_tokens": float(np.mean(lengths)),
            "corpus_gflop": gflop,
            "max_seq_length": manifest["max_seq_length"],
        },
        "versions": {"embedrt": _versions(sys.executable)},
    }
    if peer_python != sys.executable:
        report["versions"]["peers"] = _versions(peer_python)

    with tempfile.TemporaryDirectory(prefix="embedrt-bench-cross-") as tmpdir:
        tmp = Path(tmpdir)
        common = {
            "pairs": str(Path(cfg.corpus).absolute()),
            "limit": cfg.limit,
            "batch_sizes": cfg.batch_sizes,
            "headline_batch_size": cfg.headline_batch_size,
            "sweep_limit": cfg.sweep_limit,
            "latency_calls": cfg.latency_calls,
            "export_dir": str(export_dir),
            "model_dir": model_dir,
            "onnx_model_dir": str(workdir / "st-onnx-cross"),
        }
        for peer in peers:
            progress.phase(f"probe {peer}")
            res = _call_worker(
                peer_python,
                {**common, "mode": "probe", "runner": peer},
                tmp,
                f"probe-{peer}",
                120,
                worker=CROSS_WORKER,
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
        if any(label == "st-onnx" for label, *_ in labels):
            progress.phase("prepare the sentence-transformers ONNX copy")
            res = _call_worker(
                peer_python,
                {**common, "mode": "prepare"},
                tmp,
                "prepare",
                cfg.worker_timeout_s,
                worker=CROSS_WORKER,
            )
            if not res.get("ok"):
                skipped.append({"runner": "st-onnx", "reason": f"ONNX export failed: {res.get('error')}"})
                labels = [lab for lab in labels if lab[0] != "st-onnx"]
        progress.step()
        progress.phase("roofline (onnxruntime MatMul / MatMulInteger)")
        roof = _call_worker(
            sys.executable,
            {"mode": "roofline", "shape": list(cfg.roofline_shape), "reps": 20},
            tmp,
            "roofline",
            600,
            worker=WORKER,
        )
        report["roofline"] = roof if "fp32_gflops" in roof else {"error": roof.get("error")}
        progress.step()

        runs: list[dict[str, Any]] = []
        for rep in range(cfg.repeats):
            for label, runner, python, extra in labels:
                progress.phase(f"rep {rep + 1}/{cfg.repeats}: {label}")
                wcfg = {
                    **common,
                    **extra,
                    "mode": "run",
                    "runner": runner,
                    "label": label,
                    "rep": rep,
                    "scores_out": str(tmp / f"{label}.rep{rep}.npy"),
                }
                res = _call_worker(
                    python, wcfg, tmp, f"{label}.rep{rep}", cfg.worker_timeout_s, worker=CROSS_WORKER
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


def _first(tmp: Path, label: str, repeats: int) -> Path | None:
    return next(
        (tmp / f"{label}.rep{r}.npy" for r in range(repeats) if (tmp / f"{label}.rep{r}.npy").is_file()), None
    )


def _agreement(labels: list[str], tmp: Path, repeats: int) -> dict[str, dict[str, float]]:
    ref_path = _first(tmp, REFERENCE, repeats)
    if ref_path is None:
        return {}
    reference = np.load(ref_path).astype(np.float64)
    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        path = _first(tmp, label, repeats)
        if path is None:
            continue
        scores = np.load(path).astype(np.float64)
        if scores.shape != reference.shape:
            out[label] = {"error": f"shape {scores.shape} != reference {reference.shape}"}
            continue
        out[label] = {"max_abs_diff": float(np.abs(scores - reference).max())}
    return out


def _headline(run: dict[str, Any], cfg: BenchConfig) -> float | None:
    t = run.get("throughput", {}).get(str(cfg.headline_batch_size))
    return t["pairs_per_s"] if t else None


def _summarize(runs, labels, cfg, report, agreement) -> dict[str, Any]:
    n, tokens, gflop = (
        report["config"]["n_pairs"],
        report["config"]["real_tokens"],
        report["config"]["corpus_gflop"],
    )
    peak = report.get("roofline", {}).get("fp32_gflops")
    out = {}
    for label in labels:
        ok = [r for r in runs if r.get("label") == label and r.get("ok")]
        if not ok:
            continue
        pps = _median([_headline(r, cfg) for r in ok])
        entry: dict[str, Any] = {
            "runs_ok": len(ok),
            "provider": ok[0].get("provider"),
            "version": ok[0].get("version"),
            "pairs_per_s": pps,
            "tokens_per_s": pps * tokens / n if pps else None,
            "sweep_pairs_per_s": {
                str(bs): _median([r["throughput"][str(bs)]["pairs_per_s"] for r in ok])
                for bs in cfg.batch_sizes
            },
            "latency_p50_ms": _median([r["latency_ms"]["p50"] for r in ok]),
            "latency_p99_ms": _median([r["latency_ms"]["p99"] for r in ok]),
            "cold_start_s": _median([r["cold_start_s"] for r in ok]),
            "peak_rss_mib": _median([r["peak_rss_mib"] for r in ok]),
            "agreement": agreement.get(label),
        }
        if gflop and pps:
            entry["gflops"] = gflop * pps / n
            entry["roofline_fraction"] = entry["gflops"] / peak if peak else None
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
                    "pairs": len(thr),
                }
    return out


def to_markdown(report: dict[str, Any]) -> str:
    """One row per runner: pairs/s, ratios against every peer measured in the same run, latency, agreement."""
    cfg, s, m = report["config"], report["summary"], report["machine"]
    labels = list(s)
    peers = [p for p in ("st-torch", "st-onnx", "embedrt-fp32") if p in s]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['isa']}); {report['created']}. Cross-encoder "
        f"{Path(cfg['model_dir']).name}: {cfg['n_pairs']} pairs from {Path(cfg['corpus']).name}, "
        f"{cfg['real_tokens']} real tokens ({cfg['mean_tokens']:.1f}/pair), "
        f"batch {cfg['headline_batch_size']}, median of {cfg['repeats']} alternating repetitions.",
        "",
        "| runner | pairs/s | tokens/s | "
        + " | ".join(f"vs {p}" for p in peers)
        + " | p50 ms | p99 ms | cold start s | peak RSS MiB | max abs diff vs st-torch | GFLOP/s "
        "| roofline |",
        "|---" * (10 + len(peers)) + "|",
    ]
    for label in labels:
        e = s[label]
        ag = e.get("agreement") or {}
        ratios = [
            report["ratios"].get(label, {}).get(p, {}).get("throughput") if p != label else None
            for p in peers
        ]
        frac = e.get("roofline_fraction")
        lines.append(
            f"| {label} | {_fmt(e['pairs_per_s'], '.1f')} | {_fmt(e['tokens_per_s'], '.0f')} | "
            + " | ".join("–" if r is None else f"{r:.2f}x" for r in ratios)
            + f" | {_fmt(e['latency_p50_ms'], '.2f')} | {_fmt(e['latency_p99_ms'], '.2f')} | "
            f"{_fmt(e['cold_start_s'], '.2f')} | {_fmt(e['peak_rss_mib'], '.0f')} | "
            f"{_fmt(ag.get('max_abs_diff'), '.1e')} | {_fmt(e.get('gflops'), '.0f')} | "
            f"{_fmt(100 * frac if frac else None, '.0f')}% |"
        )
    bss = cfg["batch_sizes"]
    lines += [
        "",
        f"Batch-size sweep, pairs/s (batch {cfg['headline_batch_size']} on all pairs; others on the "
        f"first {min(cfg['sweep_limit'], cfg['n_pairs'])}):",
        "",
        "| runner | " + " | ".join(f"bs {b}" for b in bss) + " |",
        "|---" * (len(bss) + 1) + "|",
    ]
    for label in labels:
        sw = s[label]["sweep_pairs_per_s"]
        lines.append(f"| {label} | " + " | ".join(_fmt(sw.get(str(b)), ".1f") for b in bss) + " |")
    if report.get("skipped"):
        lines += [""] + [f"Skipped {x['runner']}: {x['reason']}" for x in report["skipped"]]
    return "\n".join(lines) + "\n"
