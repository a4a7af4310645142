"""Bad inputs to the exporter: typed errors, and nothing left behind."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from embedrt import (
    ModelLoadError,
    ModelNotFoundError,
    OutputExistsError,
    UnsupportedModelError,
    VerificationError,
    export_model,
)
from embedrt.errors import ExportError, InputError
from embedrt.export.gate import GateThresholds
from helpers import leftovers


def test_missing_local_model(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        export_model(str(tmp_path / "nope"), tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a model directory"):
        export_model(str(tmp_path / "empty"), tmp_path / "out")


def test_offline_hub_id_without_local_copy_lists_attempts(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with pytest.raises(ModelNotFoundError) as info:
        export_model("no-such-org/no-such-model-xyz", tmp_path / "out")
    msg = str(info.value)
    for attempt in ("local path", "Hugging Face cache", "HF_HUB_OFFLINE", "offline package"):
        assert attempt in msg, msg
    assert leftovers(tmp_path) == []


def test_corrupted_weights(tiny_factory, tmp_path):
    st_dir, _ = tiny_factory(export=False, arch="bert", seed=3)
    bad = tmp_path / "bad"
    shutil.copytree(st_dir, bad)
    shutil.copytree(st_dir.parent / f"{st_dir.name}-hf", tmp_path / f"{st_dir.name}-hf")
    (bad / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelLoadError, match="could not load"):
        export_model(str(bad), tmp_path / "out")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("text", ["{not json", "[" * 5_000 + "]" * 5_000, '{"idx": 0}', "[1, 2]"])
def test_corrupted_modules_json(tiny_factory, tmp_path, text):
    st_dir, _ = tiny_factory(export=False, arch="bert", seed=4)
    bad = tmp_path / "bad-modules"
    shutil.copytree(st_dir, bad)
    (bad / "modules.json").write_text(text)
    with pytest.raises(ModelLoadError, match="modules.json is corrupted"):
        export_model(str(bad), tmp_path / "out")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"atol": -1.0}, "atol must be a finite number >= 0"),
        ({"atol": float("nan")}, "atol must be a finite number >= 0"),
        ({"opset": 5}, "opset must be an int from 13 to 20"),
        ({"opset": 99}, "opset must be an int from 13 to 20"),
        ({"thresholds": GateThresholds(min_mean_cosine=2.0)}, "min_mean_cosine must be a cosine"),
        ({"thresholds": GateThresholds(min_cosine=float("nan"))}, "min_cosine must be a cosine"),
        ({"calibration": ["", "  "]}, "calibration sentences hold no text"),
    ],
)
def test_options_no_export_could_honour_are_refused_before_any_work(tiny_factory, tmp_path, kwargs, match):
    st_dir, _ = tiny_factory(export=False, arch="bert", seed=4)
    with pytest.raises(InputError, match=match):
        export_model(str(st_dir), tmp_path / "out", variants=("fp32", "int8"), **kwargs)
    assert leftovers(tmp_path) == []


def test_unsupported_module_is_named(tiny_factory, tmp_path):
    st_dir, _ = tiny_factory(export=False, arch="bert", seed=4)
    bad = tmp_path / "lstm"
    shutil.copytree(st_dir, bad)
    modules = json.loads((bad / "modules.json").read_text())
    modules.insert(1, {"idx": 1, "name": "1", "path": "1_LSTM", "type": "sentence_transformers.models.LSTM"})
    (bad / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(UnsupportedModelError, match=r"LSTM.*supported module types: Transformer, Pooling"):
        export_model(str(bad), tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_existing_output_needs_force_and_is_untouched(tiny_factory, tmp_path):
    st_dir, _ = tiny_factory(export=False, arch="bert", seed=5)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--force"):
        export_model(str(st_dir), out)
    assert (out / "keep.txt").read_text() == "mine"
    export_model(str(st_dir), out, force=True)
    assert (out / "model.onnx").is_file() and not (out / "keep.txt").exists()
    assert sorted(leftovers(tmp_path)) == ["out"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_output_directory(tiny_factory, tmp_path):
    st_dir, _ = tiny_factory(export=False, arch="bert", seed=6)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="not writable"):
            export_model(str(st_dir), ro / "out")
    finally:
        ro.chmod(0o700)


def test_output_under_a_file_is_refused(tiny_factory, tmp_path):
    st_dir, _ = tiny_factory(export=False, arch="bert", seed=6)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError):
        export_model(str(st_dir), tmp_path / "file" / "out")
    assert (tmp_path / "file").read_text() == "x"


def test_failed_verification_leaves_nothing(tiny_factory, tmp_path):
    st_dir, _ = tiny_factory(export=False, arch="bert", seed=7)
    out = tmp_path / "out"
    with pytest.raises(VerificationError, match="max abs"):
        export_model(str(st_dir), out, atol=0.0)  # fp32 rounding is ~1e-7, never exactly 0
    assert leftovers(tmp_path) == []


def test_failed_forced_export_keeps_the_old_directory(tiny_factory, tmp_path):
    st_dir, _ = tiny_factory(export=False, arch="bert", seed=8)
    out = tmp_path / "out"
    export_model(str(st_dir), out)
    before = (out / "embedrt.json").read_text()
    with pytest.raises(VerificationError):
        export_model(str(st_dir), out, force=True, atol=0.0)
    assert (out / "embedrt.json").read_text() == before
    assert sorted(leftovers(tmp_path)) == ["out"]
