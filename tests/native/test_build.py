"""Packaging: the pure-Python fallbacks of `pip install .`, and `embedrt build-ops`."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from embedrt import InputError, NativeOpsError
from embedrt.native_build import build_ops, find_source

ROOT = Path(__file__).resolve().parents[2]


def _wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(tmp_path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (wheel,) = tmp_path.glob("embedrt-*.whl")
    return wheel


def _has_library(wheel: Path) -> bool:
    return any(n.endswith("libembedrt_ops.so") for n in zipfile.ZipFile(wheel).namelist())


@pytest.mark.slow
def test_skip_native_builds_a_pure_python_wheel(tmp_path):
    wheel = _wheel(tmp_path, {"EMBEDRT_SKIP_NATIVE": "1"})
    assert wheel.name.endswith("py3-none-any.whl") and not _has_library(wheel)


@pytest.mark.slow
def test_no_compiler_still_installs_pure_python(tmp_path):
    # NOTE: CXX/CUDACXX pointing nowhere is what a machine without compilers looks like to CMake.
    wheel = _wheel(
        tmp_path, {"CXX": "/nonexistent/c++", "CUDACXX": "/nonexistent/nvcc", "EMBEDRT_REQUIRE_NATIVE": "0"}
    )
    assert not _has_library(wheel)
    assert any(n.endswith("embedrt/runtime/encoder.py") for n in zipfile.ZipFile(wheel).namelist())


def test_build_ops_validates_its_arguments(tmp_path):
    with pytest.raises(InputError, match="valid choices: auto, on, off"):
        build_ops(cuda="maybe", log=None)
    with pytest.raises(NativeOpsError, match="--source"):
        build_ops(source=tmp_path, log=None)
    assert find_source() == ROOT


def test_build_ops_builds_and_installs(cpu_only_library):
    from embedrt.runtime.native import build_info, has_cuda_kernel

    lib = cpu_only_library
    assert lib.name == "libembedrt_ops.so" and lib.parent.name == "lib" and lib.stat().st_size > 0
    # NOTE: the library says how it was built; the runtime reads it before serving the fused graph on a GPU
    assert build_info(lib) == {"cuda": "0", "ort_api": "21"} and not has_cuda_kernel(lib)


def test_build_ops_cli_rejects_bad_choice(capsys):
    from embedrt.cli import main

    with pytest.raises(SystemExit):
        main(["build-ops", "--cuda", "maybe"])
    assert "invalid choice" in capsys.readouterr().err
