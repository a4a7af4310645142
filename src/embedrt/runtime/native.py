"""The native ops (``ai.embedrt::MeanPoolNormalize``, and for int8 ``QuantizePerToken`` / ``DequantizeRows``)
on the runtime side: find the library, register it with onnxruntime, and check once that a variant's native
graph (its manifest entry ``native``) gives the standard graph's numbers.

Only numpy and onnxruntime: the graph rewrite happened at export time (``model.fused.onnx``), because the
runtime may not import the onnx package.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..errors import InputError, NativeOpsError
from ..manifest import NativeGraph, Variant, sha256_file

LIBRARY_NAME = "libembedrt_ops.so"
#: Set to a path to use that library instead of the one installed in the package.
LIBRARY_ENV = "EMBEDRT_OPS_LIBRARY"
#: Set to "0" to keep the fp32 and int8 variants off their packed graphs (``model.packed.onnx``,
#: ``model.int8.packed.onnx``) on this machine; "1" runs them on every CPU with AVX2.
PACKED_ENV = "EMBEDRT_PACKED_MATMUL"
#: The op of the int8 graph's packed twin (``model.int8.packed.onnx``).
INT8_PACKED_OP = "ai.embedrt::PackedMatMulInteger"
#: The custom ops' domain (MeanPoolNormalize, QuantizePerToken, DequantizeRows, RequantizeRows, PackedMatMul,
#: PackedMatMulInteger, Attention, AddLayerNorm).
OP_DOMAIN = "ai.embedrt"
#: Max abs diff allowed between the fused and the standard graph on the probe, scaled by max(1, max |value|),
#: unless the native graph's manifest entry records its own (``probe_atol``: the int8 graphs).
PROBE_ATOL = 1e-6


def library_path() -> Path | None:
    """The custom-op library: ``$EMBEDRT_OPS_LIBRARY``, else ``embedrt/_native/libembedrt_ops.so`` in any
    directory of the ``embedrt`` package (an editable install has two). None when it was not built."""
    explicit = os.environ.get(LIBRARY_ENV)
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    import embedrt

    for base in getattr(embedrt, "__path__", []):
        candidate = Path(base) / "_native" / LIBRARY_NAME
        if candidate.is_file():
            return candidate
    return None


def _missing_library() -> NativeOpsError:
    where = os.environ.get(LIBRARY_ENV) or "embedrt/_native/"
    return NativeOpsError(
        f"{LIBRARY_NAME} not found (looked in {where}); build it with `embedrt build-ops`, "
        "or `pip install .` on a machine with a C++ compiler"
    )


#: The library's build facts, exported as ``const char* EmbedrtOpsBuildInfo(void)``: "cuda=0|1;ort_api=N".
BUILD_INFO_SYMBOL = "EmbedrtOpsBuildInfo"


@functools.lru_cache(maxsize=8)
def _build_info(path: str, mtime_ns: int) -> dict[str, str]:
    import ctypes

    try:
        lib = ctypes.CDLL(path)
        fn = getattr(lib, BUILD_INFO_SYMBOL)
    except (OSError, AttributeError):
        return {}
    fn.restype = ctypes.c_char_p
    fn.argtypes = []
    raw = fn() or b""
    return dict(kv.split("=", 1) for kv in raw.decode("ascii", "replace").split(";") if "=" in kv)


def build_info(library: Path) -> dict[str, str]:
    """What the library says about its build (``cuda``, ``ort_api``); empty for a library that predates
    the symbol, which is treated as CPU-only."""
    library = Path(library)
    return _build_info(str(library.resolve()), library.stat().st_mtime_ns)


def has_cuda_kernel(library: Path) -> bool:
    """Whether the library registers MeanPoolNormalize for the CUDA provider (it was built with nvcc)."""
    return build_info(library).get("cuda") == "1"


def register(so: ort.SessionOptions, library: Path | None = None) -> Path:
    """Register the library with ``so``.

    Raises:
        NativeOpsError: the library was not built, or onnxruntime refused it.
    """
    library = library or library_path()
    if library is None:
        raise _missing_library()
    try:
        so.register_custom_ops_library(str(library))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises untyped errors for a bad library
        raise NativeOpsError(f"onnxruntime could not load {library}: {e}") from e
    return library


#: The kernels' ISAs, lowest first (EMBEDRT_OPS_ISA may ask for a lower one than the CPU has, never a higher).
ISAS = ("scalar", "avx2", "avx512")
ISA_ENV = "EMBEDRT_OPS_ISA"
#: cpuid feature bits of EmbedrtCpuFeatures (csrc/mean_pool.h kFeat*), in bit order.
CPU_FEATURES = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni")


@functools.lru_cache(maxsize=1)
def _cpuinfo_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=4)
def _report_library(path: str) -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(path)
        for name in ("EmbedrtKernelIsa", "EmbedrtCpuIsa"):
            getattr(lib, name).restype = ctypes.c_char_p
        lib.EmbedrtCpuFeatures.restype = ctypes.c_uint
    except (OSError, AttributeError):  # not loadable, or built before these functions existed
        return None
    return lib


def _capped(best: str) -> str:
    asked = os.environ.get(ISA_ENV)
    return asked if asked in ISAS and ISAS.index(asked) < ISAS.index(best) else best


def cpu_kernels() -> dict[str, Any]:
    """Which kernels the native ops and onnxruntime's int8 GEMM use on this CPU, and why.

    Returns ``{"isa": "avx512" | "avx2" | "scalar"`` (the tile the native ops choose, EMBEDRT_OPS_ISA
    applied), ``"cpu_isa"`` (the best this CPU has), ``"machine"``, ``"features"`` (cpuid flags that matter
    here), ``"packed_matmul"`` (which PackedMatMul tile, or why the packed graph is off),
    ``"packed_int8_gemm"`` (which PackedMatMulInteger tile, or why the packed int8 graph is off),
    ``"int8_gemm"`` (whether onnxruntime's u8 x s8 MatMulInteger kernel is exact for the saturating
    w8a8-vnni scheme),
    ``"source"`` (``"cpuid"`` through the built library, else ``"/proc/cpuinfo"``)}``.
    """
    machine = platform.machine()
    library = library_path()
    lib = _report_library(str(library)) if library is not None else None
    if lib is not None:
        bits = int(lib.EmbedrtCpuFeatures())
        features = [name for i, name in enumerate(CPU_FEATURES) if bits >> i & 1]
        cpu_isa = lib.EmbedrtCpuIsa().decode()
        isa = lib.EmbedrtKernelIsa().decode()
        source = "cpuid"
    else:
        flags = _cpuinfo_flags()
        features = [name for name in CPU_FEATURES if name in flags]
        cpu_isa = "avx512" if "avx512f" in flags else "avx2" if {"avx2", "fma", "f16c"} <= flags else "scalar"
        isa = _capped(cpu_isa)
        source = "/proc/cpuinfo"
    vnni = "avx512_vnni" in features or "avx_vnni" in features
    arm = machine in ("aarch64", "arm64")
    asked = os.environ.get(PACKED_ENV)
    if asked == "0":
        packed = f"off: {PACKED_ENV}=0"
    elif isa == "scalar":
        packed = (
            "off: this CPU has neither AVX-512 nor AVX2+FMA (the portable PackedMatMul path is exact "
            "but slow)"
        )
    elif isa == "avx2" and asked != "1":
        # measured on an AVX2 CPU (Zen 3): onnxruntime's FMA3 MatMul beats the AVX2 tile (docs/cpu.md)
        packed = (
            f"off: the AVX2 tile is slower than onnxruntime's MatMul on AVX2 CPUs ({PACKED_ENV}=1 runs it)"
        )
    else:
        packed = f"{isa} tile"
    if asked == "0":
        int8_packed = f"off: {PACKED_ENV}=0"
    elif isa == "scalar":
        int8_packed = "off: this CPU has no AVX2 (the portable PackedMatMulInteger path is exact but slow)"
    elif "avx_vnni" in features and asked != "1":
        int8_packed = (
            "off: onnxruntime's MatMulInteger has an AVX-VNNI kernel here (one instruction per 4 k; "
            f"{PACKED_ENV}=1 runs the AVX2 tile)"
        )
    elif isa == "avx512" and asked != "1":
        int8_packed = (
            "off: on AVX-512 CPUs onnxruntime's MatMulInteger (AVX-512BW, VNNI) is the wider kernel "
            f"({PACKED_ENV}=1 runs the AVX2 tile)"
        )
    else:
        int8_packed = "avx2 tile"
    if vnni or arm:
        gemm = "exact for every scheme (" + ("VNNI" if vnni else "ARM64 dot products") + ")"
    else:
        gemm = "exact for w7a8 and w8a7; w8a8-vnni saturates here (no VNNI: pairs of u8*s8 in int16)"
    return {
        "isa": isa,
        "cpu_isa": cpu_isa,
        "machine": machine,
        "features": features,
        "packed_matmul": packed,
        "packed_int8_gemm": int8_packed,
        "int8_gemm": gemm,
        "source": source,
    }


def cpu_has_avx512() -> bool:
    """Whether this CPU has AVX-512F."""
    return cpu_kernels()["cpu_isa"] == "avx512"


def packed_off() -> str | None:
    """Why this machine does not run PackedMatMul graphs (``model.packed.onnx``), or None when it does: the
    AVX-512 tile by default, the AVX2+FMA tile only when EMBEDRT_PACKED_MATMUL=1 asks for it (on AVX2 CPUs
    onnxruntime's own MatMul measured faster), never the portable path (exact but slow)."""
    packed = cpu_kernels()["packed_matmul"]
    return f"packed graph {packed}" if packed.startswith("off") else None


def int8_packed_off() -> str | None:
    """Why this machine does not run the int8 graph with PackedMatMulInteger (``model.int8.packed.onnx``), or
    None when it does: on AVX2 CPUs without AVX-512 or AVX-VNNI by default (there it measured level with
    onnxruntime's MatMulInteger or slightly ahead, docs/cpu.md), elsewhere only when EMBEDRT_PACKED_MATMUL=1
    asks for it."""
    packed = cpu_kernels()["packed_int8_gemm"]
    return f"packed int8 graph {packed}" if packed.startswith("off") else None


def twin_off(graph: NativeGraph) -> str | None:
    """Why this machine does not run ``graph``, a native graph's packed twin, or None when it does."""
    return int8_packed_off() if graph.op == INT8_PACKED_OP else packed_off()


@dataclass
class NativeChoice:
    """The native graph a variant would run (its files confined and checked) and the library it needs."""

    graph: Path
    probe: Path
    library: Path | None = None
    entry: NativeGraph | None = None


def check_request(request: Any) -> None:
    """Raises InputError unless ``request`` is ``"auto"``, True or False."""
    if not (request is True or request is False or request == "auto"):
        raise InputError(f"unknown native {request!r}; valid choices: 'auto', True, False")


def resolve(
    request: Any,
    export_dir: Path,
    variant: Variant,
    verify_checksum: bool,
    user_options: bool = False,
    tensorrt: bool = False,
    cpu: bool = True,
) -> tuple[NativeChoice | None, str]:
    """Decide whether a variant tries its native graph: (choice, "pending") or (None, why not).

    Raises:
        InputError: ``request`` is not one of ``"auto"``, True, False.
        NativeOpsError: ``request`` is True and the library or the native graph is missing.
    """
    check_request(request)
    if request is False:
        return None, "native=False"
    if request == "auto" and variant.native is None:
        return None, f"variant {variant.name!r} has no native graph"
    if request == "auto" and tensorrt:
        # NOTE: TensorRT cannot run the custom op (it would go to CUDA), and checking the probe would build
        # engines for two graphs: minutes. Only on request.
        return None, "not tried under TensorRT in 'auto' mode (pass native=True)"
    if request == "auto" and user_options:
        # NOTE: registering a library mutates SessionOptions; do not do that to the caller's object unasked.
        return None, "session_options given (pass native=True to register the library on them)"
    try:
        library = library_path()
        if library is None:
            raise _missing_library()
        choice = native_files(export_dir, variant, verify_checksum, library, cpu=cpu)
        if not cpu and variant.native is not None and variant.native.cpu_only:
            # NOTE: the int8 quantization ops have CPU kernels only: on a GPU, ORT would run them on the CPU
            # between device copies.
            raise NativeOpsError(
                f"{choice.graph.name} uses {variant.native.op}, which run on "
                "the CPU only; on this device the standard graph runs"
            )
        if not cpu and not has_cuda_kernel(library):
            # NOTE: a CPU-only library registers the op for the CPU provider alone: on a GPU, ORT would run
            # the node on the CPU behind a device-to-host copy of the [B,T,H] hidden states.
            raise NativeOpsError(
                f"{library.name} was built without the CUDA kernel (no nvcc at build time), "
                "so on a GPU the standard graph runs; rebuild: `embedrt build-ops --cuda on`"
            )
    except NativeOpsError as e:
        if request is True:
            raise
        return None, str(e)
    return choice, "pending"


def native_files(
    export_dir: Path, variant: Variant, verify_checksum: bool, library: Path | None = None, cpu: bool = False
) -> NativeChoice:
    """The native graph of a variant, with its files checked: on the CPU, its packed-Linear twin
    (``native.packed``) when the export has one and this machine runs PackedMatMul graphs (packed_off).

    Raises:
        NativeOpsError: the export has no native graph, a file is missing or corrupted, or the variant's
            native graph is a packed one only (``packed_only``: no pooling op) and this CPU does not run it.
    """
    native = variant.native
    if native is None:
        raise NativeOpsError(
            f"{export_dir} has no native graph for variant {variant.name!r} (the export predates it, or its "
            "pooling has no native op and no packed graph could be made)"
        )
    if native.packed_only:
        # NOTE: model.onnx with packed Linears (no pooling op) is worth it only where PackedMatMul is fast
        off = packed_off() if cpu else None
        if off:
            raise NativeOpsError(off)
        graph = native
    else:
        packed = native.packed
        graph = packed if cpu and packed is not None and twin_off(packed) is None else native
    out = NativeChoice(export_dir / graph.file, export_dir / graph.probe, library, graph)
    for path, digest in ((out.graph, graph.sha256), (out.probe, graph.probe_sha256)):
        if not path.is_file():
            raise NativeOpsError(f"native graph file missing: {path}")
        if verify_checksum and sha256_file(path) != digest:
            raise NativeOpsError(f"sha256 mismatch for {path}: the file is corrupted or was replaced")
    return out


def kernel_report_of(library: Path | None) -> dict[str, Any]:
    """Which CPU kernels the native ops take here (``cpu_kernels``), or {} without the library."""
    return {} if library is None else cpu_kernels()


def probe_difference(
    session: ort.InferenceSession,
    probe: Path,
    reference: ort.InferenceSession | None = None,
    output: str = "sentence_embedding",
) -> float:
    """Max abs diff between ``session`` on the probe inputs and the standard graph's outputs, scaled by the
    outputs' magnitude (so 1e-6 means 1e-6 relative for vectors larger than 1).

    ``reference`` (a standard-graph session) recomputes the expected values on the same provider; without
    it, the values stored at export (CPU) are used.
    """
    with np.load(probe) as data:
        feeds = {k[len("input.") :]: data[k] for k in data.files if k.startswith("input.")}
        expected = data["expected"]
    if reference is not None:
        expected = reference.run([output], feeds)[0]
    got = session.run([output], feeds)[0]
    if got.shape != expected.shape:
        return float("inf")
    scale = max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
    diff = float(np.abs(got.astype(np.float64) - expected).max()) if expected.size else 0.0
    return diff / scale if np.isfinite(diff) else float("inf")
