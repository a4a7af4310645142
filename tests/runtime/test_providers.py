"""Execution providers: option building is unit-tested on CPU; execution on GPUs is marked `gpu`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from embedrt import CrossEncoder, Device, Encoder, InputError, ProviderUnavailableError
from embedrt.runtime import providers as prov

NAMES = ["input_ids", "attention_mask"]


def choose(device, available, **kw):
    kw.setdefault("trt_cache", Path(tempfile.gettempdir()) / "embedrt-test-trt")
    return prov.choose_providers(
        device, available, max_seq_length=256, input_names=NAMES, trt=kw.pop("trt", None), **kw
    )


def test_auto_prefers_cuda_then_cpu():
    assert choose("auto", [prov.CPU])[0] is Device.CPU
    dev, providers = choose("auto", [prov.TENSORRT, prov.CUDA, prov.CPU])
    assert dev is Device.CUDA and providers[0][0] == prov.CUDA and providers[-1] == prov.CPU


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_explicit_accelerator_missing_is_an_error_listing_available(device):
    with pytest.raises(
        ProviderUnavailableError, match=r"available: \['CPUExecutionProvider'\].*embedrt\[gpu\]"
    ):
        choose(device, [prov.CPU])


def test_tensorrt_options_profiles_and_cache(tmp_path):
    cache = tmp_path / "nested" / "deeper" / "cache"
    opts = prov.TensorRTOptions(fp16=True, cache_dir=str(cache), max_batch_size=64, opt_seq_length=128)
    dev, providers = choose("tensorrt", [prov.TENSORRT, prov.CUDA, prov.CPU], trt=opts, max_batch_tokens=2048)
    assert dev is Device.TENSORRT
    name, o = providers[0]
    assert name == prov.TENSORRT and prov.provider_names(providers) == [prov.TENSORRT, prov.CUDA, prov.CPU]
    # NOTE: onnxruntime's Python binding parses TensorRT booleans as the strings True/False only
    assert o["trt_fp16_enable"] == "True" and o["trt_engine_cache_enable"] == "True"
    assert o["trt_engine_cache_path"] == str(cache) and cache.is_dir()  # nested dirs made by us
    assert o["trt_profile_min_shapes"] == "input_ids:1x1,attention_mask:1x1"
    # the opt shape is what the runtime sends under the 2048-token budget: 16 rows of 128 tokens
    assert o["trt_profile_opt_shapes"] == "input_ids:16x128,attention_mask:16x128"
    assert o["trt_profile_max_shapes"] == "input_ids:64x256,attention_mask:64x256"


def test_tensorrt_profile_sizes():
    o = prov.TensorRTOptions()
    assert prov.tensorrt_profile(o, 256, 2048) == ((1, 1), (16, 128), (64, 256))
    assert prov.tensorrt_profile(o, 256, None) == ((1, 1), (64, 128), (64, 256))
    assert prov.tensorrt_profile(o, 64, 100000) == ((1, 1), (64, 64), (64, 64))  # opt capped by max rows
    assert prov.tensorrt_profile(prov.TensorRTOptions(opt_batch_size=8), 256, 2048)[1] == (8, 128)
    with pytest.raises(InputError, match="max_batch_size"):
        prov.tensorrt_profile(prov.TensorRTOptions(max_batch_size=0), 256, 2048)
    assert prov.row_cap(Device.TENSORRT, prov.TensorRTOptions(max_batch_size=24)) == 24
    assert prov.row_cap(Device.CUDA, None) is None and prov.row_cap(Device.CPU, None) is None


def test_tensorrt_profiles_skip_extra_inputs_and_cap_opt_length(tmp_path):
    o = prov.tensorrt_provider_options(
        prov.TensorRTOptions(opt_seq_length=512), 24, NAMES + ["prompt_length"], tmp_path
    )
    assert "prompt_length" not in o["trt_profile_max_shapes"]
    assert o["trt_profile_opt_shapes"].endswith("64x24")
    assert o["trt_engine_cache_path"] == str(tmp_path)


def test_tensorrt_cache_defaults_outside_the_export_and_refuses_unwritable(tmp_path, monkeypatch):
    monkeypatch.setenv(prov.CACHE_ENV, str(tmp_path / "c"))
    assert prov.default_tensorrt_cache("ab" * 32) == tmp_path / "c" / "tensorrt" / ("ab" * 8)
    _, providers = prov.choose_providers(
        "tensorrt",
        [prov.TENSORRT, prov.CPU],
        max_seq_length=32,
        input_names=NAMES,
        trt=None,
        trt_cache=prov.default_tensorrt_cache("cd" * 32),
    )
    assert providers[0][1]["trt_engine_cache_path"] == str(tmp_path / "c" / "tensorrt" / ("cd" * 8))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="not writable"):  # a file where a directory should be
        choose("tensorrt", [prov.TENSORRT, prov.CPU], trt=prov.TensorRTOptions(cache_dir=str(blocker / "x")))
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if not os.access(read_only, os.W_OK):  # NOTE: root writes anywhere; the blocker above covers it
            with pytest.raises(InputError, match="not writable"):
                choose(
                    "tensorrt",
                    [prov.TENSORRT, prov.CPU],
                    trt=prov.TensorRTOptions(cache_dir=str(read_only / "x")),
                )
    finally:
        read_only.chmod(0o700)


def test_tf32_off_in_exact_mode():
    assert prov.cuda_provider_options(1) == {
        "device_id": "1",
        "arena_extend_strategy": "kSameAsRequested",
        "use_tf32": "0",
    }
    assert prov.cuda_provider_options(0, tf32=True)["use_tf32"] == "1"
    _, cuda = choose("cuda", [prov.CUDA, prov.CPU])
    assert cuda[0] == (prov.CUDA, prov.cuda_provider_options(0))
    _, trt = choose("tensorrt", [prov.TENSORRT, prov.CUDA, prov.CPU])
    assert trt[1][1]["use_tf32"] == "0" and not prov.wants_tf32(trt)
    _, trt32 = choose("tensorrt", [prov.TENSORRT, prov.CUDA, prov.CPU], trt=prov.TensorRTOptions(tf32=True))
    assert trt32[1][1]["use_tf32"] == "1" and prov.wants_tf32(trt32)


def test_gpu_process_preparation(monkeypatch):
    """CUDA/cuDNN preloaded before any GPU session (once), TensorRT's TF32 switched off unless asked for."""
    import onnxruntime as ort

    calls = []
    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: calls.append(1), raising=False)
    prov.preload_gpu_libraries.cache_clear()
    monkeypatch.delenv(prov.TF32_ENV, raising=False)
    prov.prepare_gpu_process([prov.CPU])
    assert calls == [] and prov.TF32_ENV not in os.environ
    prov.prepare_gpu_process([(prov.CUDA, prov.cuda_provider_options()), prov.CPU])
    assert calls == [1] and prov.TF32_ENV not in os.environ  # CUDA has its own option (use_tf32)
    _, trt = choose("tensorrt", [prov.TENSORRT, prov.CUDA, prov.CPU])
    prov.prepare_gpu_process(trt)
    assert calls == [1] and os.environ[prov.TF32_ENV] == "0"  # preloaded once per process
    monkeypatch.setenv(prov.TF32_ENV, "1")  # the user's own setting wins
    prov.prepare_gpu_process(trt)
    assert os.environ[prov.TF32_ENV] == "1"
    prov.preload_gpu_libraries.cache_clear()


