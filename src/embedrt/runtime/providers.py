"""Execution providers: choose, build their options, and check what the session really got."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ProviderUnavailableError
from ..modes import Device

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

#: The provider each explicit device needs. ``auto`` prefers CUDA, then CPU.
DEVICE_PROVIDER = {Device.CPU: CPU, Device.CUDA: CUDA, Device.TENSORRT: TENSORRT}
GPU_HINT = "pip install 'embedrt[gpu]' (onnxruntime-gpu) on a machine with an NVIDIA driver"


@dataclass
class TensorRTOptions:
    """TensorRT settings. Shape profiles come from the batch size and max_seq_length so one engine
    serves every batch up to ``max_batch_size`` x ``max_seq_length`` without rebuilding."""

    fp16: bool = False
    cache_dir: str | None = None
    max_batch_size: int = 32
    opt_seq_length: int = 128
    workspace_bytes: int = 2 << 30


def tensorrt_provider_options(opts: TensorRTOptions, max_seq_length: int, input_names: list[str],
                              default_cache: Path) -> dict[str, Any]:
    """onnxruntime's TensorRT provider options with min/opt/max profiles for our dynamic inputs."""
    opt_len = min(opts.opt_seq_length, max_seq_length)
    # NOTE: token_type_ids is the cross-encoders' segment input, [batch, sequence] like the other two.
    dims = [n for n in input_names if n in ("input_ids", "attention_mask", "token_type_ids")]

    def profile(b: int, t: int) -> str:
        return ",".join(f"{n}:{b}x{t}" for n in dims)

    cache = Path(opts.cache_dir) if opts.cache_dir else default_cache
    return {
        "trt_fp16_enable": bool(opts.fp16),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
        "trt_max_workspace_size": int(opts.workspace_bytes),
        "trt_profile_min_shapes": profile(1, 1),
        "trt_profile_opt_shapes": profile(opts.max_batch_size, opt_len),
        "trt_profile_max_shapes": profile(opts.max_batch_size, max_seq_length),
    }


def cuda_provider_options(device_id: int = 0) -> dict[str, Any]:
    # NOTE: kSameAsRequested keeps the arena from doubling on every new (batch, seq) shape.
    return {"device_id": device_id, "arena_extend_strategy": "kSameAsRequested"}


def choose_providers(device: Device | str, available: list[str], *, max_seq_length: int,
                     input_names: list[str], trt: TensorRTOptions | None, default_trt_cache: Path,
                     device_id: int = 0) -> tuple[Device, list[Any]]:
    """Resolve ``device`` to an onnxruntime provider list, checking availability first.

    Raises:
        ProviderUnavailableError: an explicitly requested accelerator is not available.
    """
    device = Device.parse(device, "device")
    if device is Device.AUTO:
        device = Device.CUDA if CUDA in available else Device.CPU
    needed = DEVICE_PROVIDER[device]
    if needed not in available:
        raise ProviderUnavailableError(
            f"device {device.value!r} requested but {needed} is not available "
            f"(available: {available}); {GPU_HINT}"
        )
    if device is Device.CPU:
        return device, [CPU]
    if device is Device.CUDA:
        return device, [(CUDA, cuda_provider_options(device_id)), CPU]
    trt_opts = tensorrt_provider_options(trt or TensorRTOptions(), max_seq_length, input_names, default_trt_cache)
    trt_opts["device_id"] = device_id
    providers: list[Any] = [(TENSORRT, trt_opts)]
    if CUDA in available:
        providers.append((CUDA, cuda_provider_options(device_id)))
    providers.append(CPU)
    return device, providers


def check_active(device: Device, active: list[str]) -> None:
    """Raise when the session silently fell back from the requested accelerator.

    Raises:
        ProviderUnavailableError: the requested provider is not among the session's active providers.
    """
    needed = DEVICE_PROVIDER[device]
    if needed not in active:
        raise ProviderUnavailableError(
            f"device {device.value!r} requested and {needed} is installed, but the session is running on "
            f"{active}: onnxruntime could not initialise it (driver, CUDA/cuDNN or TensorRT libraries). {GPU_HINT}"
        )
