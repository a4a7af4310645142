"""The Encoder with and without the native fused-pooling graph: same numbers (<= 1e-6), and every way the
fused graph can be unavailable or wrong is either a fallback ("auto") or a NativeOpsError (True)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from embedrt import Encoder, InputError, NativeOpsError
from embedrt.export.verify import probe_texts
from embedrt.manifest import read_manifest
from helpers import op_counts

# NOTE: the export's own probe set: empty and blank strings, texts past max_seq_length, unicode, literal
# special tokens, code
TEXTS = probe_texts()


@pytest.fixture(scope="module")
def tiny_sqrt_dense(tiny_factory):
    return tiny_factory(arch="mpnet", pooling="mean_sqrt_len_tokens", dense=True, normalize=False, seed=4)


def test_export_writes_a_fused_graph_and_keeps_model_onnx_standard(tiny_bert):
    _, export_dir = tiny_bert
    fp32 = json.loads((export_dir / "embedrt.json").read_text())["variants"]["fp32"]
    fused = fp32["native"]
    assert fused["file"] == "model.fused.onnx" and fused["probe"] == "model.fused.probe.npz"
    assert fused["mode"] == "mean" and fused["normalize"] is True
    standard, fused_ops = op_counts(export_dir / "model.onnx"), op_counts(export_dir / fused["file"])
    assert "MeanPoolNormalize" not in standard and standard["ReduceL2"] == 1
    # NOTE: the pooling chain (ReduceSum x2, Clip, Div) and the Normalize (ReduceL2, Clip, Expand, Div) went
    assert (
        fused_ops["MeanPoolNormalize"] == 1 and "ReduceSum" not in fused_ops and "ReduceL2" not in fused_ops
    )
    # the transformer part is traced the same way (eager attention): no op the standard graph lacks
    assert set(fused_ops) - {"MeanPoolNormalize"} <= set(standard)
    assert sum(fused_ops.values()) < sum(standard.values())
    with np.load(export_dir / fused["probe"]) as probe:
        assert {"input.input_ids", "input.attention_mask", "expected"} <= set(probe.files)
        assert probe["input.attention_mask"].min() == 0  # a padded batch


def test_fused_equals_standard(ops_library, tiny_bert):
    _, export_dir = tiny_bert
    fused = Encoder(export_dir, device="cpu")
    standard = Encoder(export_dir, device="cpu", native=False)
    assert fused.native is True and str(fused.graph_status).startswith("native:")
    assert standard.native is False
    a, b = fused.encode(TEXTS), standard.encode(TEXTS)
    assert np.abs(a - b).max() <= 1e-6
    # batch invariance holds on the fused graph too
    alone = np.stack([fused.encode(t) for t in TEXTS])
    assert np.abs(alone - a).max() <= 1e-6


@pytest.fixture
def packed_tile(monkeypatch):
    from embedrt.runtime import native

    monkeypatch.setenv("EMBEDRT_PACKED_MATMUL", "1")  # the AVX2 tile too, which is off by default
    off = native.packed_off()
    if off:
        pytest.skip(f"the packed graph runs on CPUs with an AVX-512 or AVX2+FMA tile only ({off})")


def test_export_writes_a_packed_graph(tiny_bert):
    _, export_dir = tiny_bert
    fused = json.loads((export_dir / "embedrt.json").read_text())["variants"]["fp32"]["native"]
    packed = fused["packed"]
    assert packed["file"] == "model.packed.onnx" and packed["op"] == "ai.embedrt::PackedMatMul"
    # 2 layers x (Q, K, V, attention output, FFN in, FFN out), every bias folded; Q, K, V and the context
    # written/read heads-first; the attention Reshapes' targets constant
    assert packed["linears"] == 12 and packed["folded_bias"] == 12 and packed["head_layouts"] == 8
    assert packed["constant_reshapes"] >= 8
    ops, std = op_counts(export_dir / packed["file"]), op_counts(export_dir / fused["file"])
    # each FFN's GELU (Div, Erf, Add, Mul, Mul) is its PackedMatMul's epilogue
    assert packed["gelu_epilogues"] == 2 and "Erf" not in ops and std["Erf"] == 2
    # each attention (MatMul(Q, K^T), Mul, Add, Softmax, MatMul(P, V)) is one Attention: no MatMul and no
    # Transpose left (the heads' [0,2,1,3] became Linear layouts, the keys' [0,1,3,2] the op's)
    assert packed["attentions"] == 2 and ops["Attention"] == 2 and std["Softmax"] == 2
    assert ops["PackedMatMul"] == 12 and "MatMul" not in ops and "Softmax" not in ops
    assert "Transpose" not in ops and std["Transpose"] == 8
    assert ops["Reshape"] < std["Reshape"] and ops["Shape"] < std["Shape"]
    assert sum(ops.values()) < sum(std.values())


def test_packed_graph_runs_and_equals_standard(ops_library, packed_tile, tiny_bert, monkeypatch):
    _, export_dir = tiny_bert
    packed = Encoder(export_dir, device="cpu")
    assert "model.packed.onnx" in str(packed.graph_status), str(packed.graph_status)
    standard = Encoder(export_dir, device="cpu", native=False)
    a, b = packed.encode(TEXTS), standard.encode(TEXTS)
    assert np.abs(a - b).max() <= 1e-6
    # batch invariance, bit for bit: every row's sums are the same whatever the batch
    np.testing.assert_array_equal(np.stack([packed.encode(t) for t in TEXTS]), a)
    monkeypatch.setenv("EMBEDRT_PACKED_MATMUL", "0")
    plain = Encoder(export_dir, device="cpu")
    assert "model.fused.onnx" in str(plain.graph_status), str(plain.graph_status)


def test_corrupted_packed_graph_falls_back_or_raises(ops_library, packed_tile, tiny_bert, tmp_path):
    _, export_dir = tiny_bert
    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    with open(copy / "model.packed.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    enc = Encoder(copy, device="cpu")
    assert enc.native is False and "sha256 mismatch" in str(enc.graph_status)
    with pytest.raises(NativeOpsError, match="sha256 mismatch"):
        Encoder(copy, device="cpu", native=True)


def test_packed_graph_is_best_effort(tiny_factory, tmp_path, monkeypatch):
    # a graph the rewrite cannot handle leaves the export whole, without model.packed.onnx
    from embedrt import export_model
    from embedrt.export import fuse

    def broken(*args, **kwargs):
        (args[0] / fuse.PACKED_FILE).write_bytes(b"half-written")
        raise ValueError("cannot rewrite this graph")

    monkeypatch.setattr(fuse, "write_packed", broken)
    st_dir, _ = tiny_factory(export=False, arch="bert", pooling="mean", normalize=True)
    logged: list[str] = []
    export_model(str(st_dir), tmp_path / "out", log=logged.append)
    fused = json.loads((tmp_path / "out" / "embedrt.json").read_text())["variants"]["fp32"]["native"]
    assert "packed" not in fused and not (tmp_path / "out" / fuse.PACKED_FILE).exists()
    assert any("model.packed.onnx skipped: ValueError: cannot rewrite this graph" in line for line in logged)
    from embedrt.runtime import native

    if native.library_path() is not None:
        enc = Encoder(tmp_path / "out", device="cpu")
        assert "model.fused.onnx" in str(enc.graph_status), str(enc.graph_status)


def test_fused_without_normalize_and_with_dense(ops_library, tiny_sqrt_dense):
    _, export_dir = tiny_sqrt_dense
    m = json.loads((export_dir / "embedrt.json").read_text())
    # NOTE: the Dense module after the pooling traces to a Gemm (2-D input) and stays onnxruntime's
    assert m["variants"]["fp32"]["native"]["packed"]["linears"] == 12
    assert m["variants"]["fp32"]["native"]["mode"] == "mean_sqrt_len"
    assert m["variants"]["fp32"]["native"]["normalize"] is False
    fused = Encoder(export_dir, device="cpu", native=True)
    a, b = fused.encode(TEXTS), Encoder(export_dir, device="cpu", native=False).encode(TEXTS)
    assert np.abs(a - b).max() <= 1e-6 * max(1.0, float(np.abs(b).max()))


def test_prompt_length_graph_is_fused_too(ops_library, tiny_factory):
    _, export_dir = tiny_factory(
        arch="bert",
        pooling="mean",
        normalize=True,
        include_prompt=False,
        prompts={"query": "query: "},
        seed=6,
    )
    fused = Encoder(export_dir, device="cpu", native=True)
    standard = Encoder(export_dir, device="cpu", native=False)
    a = fused.encode(TEXTS, prompt_name="query")
    assert np.abs(a - standard.encode(TEXTS, prompt_name="query")).max() <= 1e-6


def test_pooling_without_a_fused_op_gets_a_packed_graph(ops_library, tiny_factory, monkeypatch):
    st_dir, export_dir = tiny_factory(arch="bert", pooling="cls", normalize=True, seed=8)
    m = json.loads((export_dir / "embedrt.json").read_text())
    assert not (export_dir / "model.fused.onnx").exists()
    # no pooling op: model.onnx with packed Linears, its own probe, CPU only
    entry = m["variants"]["fp32"]["native"]
    assert entry["file"] == "model.packed.onnx" and entry["probe"] == "model.packed.probe.npz"
    assert entry["packed_only"] is True and entry["cpu_only"] is True and entry["linears"] == 12
    ops = op_counts(export_dir / entry["file"])
    assert ops["PackedMatMul"] == 12 and "MeanPoolNormalize" not in ops
    from embedrt.runtime import native

    standard = Encoder(export_dir, device="cpu", native=False)
    if native.packed_off() is None:
        enc = Encoder(export_dir, device="cpu")
        assert enc.native is True and "model.packed.onnx" in str(enc.graph_status)
        assert np.abs(enc.encode(TEXTS) - standard.encode(TEXTS)).max() <= 1e-6
    monkeypatch.setenv("EMBEDRT_PACKED_MATMUL", "0")
    enc = Encoder(export_dir, device="cpu")
    assert enc.native is False and "EMBEDRT_PACKED_MATMUL=0" in str(enc.graph_status)
    with pytest.raises(NativeOpsError, match="EMBEDRT_PACKED_MATMUL=0"):
        Encoder(export_dir, device="cpu", native=True)


def test_missing_library_falls_back_or_raises(tiny_bert, monkeypatch, tmp_path):
    _, export_dir = tiny_bert
    monkeypatch.setenv("EMBEDRT_OPS_LIBRARY", str(tmp_path / "nope.so"))
    enc = Encoder(export_dir, device="cpu")
    assert enc.native is False and "libembedrt_ops.so not found" in str(enc.graph_status)
    assert enc.encode(["hello"]).shape == (1, 32)
    with pytest.raises(NativeOpsError, match="build-ops"):
        Encoder(export_dir, device="cpu", native=True)


def test_probe_disagreement_falls_back_or_raises(ops_library, tiny_bert, tmp_path):
    _, export_dir = tiny_bert
    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    probe = copy / "model.fused.probe.npz"
    with np.load(probe) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["expected"] = arrays["expected"] + 1e-4
    np.savez(probe, **arrays)
    # NOTE: without the checksum check, so that the probe's numbers (not its sha256) are what is tested
    enc = Encoder(copy, device="cpu", verify_checksum=False)
    assert enc.native is False and "differs from the standard graph" in str(enc.graph_status)
    with pytest.raises(NativeOpsError, match="differs from the standard graph"):
        Encoder(copy, device="cpu", verify_checksum=False, native=True)
    with pytest.raises(NativeOpsError, match="sha256 mismatch"):
        Encoder(copy, device="cpu", native=True)


def test_native_argument_is_validated(tiny_bert):
    _, export_dir = tiny_bert
    with pytest.raises(InputError, match=r"unknown native 'yes'; valid choices: 'auto', True, False"):
        Encoder(export_dir, device="cpu", native="yes")
    with pytest.raises(InputError, match="valid choices"):
        Encoder(export_dir, device="cpu", fused_pooling=1)


def test_caller_session_options_are_left_alone_in_auto(ops_library, tiny_bert):
    import onnxruntime as ort

    _, export_dir = tiny_bert
    enc = Encoder(export_dir, device="cpu", session_options=ort.SessionOptions())
    assert enc.native is False and "session_options given" in str(enc.graph_status)
    assert Encoder(export_dir, device="cpu", session_options=ort.SessionOptions(), native=True).native


def test_fused_runtime_needs_no_torch_or_onnx(ops_library, tiny_bert):
    _, export_dir = tiny_bert
    code = f"""