def test_create_session_preloads_for_gpu_lists_and_disables_fallback(tiny_bert, monkeypatch):
    import onnxruntime as ort

    _, export_dir = tiny_bert
    seen = []
    monkeypatch.setattr(prov, "prepare_gpu_process", lambda providers: seen.append(providers))
    s = prov.create_session(export_dir / "model.onnx", ort.SessionOptions(), [prov.CPU])
    assert seen == [[prov.CPU]] and s._enable_fallback is False


def test_every_runtime_session_has_fallback_disabled(tiny_bert, tiny_cross):
    from embedrt import CrossEncoder

    _, export_dir = tiny_bert
    for fused in (False, "auto"):
        enc = Encoder(export_dir, device="cpu", native=fused)
        assert enc._session._enable_fallback is False
    _, cross_dir = tiny_cross
    assert CrossEncoder(cross_dir, device="cpu")._session._enable_fallback is False


def test_sessions_are_created_in_one_place():
    """The runtime creates onnxruntime sessions only in providers.create_session (GPU rules in one place)."""
    runtime = Path(prov.__file__).parent
    offenders = [
        p.name
        for p in runtime.glob("*.py")
        if p.name != "providers.py" and "InferenceSession(" in p.read_text()
    ]
    assert offenders == []


def test_tensorrt_batches_are_capped_to_the_profile(tiny_bert, monkeypatch):
    _, export_dir = tiny_bert
    enc = Encoder(export_dir, device="cpu")
    rows = []
    real = enc._run

    def counted(ids, mask, p, session=None):
        rows.append(len(ids))
        return real(ids, mask, p, session)

    monkeypatch.setattr(enc, "_run", counted)
    # NOTE: texts of one length, so that the split by length keeps them together up to batch_size
    texts = [f"text number {i % 10} about the model" for i in range(70)]
    ref = enc.encode(texts, batch_size=64)
    assert max(rows) == 64
    rows.clear()
    enc._row_cap = prov.row_cap(Device.TENSORRT, prov.TensorRTOptions(max_batch_size=16))
    np.testing.assert_allclose(enc.encode(texts, batch_size=64), ref, atol=1e-6)
    assert max(rows) == 16 and sum(rows) == 70


