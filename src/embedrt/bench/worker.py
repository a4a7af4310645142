"""One benchmark run of one runner, in its own process: ``python worker.py CONFIG.json``.

Standalone on purpose (stdlib + numpy at import time): peers run under other interpreters, which may not
have embedrt installed. The runner's own libraries are imported inside the timed cold start.
Writes a JSON result (and the embeddings, for agreement) to the paths named in the config.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback


def _embedrt(cfg):
    from embedrt import Encoder

    enc = Encoder(cfg["export_dir"], device="cpu", variant=cfg.get("variant", "fp32"),
                  **cfg.get("encoder_kwargs", {}))
    from embedrt.runtime.native import cpu_kernels

    info = {"provider": enc.active_providers[0], "version": _version("embedrt"),
            "graph": ("native: " if enc.fused_pooling else "standard: ") + enc.fused_pooling_status,
            "cpu_kernels": cpu_kernels()}
    return (lambda texts, bs: enc.encode(texts, batch_size=bs)), info


def _st(cfg, backend="torch", file_name=None):
    from sentence_transformers import SentenceTransformer

    kwargs = {"device": "cpu"}
    if backend == "onnx":
        kwargs["backend"] = "onnx"
        if file_name:
            kwargs["model_kwargs"] = {"file_name": file_name}
    path = cfg["onnx_model_dir"] if backend == "onnx" else cfg["model_dir"]
    model = SentenceTransformer(path, **kwargs)
    info = {"provider": "torch-cpu" if backend == "torch" else "CPUExecutionProvider",
            "version": _version("sentence-transformers")}
    return (lambda texts, bs: model.encode(texts, batch_size=bs, convert_to_numpy=True)), info


def _fastembed(cfg):
    import numpy as np
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    name = "embedrt-bench/local-model"
    if cfg.get("pooling") != ["mean"]:
        raise ImportError("fastembed peer supports mean-pooling models only")
    try:
        TextEmbedding.add_custom_model(model=name, pooling=PoolingType.MEAN, normalization=cfg["normalize"],
                                       sources=ModelSource(hf=name), dim=cfg["dim"], model_file="onnx/model.onnx")
    except ValueError:
        pass  # already registered in this process
    model = TextEmbedding(model_name=name, specific_model_path=cfg["onnx_model_dir"], threads=None)
    info = {"provider": "CPUExecutionProvider", "version": _version("fastembed")}
    return (lambda texts, bs: np.stack(list(model.embed(texts, batch_size=bs)))), info


RUNNERS = {
    "embedrt": _embedrt,
    "st-torch": lambda cfg: _st(cfg, "torch"),
    "st-onnx": lambda cfg: _st(cfg, "onnx"),
    "st-onnx-int8": lambda cfg: _st(cfg, "onnx", f"onnx/model_qint8_{st_int8_preset()}.onnx"),
    "fastembed": _fastembed,
}
#: What each peer needs importable; a missing one means "not installed here", and the peer is skipped.
REQUIRES = {
    "embedrt": ["embedrt"],
    "st-torch": ["sentence_transformers"],
    "st-onnx": ["sentence_transformers", "optimum.onnxruntime"],
    "st-onnx-int8": ["sentence_transformers", "optimum.onnxruntime"],
    "fastembed": ["fastembed"],
}


def _version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return None


def _read_texts(cfg):
    with open(cfg["corpus"], encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f][: cfg["limit"]]


def run(cfg):
    import numpy as np

    texts = _read_texts(cfg)
    t_import = time.time()
    encode, info = RUNNERS[cfg["runner"]](cfg)
    t_loaded = time.time()
    encode(["Hello world"], 1)
    t_first = time.time()
    out = {"runner": cfg["runner"], "label": cfg["label"], "rep": cfg["rep"], "ok": True, **info,
           "cold_start_s": t_first - cfg["t_spawn"], "load_s": t_loaded - t_import,
           "first_embedding_s": t_first - t_loaded, "python": sys.executable}
    encode(texts[:32], 32)  # warm-up batch
    throughput = {}
    headline = cfg["headline_batch_size"]
    for bs in cfg["batch_sizes"]:
        subset = texts if bs == headline else texts[: cfg["sweep_limit"]]
        t0 = time.perf_counter()
        emb = encode(subset, bs)
        dt = time.perf_counter() - t0
        throughput[str(bs)] = {"n_texts": len(subset), "seconds": dt, "sentences_per_s": len(subset) / dt}
        if bs == headline and cfg.get("embeddings_out"):
            np.save(cfg["embeddings_out"], np.asarray(emb, dtype=np.float32))
    out["throughput"] = throughput
    lat = []
    for i in range(cfg["latency_calls"]):
        text = texts[i % len(texts)]
        t0 = time.perf_counter()
        encode([text], 1)
        lat.append((time.perf_counter() - t0) * 1e3)
    out["latency_ms"] = {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "n": len(lat)}
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def st_int8_preset() -> str:
    """sentence-transformers' int8 preset for this CPU: avx512_vnni, avx512, avx2 (x86) or arm64."""
    import platform

    if platform.machine() in ("aarch64", "arm64"):
        return "arm64"
    flags: set = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2"


