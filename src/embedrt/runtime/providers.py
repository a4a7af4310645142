"""Execution providers: choose, build their options, create sessions, and check what a session really got.

Every onnxruntime session of the runtime is created by :func:`create_session`, so the GPU rules live in one
place: CUDA/cuDNN libraries preloaded, TF32 off unless asked for, no silent fallback to the CPU.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, ProviderUnavailableError
from ..modes import Device

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = (CUDA, TENSORRT)

#: The provider each explicit device needs. ``auto`` prefers CUDA, then CPU.
DEVICE_PROVIDER = {Device.CPU: CPU, Device.CUDA: CUDA, Device.TENSORRT: TENSORRT}
#: The lowest onnxruntime the package allows (pyproject's [cpu]/[gpu] extras): C API 21 (the custom-op
#: library's headers) and ``onnxruntime.preload_dlls``.
MIN_ONNXRUNTIME = "1.21"
#: TensorRT's own switch for TF32 (its execution provider has no option for it, onnxruntime#26029); read by
#: TensorRT and cuBLAS when they initialise, so it is set before the first GPU session of the process.
TF32_ENV = "NVIDIA_TF32_OVERRIDE"
#: Where TensorRT engines go by default: ``$EMBEDRT_CACHE_DIR/tensorrt/<graph sha256 prefix>``.
CACHE_ENV = "EMBEDRT_CACHE_DIR"


def installed_runtimes() -> list[str]:
    """The onnxruntime distributions installed here (``onnxruntime``, ``onnxruntime-gpu``, ...)."""
    found = []
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def gpu_hint(runtimes: list[str] | None = None) -> str:
    """What to do when CUDA is missing or inactive, given the onnxruntime distributions installed."""
    runtimes = installed_runtimes() if runtimes is None else runtimes
    if "onnxruntime" in runtimes and "onnxruntime-gpu" in runtimes:
        # NOTE: both wheels own the onnxruntime/ package; the one installed last wins (onnxruntime#26996)
        return (
            "both onnxruntime and onnxruntime-gpu are installed and share one onnxruntime/ package: "
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'embedrt[gpu]'"
        )
    return (
        "pip install 'embedrt[gpu]' (onnxruntime-gpu instead of onnxruntime, not beside it) on a machine "
        "with an NVIDIA driver; CUDA and cuDNN come from the nvidia-* wheels or the system, and embedrt "
        "calls onnxruntime.preload_dlls() before a GPU session so that pip-installed ones are found"
    )


@dataclass
class TensorRTOptions:
    """TensorRT settings.

    The shape profile covers every batch the runtime sends: rows are capped at ``max_batch_size`` (batches
    are split, never refused), lengths at the export's max_seq_length. The opt shape is the batch the
    runtime sends most: ``opt_seq_length`` tokens, and as many rows as the token budget allows
    (``max_batch_tokens // opt_seq_length``, at most ``max_batch_size``) unless ``opt_batch_size`` is set.

    Args:
        fp16: let TensorRT pick fp16 kernels (not exact).
        cache_dir: engine and timing cache; default ``$EMBEDRT_CACHE_DIR`` or ``~/.cache/embedrt``, under
            ``tensorrt/<graph sha256 prefix>`` (never inside the export, which may be read-only).
        max_batch_size: the profile's largest batch; the runtime splits larger batches.
        opt_batch_size: the profile's opt batch (default: from the token budget, see above).
        opt_seq_length: the profile's opt length.
        workspace_bytes: TensorRT's builder workspace.
        tf32: allow TF32 for fp32 layers (off: fp32 stays fp32, as the CPU and sentence-transformers).
    """

    fp16: bool = False
    cache_dir: str | None = None
    max_batch_size: int = 64
    opt_batch_size: int | None = None
    opt_seq_length: int = 128
    workspace_bytes: int = 2 << 30
    tf32: bool = False


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"TensorRTOptions.{name} must be a positive int, got {value!r}")
    return value


Shape = tuple[int, int]


def tensorrt_profile(
    opts: TensorRTOptions, max_seq_length: int, max_batch_tokens: int | None
) -> tuple[Shape, Shape, Shape]:
    """(min, opt, max) (rows, tokens) of the TensorRT profile for what the runtime will send.

    Raises:
        InputError: a non-positive size.
    """
    max_rows = _positive("max_batch_size", opts.max_batch_size)
    opt_len = min(_positive("opt_seq_length", opts.opt_seq_length), max_seq_length)
    if opts.opt_batch_size is not None:
        opt_rows = min(_positive("opt_batch_size", opts.opt_batch_size), max_rows)
    elif type(max_batch_tokens) is int and max_batch_tokens > 0:
        opt_rows = max(1, min(max_rows, max_batch_tokens // opt_len))
    else:
        opt_rows = max_rows
    return (1, 1), (opt_rows, opt_len), (max_rows, max_seq_length)


def row_cap(device: Device, trt: TensorRTOptions | None) -> int | None:
    """The most rows one graph run may have on ``device``: TensorRT's profile maximum, else no cap."""
    if device is Device.TENSORRT:
        return _positive("max_batch_size", (trt or TensorRTOptions()).max_batch_size)
    return None


def default_cache_root() -> Path:
    """``$EMBEDRT_CACHE_DIR``, else ``$XDG_CACHE_HOME/embedrt``, else ``~/.cache/embedrt``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "embedrt"


def default_tensorrt_cache(graph_key: str) -> Path:
    """The default engine cache of one graph: ``<cache root>/tensorrt/<key>`` (key: its sha256 prefix)."""
    key = graph_key[:16] if graph_key else "unkeyed"
    return default_cache_root() / "tensorrt" / key


def graph_key(model_path: Path, sha256: str | None) -> str:
    """A stable name for a graph's engine cache: its manifest sha256, else a hash of its absolute path."""
    return sha256 or hashlib.sha256(str(Path(model_path).absolute()).encode()).hexdigest()


def ensure_writable_dir(path: Path, what: str = "TensorRT cache_dir") -> Path:
    """Create ``path`` with its parents and check that a file can be written there.

    Raises:
        InputError: the directory cannot be created or written.
    """
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".embedrt-write-test-"):
            pass
    except OSError as e:
        raise InputError(
            f"{what} {str(path)!r} is not writable ({e.strerror or e}); pass "
            f"TensorRTOptions(cache_dir=...) or set {CACHE_ENV} to a writable directory"
        ) from e
    return path


