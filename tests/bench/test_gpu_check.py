"""benchmarks/gpu_check.py --dry-run: every tier's CPU side runs and every GPU part says "not run: no GPU"."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_writes_the_report_and_marks_gpu_tiers(gpu_check, tmp_path):
    pytest.importorskip("sentence_transformers")
    out = tmp_path / "report"
    rc = gpu_check.main(["--dry-run", "--tiny", "--no-compile", "--rounds", "1", "--out", str(out)])
    report = json.loads((out / "gpu_check.json").read_text())
    md = (out / "gpu_check.md").read_text()
    tiers = report["tiers"]
    assert rc == 0, {k: t["status"] for k, t in tiers.items()}
    assert list(tiers) == list("ABCDE") and report["dry_run"] is True
    for name, tier in tiers.items():
        assert tier["status"] == gpu_check.NO_GPU, (name, tier)
        assert f"| {name} | {gpu_check.NO_GPU} |" in md
    # the CPU side of each tier ran and holds
    b = tiers["B"]["cpu_parts"]
    assert b["threads_cpu"]["ok"] and b["io_binding_vs_run_cpu"]["same_numbers"]
    assert b["placement_cpu"]["nodes_per_provider"]["CPUExecutionProvider"] > 10
    c = tiers["C"]
    assert c["cosine"]["min"] >= 0.999 and c["fp16_scheme"]["fused_operators"]["Attention"] == 2
    assert tiers["D"]["cpu_parts"]["fp32_min_cosine_cpu"] >= 0.9999
    assert tiers["E"]["cpu_parts"]["provider_options"]["trt_profile_max_shapes"].startswith("input_ids:64x")
    assert tiers["A"]["compile"] == "not run: --no-compile"


def test_a_failing_tier_is_reported_and_does_not_stop_the_others(gpu_check, tmp_path, monkeypatch):
    def boom(ctx):
        raise RuntimeError("broken on purpose")

    monkeypatch.setitem(gpu_check.TIERS, "C", boom)
    monkeypatch.setitem(gpu_check.TIERS, "B", lambda ctx: {"status": gpu_check.NO_GPU})
    rc = gpu_check.main(["--dry-run", "--tiny", "--tiers", "BCE", "--out", str(tmp_path)])
    tiers = json.loads((tmp_path / "gpu_check.json").read_text())["tiers"]
    assert rc == 1 and tiers["C"]["status"] == "failed: RuntimeError: broken on purpose"
    assert tiers["B"]["status"] == tiers["E"]["status"] == gpu_check.NO_GPU


def test_unknown_tier_is_refused(gpu_check, tmp_path):
    with pytest.raises(SystemExit):
        gpu_check.main(["--tiers", "AZ", "--out", str(tmp_path)])


def test_stage_split_and_join_round_trip(tmp_path):
    spec = importlib.util.spec_from_file_location("stage", ROOT / "benchmarks" / "gpu" / "stage.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    src = tmp_path / "wheel.whl"
    src.write_bytes(bytes(range(256)) * 41)  # 10,496 bytes -> 3 parts of 4 KiB
    d = tmp_path / "stage"
    carried = stage.split([src], d, part_bytes=4096)
    assert [p.name for p in carried] == ["wheel.whl.json"] + [f"wheel.whl.part{i:02d}" for i in range(3)]
    (d / "wheel.whl.part02").unlink()
    assert stage.join(d) == {"wheel.whl": "waiting for wheel.whl.part02"}
    stage.split([src], d, part_bytes=4096)
    part = d / "wheel.whl.part01"
    part.write_bytes(b"x" + part.read_bytes()[1:])
    assert stage.join(d) == {"wheel.whl": "corrupted parts: wheel.whl.part01"}
    stage.split([src], d, part_bytes=4096)
    assert stage.join(d) == {"wheel.whl": "ok"} and (d / "wheel.whl").read_bytes() == src.read_bytes()
    assert not list(d.glob("*.part*"))  # parts removed once joined


def test_tier_b_collects_every_gpu_test_file(gpu_check):
    marker = "@pytest.mark." + "gpu\n"  # NOTE: split, so that this file does not match itself
    marked = {str(p) for p in (ROOT / "tests").rglob("test_*.py") if marker in p.read_text()}
    assert marked == set(gpu_check.GPU_TEST_FILES)
