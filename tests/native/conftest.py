"""Fixtures of the native-op tests. Without the built library they skip, unless EMBEDRT_REQUIRE_OPS=1 (CI),
which turns a missing library into a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ops_library() -> Path:
    from embedrt.runtime.native import library_path

    path = library_path()
    if path is None:
        msg = "libembedrt_ops.so is not built (pip install -e . with a C++ compiler, or embedrt build-ops)"
        if os.environ.get("EMBEDRT_REQUIRE_OPS") == "1":
            pytest.fail(msg + "; EMBEDRT_REQUIRE_OPS=1 makes this a failure")
        pytest.skip(msg)
    return path


@pytest.fixture(params=("scalar", "avx2", "avx512"))
def isa(request, monkeypatch):
    # NOTE: the kernels read EMBEDRT_OPS_ISA when a session creates them; never above the CPU's ISA, so a
    # path this CPU lacks would silently test a lower one: skip it instead.
    from embedrt.runtime.native import ISAS, cpu_kernels

    monkeypatch.delenv("EMBEDRT_OPS_ISA", raising=False)
    kernels = cpu_kernels()
    if ISAS.index(request.param) > ISAS.index(kernels["cpu_isa"]):
        pytest.skip(
            f"this CPU ({kernels['machine']}, best kernel ISA {kernels['cpu_isa']}) has no {request.param}"
        )
    monkeypatch.setenv("EMBEDRT_OPS_ISA", request.param)
    return request.param


@pytest.fixture(scope="session")
def cpu_only_library(tmp_path_factory) -> Path:
    """The op library built here with ``--cuda off`` (what pip builds on a host without nvcc)."""
    from embedrt.native_build import build_ops

    out = tmp_path_factory.mktemp("cpu-only-ops")
    return build_ops(build_dir=out / "build", output=out / "lib", cuda="off", jobs=2, log=None)
