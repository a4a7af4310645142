"""Structure of the graph and the artifact, apart from its numbers."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto

from embedrt.manifest import FORMAT_VERSION, MANIFEST_NAME, sha256_file
from helpers import dims


def test_graph_io_names_dtypes_and_dynamic_axes(tiny_bert):
    _, export_dir = tiny_bert
    model = onnx.load(str(export_dir / "model.onnx"))
    inputs = {i.name: i for i in model.graph.input}
    assert list(inputs) == ["input_ids", "attention_mask"]
    for vi in inputs.values():
        assert vi.type.tensor_type.elem_type == TensorProto.INT64
        shape = dims(vi)
        assert len(shape) == 2 and all(isinstance(d, str) for d in shape), shape  # batch, sequence dynamic
    assert [o.name for o in model.graph.output] == ["sentence_embedding"]
    out = model.graph.output[0]
    assert out.type.tensor_type.elem_type == TensorProto.FLOAT
    shape = dims(out)
    assert isinstance(shape[0], str) and shape[1] == 32


def test_graph_holds_pooling_and_normalize_and_only_standard_ops(tiny_bert):
    _, export_dir = tiny_bert
    model = onnx.load(str(export_dir / "model.onnx"))
    ops = {n.op_type for n in model.graph.node}
    domains = {n.domain for n in model.graph.node}
    assert domains <= {"", "ai.onnx"}, domains  # portable: any ONNX runtime can serve it
    assert {"ReduceSum", "Div"} <= ops  # mean pooling
    assert "ReduceL2" in ops or "LpNormalization" in ops  # Normalize
    onnx.checker.check_model(model)


def test_graph_runs_any_batch_and_length(tiny_bert):
    _, export_dir = tiny_bert
    sess = ort.InferenceSession(str(export_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    for b, t in [(1, 1), (3, 7), (5, 24)]:
        ids = np.full((b, t), 5, dtype=np.int64)
        out = sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        assert len(out) == 1 and out[0].shape == (b, 32) and out[0].dtype == np.float32


def test_manifest_fields(tiny_bert):
    st_dir, export_dir = tiny_bert
    m = json.loads((export_dir / MANIFEST_NAME).read_text())
    assert m["format_version"] == FORMAT_VERSION
    # sentence-transformers >= 5 saves max_seq_length as tokenizer_config.json's model_max_length
    assert m["max_seq_length"] == 24 and m["max_seq_length_source"] == "tokenizer_config.json"
    assert m["pooling"] == {"modes": ["mean"], "include_prompt": True}
    assert m["normalize"] is True and m["dim"] == 32
    assert m["inputs"] == ["input_ids", "attention_mask"] and m["output"] == "sentence_embedding"
    assert m["source"]["weights_sha256"]["model.safetensors"] == sha256_file(st_dir / "model.safetensors")
    fp32 = m["variants"]["fp32"]
    assert fp32["sha256"] == sha256_file(export_dir / fp32["file"])
    v = fp32["verification"]
    assert 0 <= v["max_abs_diff"] <= 1e-5 and v["min_cosine"] > 0.99999 and v["n_texts"] >= 20
    assert {"torch", "onnxruntime", "sentence-transformers"} <= set(m["versions"])
    assert set(m["export_timings_s"]) == {"resolve", "load", "trace", "verify", "fuse"}


def test_tokenizer_has_no_baked_truncation_or_padding(tiny_bert):
    _, export_dir = tiny_bert
    tok = json.loads((export_dir / "tokenizer.json").read_text())
    assert tok["truncation"] is None and tok["padding"] is None
    assert not list(export_dir.glob(".*tmp*"))
    assert sorted(p.name for p in export_dir.iterdir()) == [
        "embedrt.json",
        "model.fused.onnx",
        "model.fused.probe.npz",
        "model.onnx",
        "model.packed.onnx",
        "tokenizer.json",
    ]


def test_optimize_fuses_and_stays_exact(tiny_factory, tmp_path):
    from sentence_transformers import SentenceTransformer

    from embedrt import Encoder, export_model

    st_dir, _ = tiny_factory(export=False, arch="bert", seed=21)
    m = export_model(str(st_dir), tmp_path / "o", optimize=True)
    opt = m["variants"]["fp32"]["optimization"]
    assert opt["kept"] is True and opt["fused_operators"].get("SkipLayerNormalization", 0) > 0
    ops = {n.op_type for n in onnx.load(str(tmp_path / "o" / "model.onnx")).graph.node}
    assert "SkipLayerNormalization" in ops and "FastGelu" not in ops
    texts = ["hello world", "", "the model " * 20]
    ref = SentenceTransformer(str(st_dir), device="cpu").encode(texts)
    assert np.abs(Encoder(tmp_path / "o", device="cpu").encode(texts) - ref).max() <= 1e-5
    assert not (tmp_path / "o" / "model.plain.onnx").exists()