def tensorrt_provider_options(
    opts: TensorRTOptions,
    max_seq_length: int,
    input_names: list[str],
    cache_dir: Path,
    max_batch_tokens: int | None = None,
    device_id: int = 0,
) -> dict[str, str]:
    """onnxruntime's TensorRT provider options with min/opt/max profiles for our dynamic inputs.

    Values are strings as onnxruntime's Python binding parses them (booleans as ``True``/``False``).
    """
    # NOTE: token_type_ids is the cross-encoders' segment input, [batch, sequence] like the other two.
    dims = [n for n in input_names if n in ("input_ids", "attention_mask", "token_type_ids")]
    (b0, t0), (b1, t1), (b2, t2) = tensorrt_profile(opts, max_seq_length, max_batch_tokens)

    def profile(b: int, t: int) -> str:
        return ",".join(f"{n}:{b}x{t}" for n in dims)

    cache = str(cache_dir)
    return {
        "device_id": str(int(device_id)),
        "trt_fp16_enable": str(bool(opts.fp16)),
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": cache,
        "trt_max_workspace_size": str(int(opts.workspace_bytes)),
        "trt_profile_min_shapes": profile(b0, t0),
        "trt_profile_opt_shapes": profile(b1, t1),
        "trt_profile_max_shapes": profile(b2, t2),
    }


def cuda_provider_options(device_id: int = 0, *, tf32: bool = False) -> dict[str, str]:
    """onnxruntime's CUDA provider options: the arena grows as requested, TF32 off unless ``tf32``."""
    # NOTE: kSameAsRequested keeps the arena from doubling on every new (batch, seq) shape. use_tf32 defaults
    # to 1 in the CUDA provider: fp32 MatMuls would then round inputs to 10 mantissa bits on Ampere and newer.
    return {
        "device_id": str(int(device_id)),
        "arena_extend_strategy": "kSameAsRequested",
        "use_tf32": "1" if tf32 else "0",
    }