def prepare(cfg):
    """Export the sentence-transformers ONNX copies once (fp32 and the int8 preset for this CPU)."""
    import shutil

    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    dst = cfg["onnx_model_dir"]
    preset = st_int8_preset()
    if os.path.isfile(os.path.join(dst, "onnx", f"model_qint8_{preset}.onnx")):
        return {"ok": True, "cached": True, "int8_preset": preset}
    if not os.path.isfile(os.path.join(dst, "onnx", "model.onnx")):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(cfg["model_dir"], dst)
        model = SentenceTransformer(dst, backend="onnx", device="cpu")
        model.save_pretrained(dst)
    else:
        model = SentenceTransformer(dst, backend="onnx", device="cpu")
    export_dynamic_quantized_onnx_model(model, preset, dst)
    return {"ok": True, "cached": False, "int8_preset": preset}


def roofline(cfg):
    """GFLOP/s that onnxruntime reaches on one large fp32 MatMul and one u8 x s8 MatMulInteger."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    m, k, n = cfg["shape"]
    result = {"shape": [m, k, n], "provider": "CPUExecutionProvider"}
    rng = np.random.default_rng(0)
    for kind in ("fp32", "int8"):
        if kind == "fp32":
            node = helper.make_node("MatMul", ["A", "B"], ["C"])
            a_t, b_t, c_t = TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT
            a = rng.standard_normal((m, k)).astype(np.float32)
            b = rng.standard_normal((k, n)).astype(np.float32)
        else:
            node = helper.make_node("MatMulInteger", ["A", "B"], ["C"])
            a_t, b_t, c_t = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32
            a = rng.integers(0, 255, (m, k), dtype=np.uint8)
            b = rng.integers(-127, 127, (k, n), dtype=np.int8)
        graph = helper.make_graph([node], "roofline", [helper.make_tensor_value_info("A", a_t, [m, k])],
                                  [helper.make_tensor_value_info("C", c_t, [m, n])],
                                  initializer=[helper.make_tensor("B", b_t, [k, n], b.tobytes(), raw=True)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        for _ in range(3):
            sess.run(None, {"A": a})
        times = []
        for _ in range(cfg["reps"]):
            t0 = time.perf_counter()
            sess.run(None, {"A": a})
            times.append(time.perf_counter() - t0)
        result[f"{kind}_gflops"] = 2 * m * k * n / float(np.median(times)) / 1e9
    return result


def main(argv):
    cfg_path = argv[1]
    with open(cfg_path, encoding="utf-8") as f:
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
                    missing.append(f"{mod} ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})")
            out = {"ok": not missing, "missing": missing}
        elif mode == "prepare":
            out = prepare(cfg)
        elif mode == "roofline":
            out = roofline(cfg)
        else:
            out = run(cfg)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which skips this runner
        out = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    with open(cfg["result_out"], "w", encoding="utf-8") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
