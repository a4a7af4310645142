"""One benchmark run of one runner, in its own process: ``python worker.py CONFIG.json``.

Standalone on purpose (stdlib + numpy at import time): peers run under other interpreters, which may not
have embedrt installed. The runner's own libraries are imported inside the timed cold start.
Writes a JSON result (and the embeddings or scores, for agreement) to the paths named in the config.

One harness for every task: ``TASKS`` says what an item is (a text, or a pair of texts), how the result
names it and what is kept for agreement; ``PEERS`` is the one registry of runners, with each peer's runner
per task.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return None


def read_texts(path, limit=None):
    """One text per line."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f][:limit]


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


def read_nonblank_texts(path, limit=None):
    """One text per line, blank lines left out (the sparse task's corpus)."""
    with open(path, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]
    return texts[:limit] if limit else texts


# --- embedding runners: each returns (encode(texts, batch_size) -> array, info) ---


def _embedrt(cfg):
    from embedrt import Encoder

    enc = Encoder(
        cfg["export_dir"], device="cpu", variant=cfg.get("variant", "fp32"), **cfg.get("encoder_kwargs", {})
    )
    from embedrt.runtime.native import cpu_kernels

    info = {
        "provider": enc.active_providers[0],
        "version": _version("embedrt"),
        "graph": str(enc.graph_status)
        + (f", {enc.parallel_runs} graph runs in parallel" if enc.parallel_runs > 1 else ""),
        "cpu_kernels": cpu_kernels(),
    }
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
    info = {
        "provider": "torch-cpu" if backend == "torch" else "CPUExecutionProvider",
        "version": _version("sentence-transformers"),
    }
    return (lambda texts, bs: model.encode(texts, batch_size=bs, convert_to_numpy=True)), info


def _fastembed(cfg):
    import numpy as np
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    name = "embedrt-bench/local-model"
    if cfg.get("pooling") != ["mean"]:
        raise ImportError("fastembed peer supports mean-pooling models only")
    try:
        TextEmbedding.add_custom_model(
            model=name,
            pooling=PoolingType.MEAN,
            normalization=cfg["normalize"],
            sources=ModelSource(hf=name),
            dim=cfg["dim"],
            model_file="onnx/model.onnx",
        )
    except ValueError:
        pass  # already registered in this process
    model = TextEmbedding(model_name=name, specific_model_path=cfg["onnx_model_dir"], threads=None)
    info = {"provider": "CPUExecutionProvider", "version": _version("fastembed")}
    return (lambda texts, bs: np.stack(list(model.embed(texts, batch_size=bs)))), info


#: Where the OpenVINO peers' copy of the model lives, and the file name of its static int8 IR in it (the name
#: sentence-transformers' own ``export_static_quantized_openvino_model`` gives it).
OPENVINO_INT8_FILE = "openvino/openvino_model_qint8_quantized.xml"
#: Corpus lines that calibrate the static int8 IR (sentence-transformers' default ``num_samples``).
OPENVINO_CALIBRATION_SAMPLES = 300


#: OpenVINO's CPU plugin computes in bf16 by default on CPUs with AVX512_BF16 or AMX, not in fp32: the fp32
#: peer asks for f32 (``INFERENCE_PRECISION_HINT``), the bf16 one keeps the plugin's default.
OPENVINO_FP32_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def _st_openvino(cfg, file_name=None, ov_config=None):
    """sentence-transformers' OpenVINO backend on the IR that mode "prepare-peer" saved (fp32 or int8)."""
    from sentence_transformers import SentenceTransformer

    kwargs = {"device": "cpu", "backend": "openvino"}
    model_kwargs = {}
    if file_name:
        model_kwargs["file_name"] = file_name
    if ov_config:
        model_kwargs["ov_config"] = dict(ov_config)
    if model_kwargs:
        kwargs["model_kwargs"] = model_kwargs
    model = SentenceTransformer(cfg["openvino_model_dir"], **kwargs)
    info = {"provider": "OpenVINO-CPU", "version": _version("sentence-transformers")}
    info["openvino"] = _version("openvino")
    info["ov_config"] = dict(ov_config or {})
    return (lambda texts, bs: model.encode(texts, batch_size=bs, convert_to_numpy=True)), info