def choose_providers(
    device: Device | str,
    available: list[str],
    *,
    max_seq_length: int,
    input_names: list[str],
    trt: TensorRTOptions | None,
    trt_cache: Path | None = None,
    device_id: int = 0,
    max_batch_tokens: int | None = None,
    default_trt_cache: Path | None = None,
) -> tuple[Device, list[Any]]:
    """Resolve ``device`` to an onnxruntime provider list, checking availability first.

    ``trt_cache`` (or ``default_trt_cache``, its older name) is the engine cache used when ``trt`` names
    none; it is created here for TensorRT.

    Raises:
        ProviderUnavailableError: an explicitly requested accelerator is not available.
        InputError: a TensorRT cache directory that cannot be written, or bad TensorRT sizes.
    """
    device = Device.parse(device, "device")
    if device is Device.AUTO:
        device = Device.CUDA if CUDA in available else Device.CPU
    needed = DEVICE_PROVIDER[device]
    if needed not in available:
        raise ProviderUnavailableError(
            f"device {device.value!r} requested but {needed} is not available "
            f"(available: {available}); {gpu_hint()}"
        )
    if device is Device.CPU:
        return device, [CPU]
    trt_opts = trt or TensorRTOptions()
    cuda = (CUDA, cuda_provider_options(device_id, tf32=device is Device.TENSORRT and trt_opts.tf32))
    if device is Device.CUDA:
        return device, [cuda, CPU]
    fallback = trt_cache or default_trt_cache or default_tensorrt_cache("")
    cache = ensure_writable_dir(Path(trt_opts.cache_dir) if trt_opts.cache_dir else fallback)
    providers: list[Any] = [
        (
            TENSORRT,
            tensorrt_provider_options(
                trt_opts, max_seq_length, input_names, cache, max_batch_tokens, device_id
            ),
        )
    ]
    if CUDA in available:
        providers.append(cuda)
    providers.append(CPU)
    return device, providers


def check_providers(providers: Any) -> list[str]:
    """The names in a caller's provider list, as onnxruntime takes it: a non-empty list (or tuple) of names
    and ``(name, options dict)`` pairs.

    Raises:
        InputError: anything else.
    """
    shape = "a non-empty list of provider names or (name, options dict) pairs"
    if isinstance(providers, (str, bytes)) or not isinstance(providers, (list, tuple)) or not providers:
        raise InputError(f"providers must be {shape}, got {providers!r}")
    for i, p in enumerate(providers):
        ok = isinstance(p, str) or (
            isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], dict)
        )
        if not ok:
            raise InputError(
                f"providers[{i}] must be a provider name or a (name, options dict) pair, got {p!r}"
            )
    return provider_names(list(providers))


def provider_names(providers: list[Any]) -> list[str]:
    return [p if isinstance(p, str) else p[0] for p in providers]


def wants_tf32(providers: list[Any]) -> bool:
    """Whether a provider list opts into TF32 for TensorRT: a CUDA entry with use_tf32 on (TensorRT follows
    CUDA's choice, see choose_providers); without a CUDA entry, no."""
    for p in providers:
        if not isinstance(p, str) and p[0] == CUDA:
            return str(p[1].get("use_tf32", "1")) not in ("0", "False", "false")
    return False


@functools.lru_cache(maxsize=1)
def preload_gpu_libraries() -> bool:
    """``onnxruntime.preload_dlls()`` once per process (onnxruntime >= 1.21): loads CUDA and cuDNN from the
    nvidia-* wheels (or the default paths) before the CUDA provider needs them. False when unavailable."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return False
    try:
        preload()
    except Exception:  # noqa: BLE001 - a failed preload is reported by the session check (check_active)
        return False
    return True


def prepare_gpu_process(providers: list[Any]) -> None:
    """What a GPU session needs from the process before it is created: preloaded CUDA/cuDNN, and TF32 off
    for TensorRT unless it was asked for (``NVIDIA_TF32_OVERRIDE=0``, unless the user set it already)."""
    names = provider_names(providers)
    if not any(n in GPU_PROVIDERS for n in names):
        return
    if TENSORRT in names and not wants_tf32(providers):
        # NOTE: process-wide and read once, when TensorRT/cuBLAS initialise: a user's own setting wins.
        os.environ.setdefault(TF32_ENV, "0")
    preload_gpu_libraries()


def create_session(model: str | os.PathLike | bytes, sess_options: Any, providers: list[Any]) -> Any:
    """The one way the runtime makes an ``onnxruntime.InferenceSession``.

    GPU provider lists get :func:`prepare_gpu_process` first. Every session has ``disable_fallback()``
    called: a provider failure during ``run()`` raises instead of silently re-running on the CPU (and
    leaving ``get_providers()`` stale). Errors of onnxruntime itself propagate unchanged.
    """
    import onnxruntime as ort

    prepare_gpu_process(providers)
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, sess_options=sess_options, providers=providers)
    session.disable_fallback()
    return session


def check_active(device: Device, active: list[str]) -> None:
    """Raise when the session silently fell back from the requested accelerator.

    Raises:
        ProviderUnavailableError: the requested provider is not among the session's active providers.
    """
    needed = DEVICE_PROVIDER[device]
    if needed not in active:
        raise ProviderUnavailableError(
            f"device {device.value!r} requested and {needed} is installed, but the session is running on "
            f"{active}: onnxruntime could not initialise it (driver, CUDA/cuDNN or TensorRT libraries; "
            f"`python -c 'import onnxruntime as o; o.print_debug_info()'` lists what it found). {gpu_hint()}"
        )


# ---------------------------------------------------------------------------------------------- session plans
@dataclass
class SessionPlan:
    """How every session of one model is made: the device, the provider list, the options."""

    device: Device
    providers: list[Any]
    #: The caller gave the provider list (checked against the first entry, not against ``device``).
    explicit: bool
    #: The caller's own SessionOptions, used as given (None: embedrt's defaults).
    user_options: Any
    intra_op_threads: int | None
    #: The most rows one run may have (TensorRT's profile maximum), None for no cap.
    max_rows: int | None = None

    def options(self) -> Any:
        """The caller's options, or a fresh default object (registering a library mutates it)."""
        return self.user_options if self.user_options is not None else session_options(self.intra_op_threads)


