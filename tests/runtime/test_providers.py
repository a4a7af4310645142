"""Execution providers: option building is unit-tested on CPU; execution on GPUs is marked `gpu`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from embedrt import Device, Encoder, ProviderUnavailableError
from embedrt.runtime import providers as prov

NAMES = ["input_ids", "attention_mask"]


def choose(device, available, **kw):
    return prov.choose_providers(device, available, max_seq_length=256, input_names=NAMES,
                                 trt=kw.pop("trt", None), default_trt_cache=Path("/tmp/trt"), **kw)


def test_auto_prefers_cuda_then_cpu():
    assert choose("auto", [prov.CPU])[0] is Device.CPU
    dev, providers = choose("auto", [prov.TENSORRT, prov.CUDA, prov.CPU])
    assert dev is Device.CUDA and providers[0][0] == prov.CUDA and providers[-1] == prov.CPU


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_explicit_accelerator_missing_is_an_error_listing_available(device):
    with pytest.raises(ProviderUnavailableError, match=r"available: \['CPUExecutionProvider'\].*embedrt\[gpu\]"):
        choose(device, [prov.CPU])


def test_tensorrt_options_profiles_and_cache():
    opts = prov.TensorRTOptions(fp16=True, cache_dir="/cache", max_batch_size=64, opt_seq_length=128)
    dev, providers = choose("tensorrt", [prov.TENSORRT, prov.CUDA, prov.CPU], trt=opts)
    assert dev is Device.TENSORRT
    name, o = providers[0]
    assert name == prov.TENSORRT and [p if isinstance(p, str) else p[0] for p in providers] == \
        [prov.TENSORRT, prov.CUDA, prov.CPU]
    assert o["trt_fp16_enable"] is True
    assert o["trt_engine_cache_enable"] is True and o["trt_engine_cache_path"] == "/cache"
    assert o["trt_profile_min_shapes"] == "input_ids:1x1,attention_mask:1x1"
    assert o["trt_profile_opt_shapes"] == "input_ids:64x128,attention_mask:64x128"
    assert o["trt_profile_max_shapes"] == "input_ids:64x256,attention_mask:64x256"


def test_tensorrt_profiles_skip_extra_inputs_and_cap_opt_length():
    o = prov.tensorrt_provider_options(prov.TensorRTOptions(opt_seq_length=512), 24,
                                       NAMES + ["prompt_length"], Path("/tmp/x"))
    assert "prompt_length" not in o["trt_profile_max_shapes"]
    assert o["trt_profile_opt_shapes"].endswith("32x24")
    assert o["trt_engine_cache_path"] == "/tmp/x"


def test_cuda_options_keep_arena_flat():
    assert prov.cuda_provider_options(1) == {"device_id": 1, "arena_extend_strategy": "kSameAsRequested"}


def test_silent_fallback_is_detected():
    with pytest.raises(ProviderUnavailableError, match="session is running on"):
        prov.check_active(Device.CUDA, [prov.CPU])
    prov.check_active(Device.CPU, [prov.CPU])


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here")
def test_encoder_refuses_cuda_without_it(tiny_bert):
    _, export_dir = tiny_bert
    with pytest.raises(ProviderUnavailableError):
        Encoder(export_dir, device="cuda")
    with pytest.raises(ProviderUnavailableError):
        Encoder(export_dir, providers=["CUDAExecutionProvider"])
    enc = Encoder(export_dir, device="auto")
    assert enc.device is Device.CPU and enc.active_providers == [prov.CPU]


@pytest.mark.gpu
def test_cuda_io_binding_matches_cpu(tiny_bert):
    _, export_dir = tiny_bert
    texts = ["hello world", "", "a much longer sentence about the model and the index " * 3]
    cpu = Encoder(export_dir, device="cpu").encode(texts)
    gpu = Encoder(export_dir, device="cuda")
    assert gpu.active_providers[0] == prov.CUDA and gpu._use_io_binding
    for _ in range(2):  # second call reuses the device output buffer
        np.testing.assert_allclose(gpu.encode(texts), cpu, atol=1e-5)


@pytest.mark.gpu
def test_tensorrt_engine_cache(tiny_bert, tmp_path):
    if prov.TENSORRT not in ort.get_available_providers():
        pytest.skip("no TensorrtExecutionProvider")
    _, export_dir = tiny_bert
    enc = Encoder(export_dir, device="tensorrt", tensorrt=prov.TensorRTOptions(cache_dir=str(tmp_path)))
    cpu = Encoder(export_dir, device="cpu")
    np.testing.assert_allclose(enc.encode(["hello", "world x y"]), cpu.encode(["hello", "world x y"]), atol=1e-4)
    assert any(tmp_path.iterdir())