def test_install_layout_never_installs_both_runtimes():
    """pyproject: the base install depends on neither onnxruntime wheel; [cpu] and [gpu] pick one each."""
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]

    def runtimes(reqs):
        names = set()
        for r in reqs:
            name = r.split(";")[0].split("[")[0]
            for sep in "<>=!~ ":
                name = name.split(sep)[0]
            if name.lower().replace("_", "-") in ("onnxruntime", "onnxruntime-gpu"):
                names.add(name.lower())
        return names

    assert runtimes(meta["dependencies"]) == set()
    extras = meta["optional-dependencies"]
    assert runtimes(extras["cpu"]) == {"onnxruntime"} and runtimes(extras["gpu"]) == {"onnxruntime-gpu"}
    others = {k: runtimes(v) for k, v in extras.items() if k not in ("cpu", "gpu")}
    assert all(not v for v in others.values()), others
    assert f">={prov.MIN_ONNXRUNTIME}" in extras["cpu"][0] and f">={prov.MIN_ONNXRUNTIME}" in extras["gpu"][0]


def test_missing_runtime_and_both_runtimes_get_clear_hints(monkeypatch):
    import importlib.util

    from embedrt.errors import MissingDependencyError
    from embedrt.runtime import _ort

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match=r"embedrt\[cpu\].*embedrt\[gpu\]"):
        _ort.require()
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in prov.gpu_hint(["onnxruntime", "onnxruntime-gpu"])
    assert "preload_dlls" in prov.gpu_hint(["onnxruntime"])


def test_silent_fallback_is_detected():
    with pytest.raises(ProviderUnavailableError, match="session is running on"):
        prov.check_active(Device.CUDA, [prov.CPU])
    prov.check_active(Device.CPU, [prov.CPU])


@pytest.mark.parametrize(
    "bad", [True, 1, [], {}, "CPUExecutionProvider", [1], [("CPUExecutionProvider",)], [(1, {})]]
)
def test_malformed_provider_lists_are_input_errors(tiny_bert, tiny_cross, bad):
    for export_dir, cls in ((tiny_bert[1], Encoder), (tiny_cross[1], CrossEncoder)):
        with pytest.raises(InputError, match=r"providers(\[\d\])? must be"):
            cls(export_dir, providers=bad)
    enc = Encoder(tiny_bert[1], providers=[("CPUExecutionProvider", {})])
    assert enc.active_providers == [prov.CPU]


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
def test_cuda_matches_cpu_with_tf32_off(tiny_bert):
    _, export_dir = tiny_bert
    texts = ["hello world", "", "a much longer sentence about the model and the index " * 3]
    cpu = Encoder(export_dir, device="cpu").encode(texts)
    gpu = Encoder(export_dir, device="cuda")
    assert gpu.active_providers[0] == prov.CUDA and gpu._session._enable_fallback is False
    np.testing.assert_allclose(gpu.encode(texts), cpu, atol=1e-5)


@pytest.mark.gpu
def test_tensorrt_engine_cache(tiny_bert, tmp_path):
    if prov.TENSORRT not in ort.get_available_providers():
        pytest.skip("no TensorrtExecutionProvider")
    _, export_dir = tiny_bert
    enc = Encoder(export_dir, device="tensorrt", tensorrt=prov.TensorRTOptions(cache_dir=str(tmp_path)))
    cpu = Encoder(export_dir, device="cpu")
    np.testing.assert_allclose(
        enc.encode(["hello", "world x y"]), cpu.encode(["hello", "world x y"]), atol=1e-4
    )
    assert any(tmp_path.iterdir())