def _prepare_openvino(cfg):
    """Convert the model to OpenVINO IR once (``save_pretrained`` of the OpenVINO backend), timed apart from
    the runs' cold start."""
    import shutil

    from sentence_transformers import SentenceTransformer

    dst = cfg["openvino_model_dir"]
    if os.path.isfile(os.path.join(dst, "openvino", "openvino_model.xml")):
        return {"ok": True, "cached": True}
    t0 = time.perf_counter()
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(cfg["model_dir"], dst)
    model = SentenceTransformer(dst, backend="openvino", device="cpu")
    model.save_pretrained(dst)
    return {"ok": True, "cached": False, "convert_s": time.perf_counter() - t0}


def _prepare_openvino_int8(cfg):
    """The IR of ``_prepare_openvino``, statically quantized to int8 by optimum-intel's OVQuantizer (NNCF),
    calibrated on the first corpus lines.

    NOTE: sentence-transformers' ``export_static_quantized_openvino_model`` cannot run offline: it refuses to
    start without the ``datasets`` package and then loads its calibration set from the hub (glue/sst2 by
    default; docs/performance.md). Its steps are the same: ``OVQuantizer.from_pretrained`` on the loaded
    OpenVINO model, ``OVQuantizationConfig()`` (its defaults), then ``quantize``; only the calibration samples
    come from the corpus here, tokenized as ST does (but each at its own length instead of padded to 384).
    """
    import shutil
    import tempfile

    import nncf
    import numpy as np
    from optimum.intel.openvino import OVConfig, OVQuantizationConfig, OVQuantizer
    from sentence_transformers import SentenceTransformer

    out = _prepare_openvino(cfg)
    dst = cfg["openvino_model_dir"]
    target = os.path.join(dst, OPENVINO_INT8_FILE)
    if os.path.isfile(target):
        return {**out, "int8_cached": True}
    t0 = time.perf_counter()
    model = SentenceTransformer(dst, backend="openvino", device="cpu")
    ov_model = model.transformers_model
    texts = read_texts(cfg["input"], OPENVINO_CALIBRATION_SAMPLES)
    names = {i.get_any_name() for i in ov_model.model.inputs}
    samples = []
    for text in texts:
        enc = model.tokenizer([text], truncation=True, max_length=model.max_seq_length, return_tensors="np")
        samples.append({k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in names})
    quantizer = OVQuantizer.from_pretrained(ov_model)
    config = OVConfig(quantization_config=OVQuantizationConfig(num_samples=len(samples)))
    with tempfile.TemporaryDirectory() as tmp:
        quantizer.quantize(calibration_dataset=nncf.Dataset(samples), save_directory=tmp, ov_config=config)
        xml = next(
            os.path.join(root, f) for root, _, fs in os.walk(tmp) for f in fs if f == "openvino_model.xml"
        )
        shutil.move(xml, target)
        shutil.move(xml[: -len(".xml")] + ".bin", target[: -len(".xml")] + ".bin")
    return {
        **out,
        "int8_cached": False,
        "int8_quantize_s": time.perf_counter() - t0,
        "int8_calibration_samples": len(samples),
    }


# --- cross-encoder runners: each returns (predict(pairs, batch_size) -> array, info) ---


def _embedrt_cross(cfg):
    from embedrt import CrossEncoder

    model = CrossEncoder(cfg["export_dir"], device="cpu", variant=cfg.get("variant", "fp32"))
    info = {"provider": model.active_providers[0], "version": _version("embedrt")}
    return (lambda pairs, bs: model.predict(pairs, batch_size=bs)), info