import sys
for name in ["torch", "onnx", "transformers", "sentence_transformers", "optimum", "onnxscript"]:
    sys.modules[name] = None
from embedrt import Encoder
enc = Encoder({str(export_dir)!r}, device="cpu", native=True)
print(enc.encode(["hello world"]).shape, enc.native)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(1, 32) True" in out.stdout


@pytest.mark.slow
def test_minilm_fused_equals_standard(ops_library, minilm_export, shared_data):
    lines = (shared_data / "corpus-qnli.txt").read_text(encoding="utf-8").splitlines()[:256]
    texts = TEXTS + lines
    fused = Encoder(minilm_export, device="cpu")
    assert fused.native is True, str(fused.graph_status)
    a = fused.encode(texts, batch_size=32)
    b = Encoder(minilm_export, device="cpu", native=False).encode(texts, batch_size=32)
    assert np.abs(a - b).max() <= 1e-6


def test_tensorrt_auto_does_not_try_the_fused_graph(tiny_bert):
    from embedrt.runtime import native

    _, export_dir = tiny_bert
    entry = read_manifest(export_dir).variants["fp32"]
    fused, status = native.resolve("auto", export_dir, entry, True, tensorrt=True)
    assert fused is None and "TensorRT" in status
    if native.library_path() is not None:
        fused, status = native.resolve(True, export_dir, entry, True, tensorrt=True)
        assert fused is not None and status == "pending"


def test_cpu_only_library_is_not_served_on_a_gpu(cpu_only_library, ops_library, tiny_bert, monkeypatch):
    """A library built without nvcc registers MeanPoolNormalize for the CPU only: on a GPU session the runtime
    keeps the standard graph ("auto", with the reason) or refuses (True); on the CPU it still serves."""
    from embedrt.runtime import native

    _, export_dir = tiny_bert
    entry = read_manifest(export_dir).variants["fp32"]
    monkeypatch.setenv(native.LIBRARY_ENV, str(cpu_only_library))
    graph, status = native.resolve("auto", export_dir, entry, True, cpu=False)
    assert graph is None and "built without the CUDA kernel" in status
    with pytest.raises(NativeOpsError, match="built without the CUDA kernel"):
        native.resolve(True, export_dir, entry, True, cpu=False)
    graph, status = native.resolve("auto", export_dir, entry, True, cpu=True)
    assert graph is not None and status == "pending"
    if native.has_cuda_kernel(ops_library):  # NOTE: the installed library, built with nvcc here
        monkeypatch.setenv(native.LIBRARY_ENV, str(ops_library))
        graph, status = native.resolve("auto", export_dir, entry, True, cpu=False)
        assert graph is not None and status == "pending"
