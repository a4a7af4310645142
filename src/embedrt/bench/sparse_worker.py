"""One sparse-encoder benchmark run of one runner, in its own process:
``python sparse_worker.py CONFIG.json``.

Standalone like ``cross_worker.py`` (stdlib + numpy at import time), so peers can run under interpreters
without embedrt. Encodes the corpus lines, writes a JSON result, and the dense vectors of the first
``agreement_rows`` texts (for agreement) to the path named in the config.
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


def read_texts(path, limit=None):
    with open(path, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]
    return texts[:limit] if limit else texts


def _embedrt(cfg):
    from embedrt import SparseEncoder

    model = SparseEncoder(cfg["export_dir"], device="cpu")
    info = {"provider": model.active_providers[0], "version": _version("embedrt")}

    def encode(texts, bs):
        return model.encode(texts, batch_size=bs)

    def dense(out):
        return out.toarray()

    return encode, dense, info


def _st(cfg, backend="torch"):
    from sentence_transformers import SparseEncoder

    path = cfg["onnx_model_dir"] if backend == "onnx" else cfg["model_dir"]
    kwargs = {"device": "cpu"}
    if backend == "onnx":
        kwargs["backend"] = "onnx"
    model = SparseEncoder(path, **kwargs)
    info = {
        "provider": "torch-cpu" if backend == "torch" else "CPUExecutionProvider",
        "version": _version("sentence-transformers"),
    }

    def encode(texts, bs):
        return model.encode(texts, batch_size=bs)  # NOTE: its default output, a torch sparse COO tensor

    def dense(out):
        return out.to_dense().numpy()

    return encode, dense, info


RUNNERS = {
    "embedrt": _embedrt,
    "st-torch": lambda cfg: _st(cfg, "torch"),
    "st-onnx": lambda cfg: _st(cfg, "onnx"),
}
REQUIRES = {
    "embedrt": ["embedrt"],
    "st-torch": ["sentence_transformers"],
    "st-onnx": ["sentence_transformers", "optimum.onnxruntime"],
}


def run(cfg):
    import numpy as np

    texts = read_texts(cfg["corpus"], cfg["limit"])
    t_import = time.time()
    encode, dense, info = RUNNERS[cfg["runner"]](cfg)
    t_loaded = time.time()
    encode(["Hello world"], 1)
    t_first = time.time()
    out = {
        "runner": cfg["runner"],
        "label": cfg["label"],
        "rep": cfg["rep"],
        "ok": True,
        **info,
        "cold_start_s": t_first - cfg["t_spawn"],
        "load_s": t_loaded - t_import,
        "first_encode_s": t_first - t_loaded,
        "python": sys.executable,
    }
    encode(texts[:32], 32)  # warm-up batch
    throughput = {}
    headline = cfg["headline_batch_size"]
    for bs in cfg["batch_sizes"]:
        subset = texts if bs == headline else texts[: cfg["sweep_limit"]]
        t0 = time.perf_counter()
        result = encode(subset, bs)
        dt = time.perf_counter() - t0
        throughput[str(bs)] = {"n_texts": len(subset), "seconds": dt, "texts_per_s": len(subset) / dt}
        if bs == headline and cfg.get("vectors_out"):
            rows = cfg["agreement_rows"]
            vec = dense(encode(texts[:rows], bs))
            np.save(cfg["vectors_out"], np.asarray(vec, dtype=np.float32))
        del result
    out["throughput"] = throughput
    lat = []
    for i in range(cfg["latency_calls"]):
        t0 = time.perf_counter()
        encode([texts[i % len(texts)]], 1)
        lat.append((time.perf_counter() - t0) * 1e3)
    out["latency_ms"] = {
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "n": len(lat),
    }
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def prepare(cfg):
    """Export sentence-transformers' own ONNX copy of the sparse encoder once (backend="onnx")."""
    import shutil

    from sentence_transformers import SparseEncoder

    dst = cfg["onnx_model_dir"]
    if os.path.isfile(os.path.join(dst, "onnx", "model.onnx")):
        return {"ok": True, "cached": True}
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(cfg["model_dir"], dst)
    model = SparseEncoder(dst, backend="onnx", device="cpu")
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