def _st_load(cfg, cls_name, backend):
    """sentence-transformers' ``cls_name`` (``CrossEncoder``, ``SparseEncoder``) on PyTorch, or with
    ``backend="onnx"`` on its own ONNX copy; the model and the runner's info."""
    import sentence_transformers

    path = cfg["onnx_model_dir"] if backend == "onnx" else cfg["model_dir"]
    kwargs = {"device": "cpu"}
    if backend == "onnx":
        kwargs["backend"] = "onnx"
    model = getattr(sentence_transformers, cls_name)(path, **kwargs)
    info = {
        "provider": "torch-cpu" if backend == "torch" else "CPUExecutionProvider",
        "version": _version("sentence-transformers"),
    }
    return model, info


def _st_cross(cfg, backend="torch"):
    model, info = _st_load(cfg, "CrossEncoder", backend)
    return (
        lambda pairs, bs: model.predict([list(p) for p in pairs], batch_size=bs, convert_to_numpy=True)
    ), info


# --- sparse-encoder runners: each returns (encode(texts, batch_size) -> its own sparse output, info) ---


def _embedrt_sparse(cfg):
    from embedrt import SparseEncoder

    model = SparseEncoder(cfg["export_dir"], device="cpu", variant=cfg.get("variant", "fp32"))
    info = {"provider": model.active_providers[0], "version": _version("embedrt")}
    return (lambda texts, bs: model.encode(texts, batch_size=bs)), info  # NOTE: scipy CSR


def _st_sparse(cfg, backend="torch"):
    model, info = _st_load(cfg, "SparseEncoder", backend)
    # NOTE: its default output, a torch sparse COO tensor
    return (lambda texts, bs: model.encode(texts, batch_size=bs)), info


# --- multi-vector runners: each returns (encode(texts, bs) -> a (tokens_i, dim) array per text, info)
# NOTE: documents, the indexing workload: encode_document (the document length and skiplist)


def _embedrt_multi(cfg):
    from embedrt import MultiVectorEncoder

    model = MultiVectorEncoder(cfg["export_dir"], device="cpu", variant=cfg.get("variant", "fp32"))
    info = {"provider": model.active_providers[0], "version": _version("embedrt")}
    return (lambda texts, bs: model.encode_document(texts, batch_size=bs)), info


def _st_multi(cfg, backend="torch"):
    model, info = _st_load(cfg, "MultiVectorEncoder", backend)
    return (lambda texts, bs: model.encode_document(texts, batch_size=bs, convert_to_numpy=True)), info


def _stacked(values):
    """The ragged per-text token vectors as one float32 ``(all tokens, dim)`` array (a text with another
    token count than the reference's changes the shape, which the agreement reports)."""
    import numpy as np

    return np.vstack([np.asarray(v, dtype=np.float32) for v in values])


def _dense(values):
    """A float32 array of a runner's output: scipy CSR (``toarray``), torch sparse (``to_dense``) or dense."""
    import numpy as np

    if hasattr(values, "toarray"):
        values = values.toarray()
    elif hasattr(values, "to_dense"):
        values = values.to_dense().numpy()
    return np.asarray(values, dtype=np.float32)


# --- the ONNX copies some peers run on, made once per workdir (mode "prepare") ---


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


def st_int8_file(preset: str) -> str:
    """The file sentence-transformers writes for a preset: ``model_<weights dtype>_<preset>.onnx``.

    NOTE: optimum's avx2 preset quantizes weights to uint8 (u8 x u8 cannot saturate without VNNI), the others
    to int8, and the file name carries that dtype.
    """
    return f"onnx/model_{'quint8' if preset == 'avx2' else 'qint8'}_{preset}.onnx"


def _prepare_embedding(cfg):
    """Export the sentence-transformers ONNX copies once (fp32 and the int8 preset for this CPU)."""
    import shutil

    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    dst = cfg["onnx_model_dir"]
    preset = st_int8_preset()
    if os.path.isfile(os.path.join(dst, st_int8_file(preset))):
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


