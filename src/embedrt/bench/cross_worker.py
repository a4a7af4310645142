"""One cross-encoder benchmark run of one runner, in its own process: ``python cross_worker.py CONFIG.json``.

Standalone like ``worker.py`` (stdlib + numpy at import time), so peers can run under interpreters without
embedrt. Scores pairs from a TSV file (the last two tab-separated fields of each line), writes a JSON result
and the scores (for agreement) to the paths named in the config.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback


def _version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return None


def read_pairs(path, limit=None):
    """(text_a, text_b) from the last two tab-separated fields of each line; a header line (3+ fields whose
    first is not a number, as in stsb-dev.tsv) and lines with fewer than 2 fields are skipped."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                continue
            if len(fields) >= 3:
                try:
                    float(fields[0])
                except ValueError:
                    continue
            pairs.append((fields[-2], fields[-1]))
            if limit is not None and len(pairs) >= limit:
                break
    return pairs


def _embedrt(cfg):
    from embedrt import CrossEncoder

    model = CrossEncoder(cfg["export_dir"], device="cpu", variant=cfg.get("variant", "fp32"))
    info = {"provider": model.active_providers[0], "version": _version("embedrt")}
    return (lambda pairs, bs: model.predict(pairs, batch_size=bs)), info


def _st(cfg, backend="torch"):
    from sentence_transformers import CrossEncoder

    path = cfg["onnx_model_dir"] if backend == "onnx" else cfg["model_dir"]
    kwargs = {"device": "cpu"}
    if backend == "onnx":
        kwargs["backend"] = "onnx"
    model = CrossEncoder(path, **kwargs)
    info = {
        "provider": "torch-cpu" if backend == "torch" else "CPUExecutionProvider",
        "version": _version("sentence-transformers"),
    }
    return (
        lambda pairs, bs: model.predict([list(p) for p in pairs], batch_size=bs, convert_to_numpy=True)
    ), info


RUNNERS = {
    "embedrt": _embedrt,
    "st-torch": lambda cfg: _st(cfg, "torch"),
    "st-onnx": lambda cfg: _st(cfg, "onnx"),
}
#: What each runner needs importable; a missing one means "not installed here", and the peer is skipped.
REQUIRES = {
    "embedrt": ["embedrt"],
    "st-torch": ["sentence_transformers"],
    "st-onnx": ["sentence_transformers", "optimum.onnxruntime"],
}


def run(cfg):
    import numpy as np

    pairs = read_pairs(cfg["pairs"], cfg["limit"])
    t_import = time.time()
    predict, info = RUNNERS[cfg["runner"]](cfg)
    t_loaded = time.time()
    predict([("Hello world", "Hi there")], 1)
    t_first = time.time()
    out = {
        "runner": cfg["runner"],
        "label": cfg["label"],
        "rep": cfg["rep"],
        "ok": True,
        **info,
        "cold_start_s": t_first - cfg["t_spawn"],
        "load_s": t_loaded - t_import,
        "first_score_s": t_first - t_loaded,
        "python": sys.executable,
    }
    predict(pairs[:32], 32)  # warm-up batch
    throughput = {}
    headline = cfg["headline_batch_size"]
    for bs in cfg["batch_sizes"]:
        subset = pairs if bs == headline else pairs[: cfg["sweep_limit"]]
        t0 = time.perf_counter()
        scores = predict(subset, bs)
        dt = time.perf_counter() - t0
        throughput[str(bs)] = {"n_pairs": len(subset), "seconds": dt, "pairs_per_s": len(subset) / dt}
        if bs == headline and cfg.get("scores_out"):
            np.save(cfg["scores_out"], np.asarray(scores, dtype=np.float32))
    out["throughput"] = throughput
    lat = []
    for i in range(cfg["latency_calls"]):
        pair = pairs[i % len(pairs)]
        t0 = time.perf_counter()
        predict([pair], 1)
        lat.append((time.perf_counter() - t0) * 1e3)
    out["latency_ms"] = {
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "n": len(lat),
    }
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def prepare(cfg):
    """Export sentence-transformers' own ONNX copy of the cross-encoder once (backend="onnx")."""
    import shutil

    from sentence_transformers import CrossEncoder

    dst = cfg["onnx_model_dir"]
    if os.path.isfile(os.path.join(dst, "onnx", "model.onnx")):
        return {"ok": True, "cached": True}
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(cfg["model_dir"], dst)
    model = CrossEncoder(dst, backend="onnx", device="cpu")
    model.save_pretrained(dst)
    return {"ok": True, "cached": False}


def main(argv):
    with open(argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    mode = cfg.get("mode", "run")
    try:
        if mode == "probe":
            import importlib

            missing = []
            for mod in REQUIRES[cfg["runner"]]:
                try:
                    importlib.import_module(mod)
                except Exception as e:  # noqa: BLE001 - any import failure means "not usable here"
                    missing.append(
                        f"{mod} ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
                    )
            out = {"ok": not missing, "missing": missing}
        elif mode == "prepare":
            out = prepare(cfg)
        else:
            out = run(cfg)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which skips this runner
        out = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    with open(cfg["result_out"], "w", encoding="utf-8") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