def session_options(intra_op_threads: int | None) -> Any:
    """Full graph optimisation (onnxruntime fuses attention, SkipLayerNorm, Gelu at load), thread count.

    Raises:
        InputError: a negative or non-int thread count.
    """
    import onnxruntime as ort

    check_threads(intra_op_threads)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads is not None:
        so.intra_op_num_threads = intra_op_threads
    return so


def check_threads(intra_op_threads: Any) -> None:
    """Raises InputError unless ``intra_op_threads`` is None or an int >= 0 (not a bool)."""
    n = intra_op_threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise InputError(f"intra_op_threads must be a non-negative int, got {intra_op_threads!r}")


def plan_session(
    device: Device | str,
    providers: list[Any] | None,
    *,
    intra_op_threads: int | None,
    user_options: Any,
    max_seq_length: int,
    input_names: list[str],
    tensorrt: TensorRTOptions | None,
    model_path: Path,
    sha256: str | None,
    device_id: int = 0,
    max_batch_tokens: int | None = None,
) -> SessionPlan:
    """The one place that turns the user's device/providers/threads/options into a :class:`SessionPlan`.

    Raises:
        InputError: an unknown device, a bad thread count, an unwritable TensorRT cache.
        ProviderUnavailableError: a requested provider or accelerator is not available.
    """
    import onnxruntime as ort

    check_threads(intra_op_threads)
    available = ort.get_available_providers()
    if providers is not None:
        names = check_providers(providers)
        missing = [n for n in names if n not in available]
        if missing:
            raise ProviderUnavailableError(f"providers {missing} are not available (available: {available})")
        chosen = Device.CUDA if any(n in GPU_PROVIDERS for n in names) else Device.CPU
        return SessionPlan(chosen, list(providers), True, user_options, intra_op_threads)
    chosen, provider_list = choose_providers(
        device,
        available,
        max_seq_length=max_seq_length,
        input_names=input_names,
        trt=tensorrt,
        trt_cache=default_tensorrt_cache(graph_key(model_path, sha256)),
        device_id=device_id,
        max_batch_tokens=max_batch_tokens,
    )
    return SessionPlan(
        chosen, provider_list, False, user_options, intra_op_threads, row_cap(chosen, tensorrt)
    )


def open_session(path: Path, plan: SessionPlan, options: Any = None) -> Any:
    """:func:`create_session` on ``path`` as planned (onnxruntime's own errors pass through)."""
    return create_session(path, options if options is not None else plan.options(), plan.providers)


def check_session(session: Any, plan: SessionPlan) -> list[str]:
    """The session's active providers, after checking it did not fall back from what was asked.

    Raises:
        ProviderUnavailableError: the requested provider is not active.
    """
    active = session.get_providers()
    if plan.explicit:
        first = provider_names(plan.providers)[0]
        if first not in active:
            raise ProviderUnavailableError(f"requested {first} but the session runs on {active}")
    else:
        check_active(plan.device, active)
    return active