def _prepare_onnx_copy(cfg, cls_name):
    """Export sentence-transformers' own ONNX copy of a ``cls_name`` model (``CrossEncoder``,
    ``SparseEncoder``) once (backend="onnx")."""
    import shutil

    import sentence_transformers

    dst = cfg["onnx_model_dir"]
    if os.path.isfile(os.path.join(dst, "onnx", "model.onnx")):
        return {"ok": True, "cached": True}
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(cfg["model_dir"], dst)
    model = getattr(sentence_transformers, cls_name)(dst, backend="onnx", device="cpu")
    model.save_pretrained(dst)
    return {"ok": True, "cached": False}


def _prepare_cross(cfg):
    return _prepare_onnx_copy(cfg, "CrossEncoder")


def _prepare_sparse(cfg):
    return _prepare_onnx_copy(cfg, "SparseEncoder")


def _prepare_multi(cfg):
    return _prepare_onnx_copy(cfg, "MultiVectorEncoder")


@dataclass(frozen=True)
class Task:
    """What one task benchmarks: its items, the warm-up item, the names its results use, and what is saved
    for agreement."""

    read: Callable[..., list]
    warmup: Any
    unit: str  #: "sentences", "pairs" or "texts": throughput entries say ``{unit}_per_s``
    count_key: str  #: ``n_texts`` or ``n_pairs``
    first_key: str  #: seconds from loaded to the first result
    prepare: Callable[[dict], dict]
    #: agreement on the first this many items only, encoded again after the timed run (None: the timed
    #: run's own output). NOTE: a sparse output is vocabulary-wide once dense: 4000 texts x 30,522 would
    #: be 490 MB
    agreement_items: int | None = None
    to_values: Callable[[Any], Any] = _dense  #: the output as the array that is saved


TASKS = {
    "embedding": Task(
        read_texts, "Hello world", "sentences", "n_texts", "first_embedding_s", _prepare_embedding
    ),
    "cross-encoder": Task(
        read_pairs, ("Hello world", "Hi there"), "pairs", "n_pairs", "first_score_s", _prepare_cross
    ),
    "sparse": Task(
        read_nonblank_texts, "Hello world", "texts", "n_texts", "first_encode_s", _prepare_sparse, 256
    ),
    "multi-vector": Task(
        read_nonblank_texts,
        "Hello world",
        "texts",
        "n_texts",
        "first_encode_s",
        _prepare_multi,
        to_values=_stacked,
    ),
}


@dataclass(frozen=True)
class Peer:
    """A runner: what it needs importable (a missing module means "not installed here", and the peer is
    skipped), whether it runs on sentence-transformers' ONNX copy (made by mode "prepare"), its runner per
    task (a task without one skips the peer), and the copy of the model it makes for itself, if any."""

    requires: tuple[str, ...]
    onnx_copy: bool
    runners: dict[str, Callable]
    #: the peer's own copy of the model, made once per workdir (mode "prepare-peer"), timed apart
    prepare: Callable[[dict], dict] | None = None


