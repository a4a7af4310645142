"""native.cpu_kernels(): which kernels the native ops choose on this CPU, as the library's cpuid sees it (or
/proc/cpuinfo without the library), EMBEDRT_OPS_ISA applied; reported by the Encoder, the bench and
`embedrt info`."""

from __future__ import annotations

import json
import subprocess
import sys

from embedrt.runtime import native


def test_the_library_reports_the_cpus_isa_and_the_chosen_one(ops_library, monkeypatch):
    monkeypatch.delenv("EMBEDRT_OPS_ISA", raising=False)
    k = native.cpu_kernels()
    assert k["source"] == "cpuid" and k["isa"] == k["cpu_isa"] and k["isa"] in native.ISAS
    # the ISA follows from the features cpuid reported
    expected = (
        "avx512"
        if "avx512f" in k["features"]
        else "avx2"
        if {"avx2", "fma", "f16c"} <= set(k["features"])
        else "scalar"
    )
    assert k["cpu_isa"] == expected, k
    # the packed graph by default on AVX-512 only; EMBEDRT_PACKED_MATMUL=1 asks for the AVX2 tile too
    assert (k["packed_matmul"] == f"{k['isa']} tile") == (k["isa"] == "avx512"), k
    if k["isa"] == "avx2":
        assert "slower than onnxruntime" in k["packed_matmul"] and native.packed_off() is not None
    # the packed int8 graph by default on AVX2 without AVX-512 or AVX-VNNI only (onnxruntime's VNNI and
    # AVX-512BW kernels are wider)
    plain_avx2 = k["isa"] == "avx2" and "avx_vnni" not in k["features"]
    assert (k["packed_int8_gemm"] == "avx2 tile") == plain_avx2, k
    assert (native.int8_packed_off() is None) == plain_avx2
    monkeypatch.setenv("EMBEDRT_PACKED_MATMUL", "0")
    assert native.cpu_kernels()["packed_int8_gemm"].startswith("off") and native.int8_packed_off() is not None
    monkeypatch.setenv("EMBEDRT_PACKED_MATMUL", "1")
    assert (native.cpu_kernels()["packed_matmul"] == f"{k['isa']} tile") == (k["isa"] != "scalar")
    # asked for, the AVX2 tile runs on every CPU with AVX2, AVX-VNNI ones included (the A/B switch)
    assert (native.cpu_kernels()["packed_int8_gemm"] == "avx2 tile") == (k["isa"] != "scalar")
    monkeypatch.setenv("EMBEDRT_OPS_ISA", "avx2")
    assert native.cpu_kernels()["packed_matmul"] == "avx2 tile" or k["cpu_isa"] == "scalar"
    monkeypatch.delenv("EMBEDRT_PACKED_MATMUL")
    assert native.cpu_kernels()["packed_matmul"].startswith("off")
    for lower in native.ISAS[: native.ISAS.index(k["cpu_isa"]) + 1]:
        monkeypatch.setenv("EMBEDRT_OPS_ISA", lower)
        got = native.cpu_kernels()
        assert got["isa"] == lower and got["cpu_isa"] == k["cpu_isa"], got
    monkeypatch.setenv("EMBEDRT_OPS_ISA", "scalar")
    assert native.cpu_kernels()["packed_matmul"].startswith("off") and native.packed_off() is not None
    assert native.cpu_kernels()["packed_int8_gemm"].startswith("off") and native.int8_packed_off() is not None
    monkeypatch.setenv("EMBEDRT_OPS_ISA", "avx512")  # never above what the CPU has
    assert native.cpu_kernels()["isa"] == k["cpu_isa"]


def test_without_the_library_it_reads_proc_cpuinfo(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBEDRT_OPS_LIBRARY", str(tmp_path / "nope.so"))
    monkeypatch.setenv("EMBEDRT_OPS_ISA", "scalar")
    k = native.cpu_kernels()
    assert k["source"] == "/proc/cpuinfo" and k["isa"] == "scalar" and k["cpu_isa"] in native.ISAS


def test_encoder_status_and_embedrt_info_say_which_kernels(ops_library, tiny_factory, monkeypatch):
    from embedrt import Encoder

    monkeypatch.delenv("EMBEDRT_OPS_ISA", raising=False)
    _, export_dir = tiny_factory(arch="bert", pooling="mean", normalize=True)
    enc = Encoder(export_dir, device="cpu")
    isa = native.cpu_kernels()["isa"]
    assert enc.native is True and str(enc.graph_status).endswith(f", {isa} kernels")
    out = subprocess.run(
        [sys.executable, "-m", "embedrt.cli", "info", str(export_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = json.loads(out)
    assert info["this_machine"]["cpu_kernels"]["isa"] == isa and "variants" in info
