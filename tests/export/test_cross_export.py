"""Cross-encoder export: task detection, graph structure, manifest, verification that can fail, errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from embedrt import ArtifactError, CrossEncoder, Encoder, InputError, export_model
from embedrt.errors import UnsupportedModelError, VerificationError
from embedrt.export.tasks import detect_task
from embedrt.manifest import MANIFEST_NAME, sha256_file
from embedrt.modes import Task
from helpers import dims, leftovers

MODELS = [("bert", 1), ("bert", 3), ("roberta", 1), ("roberta", 3)]


@pytest.mark.parametrize("arch,num_labels", MODELS)
def test_graph_io_names_dtypes_and_dynamic_axes(cross_factory, arch, num_labels):
    _, export_dir = cross_factory(arch=arch, num_labels=num_labels)
    model = onnx.load(str(export_dir / "model.onnx"))
    onnx.checker.check_model(model)
    inputs = {i.name: i for i in model.graph.input}
    # NOTE: segment ids only where the reference tokenizer produces them (BERT), not for RoBERTa
    expected = ["input_ids", "attention_mask"] + (["token_type_ids"] if arch == "bert" else [])
    assert list(inputs) == expected
    for vi in inputs.values():
        assert vi.type.tensor_type.elem_type == TensorProto.INT64
        shape = dims(vi)
        assert len(shape) == 2 and all(isinstance(d, str) for d in shape), shape
    outputs = {o.name: o for o in model.graph.output}
    assert list(outputs) == ["scores", "logits"]
    for vi in outputs.values():
        assert vi.type.tensor_type.elem_type == TensorProto.FLOAT
    scores, logits = dims(outputs["scores"]), dims(outputs["logits"])
    assert scores == (["batch"] if num_labels == 1 else ["batch", num_labels])
    assert logits == ["batch", num_labels]
    domains = {n.domain for n in model.graph.node}
    assert domains <= {"", "ai.onnx"}, domains  # portable: standard ops only
    ops = {n.op_type for n in model.graph.node}
    if num_labels == 1:
        assert "Sigmoid" in ops  # the default activation is inside the graph


@pytest.mark.parametrize("arch,num_labels", MODELS)
def test_graph_runs_any_batch_and_length(cross_factory, arch, num_labels):
    _, export_dir = cross_factory(arch=arch, num_labels=num_labels)
    sess = ort.InferenceSession(str(export_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    for b, t in [(1, 1), (3, 7), (5, 24)]:
        feed = {n: np.full((b, t), 0 if n == "token_type_ids" else 5, dtype=np.int64) for n in names}
        feed["attention_mask"] = np.ones((b, t), dtype=np.int64)
        scores, logits = sess.run(["scores", "logits"], feed)
        assert scores.shape == ((b,) if num_labels == 1 else (b, num_labels))
        assert logits.shape == (b, num_labels) and logits.dtype == np.float32
        if num_labels == 1:
            np.testing.assert_allclose(scores, 1 / (1 + np.exp(-logits[:, 0])), rtol=0, atol=1e-6)
        else:
            np.testing.assert_array_equal(scores, logits)  # Identity for more than one label


@pytest.mark.parametrize("arch,num_labels", MODELS)
def test_manifest(cross_factory, arch, num_labels):
    model_dir, export_dir = cross_factory(arch=arch, num_labels=num_labels)
    m = json.loads((export_dir / MANIFEST_NAME).read_text())
    assert m["task"] == "cross-encoder"
    assert m["num_labels"] == num_labels and len(m["labels"]) == num_labels
    assert m["activation"] == ("sigmoid" if num_labels == 1 else "identity")
    assert m["activation_fn"].endswith("Sigmoid" if num_labels == 1 else "Identity")
    assert m["max_seq_length"] == 24 and m["max_seq_length_source"] == "tokenizer_config.json"
    assert m["architecture"] == arch
    assert m["outputs"]["logits"] == ["batch", num_labels]
    fp32 = m["variants"]["fp32"]
    assert fp32["sha256"] == sha256_file(export_dir / "model.onnx")
    v = fp32["verification"]
    assert v["n_pairs"] >= 30
    for key in ("max_abs_diff", "single_max_abs_diff", "logits_max_abs_diff", "single_vs_batch_max_abs_diff"):
        assert 0 <= v[key] <= 1e-5, (key, v)
    assert m["source"]["weights_sha256"]["model.safetensors"] == sha256_file(model_dir / "model.safetensors")


def test_task_detection(cross_factory, tiny_factory):
    st_saved, _ = cross_factory(export=False, arch="bert", num_labels=1)
    hf_saved, _ = cross_factory(export=False, arch="bert", num_labels=1, save_as="hf")
    bi_encoder, _ = tiny_factory(export=False, arch="bert", pooling="mean")
    assert not (hf_saved / "modules.json").exists()
    assert detect_task(st_saved) is Task.CROSS_ENCODER  # config_sentence_transformers.json model_type
    assert detect_task(hf_saved) is Task.CROSS_ENCODER  # bare *ForSequenceClassification checkpoint
    assert detect_task(bi_encoder) is Task.EMBEDDING
    assert detect_task(bi_encoder.parent / f"{bi_encoder.name}-hf") is Task.EMBEDDING  # bare BertModel


def test_bare_hf_checkpoint_is_autodetected_and_exported(cross_factory, tmp_path):
    from sentence_transformers import CrossEncoder as Reference

    hf_saved, _ = cross_factory(export=False, arch="bert", num_labels=1, save_as="hf")
    m = export_model(str(hf_saved), tmp_path / "out")  # no task given
    assert m["task"] == "cross-encoder"
    pairs = [("who wrote it?", "the author wrote it"), ("", "")]
    ref = Reference(str(hf_saved), device="cpu").predict([list(p) for p in pairs])
    np.testing.assert_allclose(CrossEncoder(tmp_path / "out", device="cpu").predict(pairs), ref, atol=1e-5)


def test_activation_from_the_model_config(cross_factory):
    import torch
    from sentence_transformers import CrossEncoder as Reference

    model_dir, export_dir = cross_factory(arch="bert", num_labels=1, activation_fn=torch.nn.Tanh())
    assert Reference(str(model_dir), device="cpu").activation_fn.__class__.__name__ == "Tanh"
    m = json.loads((export_dir / MANIFEST_NAME).read_text())
    assert m["activation"] == "tanh"
    ops = {n.op_type for n in onnx.load(str(export_dir / "model.onnx")).graph.node}
    assert "Tanh" in ops and "Sigmoid" not in ops


def test_unsupported_activation_is_refused_with_choices(cross_factory, tmp_path):
    import torch

    model_dir, _ = cross_factory(export=False, arch="bert", num_labels=1, activation_fn=torch.nn.GELU())
    with pytest.raises(UnsupportedModelError, match=r"GELU is not supported; supported: torch\.nn\.Identity"):
        export_model(str(model_dir), tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_bi_encoder_forced_as_cross_encoder_is_refused(tiny_factory, tmp_path):
    st_dir, _ = tiny_factory(export=False, arch="bert", pooling="mean")
    with pytest.raises(UnsupportedModelError, match="not a cross-encoder: it is a SentenceTransformer"):
        export_model(str(st_dir), tmp_path / "out", task="cross-encoder")
    with pytest.raises(
        UnsupportedModelError, match="architecture BertModel has no sequence-classification head"
    ):
        export_model(str(st_dir.parent / f"{st_dir.name}-hf"), tmp_path / "out", task="cross-encoder")
    assert leftovers(tmp_path) == []


def test_unknown_task_and_unsupported_options(tiny_cross, tmp_path):
    model_dir, _ = tiny_cross
    with pytest.raises(InputError, match="valid choices: 'embedding', 'cross-encoder'"):
        export_model(str(model_dir), tmp_path / "out", task="reranker")
    with pytest.raises(InputError, match=r"valid choices: \['fp32'\]"):
        export_model(str(model_dir), tmp_path / "out", variants=["fp32", "int8"])
    with pytest.raises(InputError, match="embedding exports only"):
        export_model(str(model_dir), tmp_path / "out", optimize=True)
    assert leftovers(tmp_path) == []


def test_runtimes_refuse_the_other_task(tiny_cross, tiny_bert):
    _, cross_export = tiny_cross
    _, bi_export = tiny_bert
    with pytest.raises(ArtifactError, match="task 'cross-encoder', not an embedding model.*CrossEncoder"):
        Encoder(cross_export, device="cpu")
    with pytest.raises(ArtifactError, match="task 'embedding', not a cross-encoder"):
        CrossEncoder(bi_export, device="cpu")


# ---------------------------------------------------------------- verification can fail


def test_verification_catches_a_wrong_head(tiny_cross, tmp_path, monkeypatch):
    """A graph whose scores drift by 1e-3 must be refused, and nothing written."""
    from embedrt.export import cross

    model_dir, _ = tiny_cross
    original = cross.build_cross_graph

    def shifted(ce, spec):
        graph = original(ce, spec)
        forward = graph.forward

        def wrong(*args, **kwargs):
            scores, logits = forward(*args, **kwargs)
            return scores + 1e-3, logits

        graph.forward = wrong
        return graph

    monkeypatch.setattr(cross, "build_cross_graph", shifted)
    with pytest.raises(VerificationError, match=r"max abs 1\.0\d*e-03 > atol 1e-05.*nothing was written"):
        export_model(str(model_dir), tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_verification_catches_wrong_pair_tokenization(tiny_cross, tmp_path, monkeypatch):
    """Swapping the two texts of every pair (a plausible bug) changes the scores and must be refused."""
    from embedrt.runtime.cross_encoder import PairTokenizer

    model_dir, _ = tiny_cross
    original = PairTokenizer.encode_pairs
    monkeypatch.setattr(
        PairTokenizer, "encode_pairs", lambda self, pairs: original(self, [(b, a) for a, b in pairs])
    )
    with pytest.raises(VerificationError, match="worst pair"):
        export_model(str(model_dir), tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_verification_catches_a_wrong_runtime_activation(tiny_cross, tmp_path, monkeypatch):
    """The logits output is verified too: a numpy activation table that is off breaks the logits check."""
    from embedrt.modes import Activation
    from embedrt.runtime import cross_encoder

    model_dir, _ = tiny_cross
    monkeypatch.setitem(cross_encoder.ACTIVATIONS, Activation.IDENTITY, lambda x: x * 1.01)
    with pytest.raises(VerificationError):
        export_model(str(model_dir), tmp_path / "out")