_ST_ONNX = ("sentence_transformers", "optimum.onnxruntime")
_ST_OPENVINO = ("sentence_transformers", "openvino", "optimum.intel.openvino")
#: embedrt itself and every peer, in the order ``--peers`` lists them by default.
PEERS = {
    "embedrt": Peer(("embedrt",), False, {"embedding": _embedrt, "cross-encoder": _embedrt_cross}),
    "st-torch": Peer(
        ("sentence_transformers",),
        False,
        {"embedding": lambda cfg: _st(cfg, "torch"), "cross-encoder": lambda cfg: _st_cross(cfg, "torch")},
    ),
    "st-onnx": Peer(
        _ST_ONNX,
        True,
        {"embedding": lambda cfg: _st(cfg, "onnx"), "cross-encoder": lambda cfg: _st_cross(cfg, "onnx")},
    ),
    "st-onnx-int8": Peer(
        _ST_ONNX, True, {"embedding": lambda cfg: _st(cfg, "onnx", st_int8_file(st_int8_preset()))}
    ),
    "fastembed": Peer(("fastembed",), True, {"embedding": _fastembed}),
    "st-openvino": Peer(
        _ST_OPENVINO,
        False,
        {"embedding": lambda cfg: _st_openvino(cfg, ov_config=OPENVINO_FP32_CONFIG)},
        _prepare_openvino,
    ),
    "st-openvino-default": Peer(_ST_OPENVINO, False, {"embedding": _st_openvino}, _prepare_openvino),
    "st-openvino-int8": Peer(
        (*_ST_OPENVINO, "nncf"),
        False,
        {"embedding": lambda cfg: _st_openvino(cfg, OPENVINO_INT8_FILE)},
        _prepare_openvino_int8,
    ),
}
# NOTE: the sparse task's runners, on peers of the table above
PEERS["embedrt"].runners["sparse"] = _embedrt_sparse
PEERS["st-torch"].runners["sparse"] = lambda cfg: _st_sparse(cfg, "torch")
PEERS["st-onnx"].runners["sparse"] = lambda cfg: _st_sparse(cfg, "onnx")
# NOTE: and the multi-vector task's (sentence-transformers >= 6 has MultiVectorEncoder)
PEERS["embedrt"].runners["multi-vector"] = _embedrt_multi
PEERS["st-torch"].runners["multi-vector"] = lambda cfg: _st_multi(cfg, "torch")
PEERS["st-onnx"].runners["multi-vector"] = lambda cfg: _st_multi(cfg, "onnx")


def run(cfg):
    import numpy as np

    task = TASKS[cfg.get("task", "embedding")]
    items = task.read(cfg["input"], cfg["limit"])
    t_import = time.time()
    call, info = PEERS[cfg["runner"]].runners[cfg.get("task", "embedding")](cfg)
    t_loaded = time.time()
    call([task.warmup], 1)
    t_first = time.time()
    out = {
        "runner": cfg["runner"],
        "label": cfg["label"],
        "rep": cfg["rep"],
        "ok": True,
        **info,
        "cold_start_s": t_first - cfg["t_spawn"],
        "load_s": t_loaded - t_import,
        task.first_key: t_first - t_loaded,
        "python": sys.executable,
    }
    call(items[:32], 32)  # warm-up batch
    throughput = {}
    headline = cfg["headline_batch_size"]
    for bs in cfg["batch_sizes"]:
        subset = items if bs == headline else items[: cfg["sweep_limit"]]
        t0 = time.perf_counter()
        values = call(subset, bs)
        dt = time.perf_counter() - t0
        throughput[str(bs)] = {
            task.count_key: len(subset),
            "seconds": dt,
            f"{task.unit}_per_s": len(subset) / dt,
        }
        if bs == headline and cfg.get("values_out"):
            if task.agreement_items is not None:
                values = call(items[: task.agreement_items], bs)
            np.save(cfg["values_out"], task.to_values(values))
        del values
    out["throughput"] = throughput
    lat = []
    for i in range(cfg["latency_calls"]):
        item = items[i % len(items)]
        t0 = time.perf_counter()
        call([item], 1)
        lat.append((time.perf_counter() - t0) * 1e3)
    out["latency_ms"] = {
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "n": len(lat),
    }
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def probe(cfg):
    """Whether the runner's modules import here."""
    import importlib

    missing = []
    for mod in PEERS[cfg["runner"]].requires:
        try:
            importlib.import_module(mod)
        except Exception as e:  # noqa: BLE001 - any import failure means "not usable here"
            missing.append(f"{mod} ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})")
    return {"ok": not missing, "missing": missing}


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
        graph = helper.make_graph(
            [node],
            "roofline",
            [helper.make_tensor_value_info("A", a_t, [m, k])],
            [helper.make_tensor_value_info("C", c_t, [m, n])],
            initializer=[helper.make_tensor("B", b_t, [k, n], b.tobytes(), raw=True)],
        )
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
            out = probe(cfg)
        elif mode == "prepare":
            out = TASKS[cfg.get("task", "embedding")].prepare(cfg)
        elif mode == "prepare-peer":
            out = PEERS[cfg["runner"]].prepare(cfg)
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
