"""Numbers: every architecture x every pooling mode x Dense/Normalize against SentenceTransformer.encode."""

from __future__ import annotations

import numpy as np
import pytest

from embedrt import Encoder
from embedrt.export.verify import probe_texts
from tiny_models import ARCHS, POOLING_MODES

ATOL = 1e-5
TEXTS = probe_texts() + ["the model is a vector", "who wrote the theory of relativity?", "hello " * 30]

# Each (arch, pooling) pair once; Dense/Normalize cycle so that every pooling mode and every architecture
# meets all four post-module combinations.
POST = [(False, False), (True, False), (False, True), (True, True)]
MATRIX = [
    (arch, mode, *POST[(i + j) % 4]) for i, arch in enumerate(ARCHS) for j, mode in enumerate(POOLING_MODES)
]


def _reference(st_dir, texts, **kwargs):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(st_dir), device="cpu").encode(texts, **kwargs)


def _packed_expected() -> bool:
    """Whether Encoder's default CPU graph here is model.packed.onnx (PackedMatMul): built library and an
    AVX-512 or AVX2+FMA tile (from the fused-pooling graph, or from model.onnx for poolings without a fused
    op)."""
    from embedrt.runtime import native

    return native.library_path() is not None and native.packed_off() is None


def _worst(a, b):
    diff = np.abs(np.asarray(a) - np.asarray(b))
    return float(diff.max()), int(diff.max(axis=-1).argmax()) if diff.ndim == 2 else -1


@pytest.mark.parametrize(
    "arch,pooling,dense,normalize",
    MATRIX,
    ids=[f"{a}-{p}-{'dense' if d else 'nodense'}-{'norm' if n else 'nonorm'}" for a, p, d, n in MATRIX],
)
def test_matches_sentence_transformers(tiny_factory, arch, pooling, dense, normalize):
    st_dir, export_dir = tiny_factory(arch=arch, pooling=pooling, dense=dense, normalize=normalize)
    ref = _reference(st_dir, TEXTS, batch_size=8)
    enc = Encoder(export_dir, device="cpu")
    # NOTE: the graph users get on this machine is the one held to 1e-5 here
    assert ("model.packed.onnx" in str(enc.graph_status)) == _packed_expected(), str(enc.graph_status)
    ours = enc.encode(TEXTS, batch_size=8)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    worst, row = _worst(ours, ref)
    assert worst <= ATOL, f"max abs diff {worst:.2e} on {TEXTS[row]!r}"
    # the whole set as one mixed-length batch, and one text at a time
    assert _worst(enc.encode(TEXTS, batch_size=len(TEXTS)), ref)[0] <= ATOL
    assert _worst(np.stack([enc.encode(t) for t in TEXTS]), ref)[0] <= ATOL


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_multiple_pooling_modes_concatenate(tiny_factory, arch):
    st_dir, export_dir = tiny_factory(arch=arch, pooling=("cls", "mean", "max"), dense=True)
    ref = _reference(st_dir, TEXTS)
    ours = Encoder(export_dir, device="cpu").encode(TEXTS)
    assert ours.shape == ref.shape == (len(TEXTS), 16)
    assert _worst(ours, ref)[0] <= ATOL


@pytest.mark.parametrize("pooling", ["mean", "weightedmean", "cls", "lasttoken"])
def test_prompts_excluded_from_pooling(tiny_factory, pooling):
    prompts = {"query": "query: search for this ", "document": "passage: "}
    st_dir, export_dir = tiny_factory(arch="bert", pooling=pooling, prompts=prompts, include_prompt=False)
    enc = Encoder(export_dir, device="cpu")
    assert "prompt_length" in enc.input_names
    for name in prompts:
        ref = _reference(st_dir, TEXTS, prompt_name=name)
        assert _worst(enc.encode(TEXTS, prompt_name=name), ref)[0] <= ATOL, name
    ref = _reference(st_dir, TEXTS, prompt="custom prompt: ")
    assert _worst(enc.encode(TEXTS, prompt="custom prompt: "), ref)[0] <= ATOL
    ref = _reference(st_dir, TEXTS)
    assert _worst(enc.encode(TEXTS), ref)[0] <= ATOL


def test_default_prompt_name_is_applied(tiny_factory):
    prompts = {"query": "query: ", "document": ""}
    st_dir, export_dir = tiny_factory(arch="bert", prompts=prompts, default_prompt_name="query")
    enc = Encoder(export_dir, device="cpu")
    assert enc.default_prompt_name == "query"
    assert _worst(enc.encode(TEXTS), _reference(st_dir, TEXTS))[0] <= ATOL
    plain = _reference(st_dir, TEXTS, prompt="")
    assert _worst(enc.encode(TEXTS, prompt=""), plain)[0] <= ATOL
    # the prompt must actually change the vectors, or this test proves nothing
    assert np.abs(enc.encode(TEXTS) - plain).max() > 1e-3


def test_plain_hf_model_gets_mean_pooling_with_a_warning(tmp_path):
    from sentence_transformers import SentenceTransformer

    from embedrt import export_model
    from tiny_models import build_tiny_st

    st_dir = build_tiny_st(tmp_path / "st", arch="bert")
    hf_dir = tmp_path / "st-hf"  # the bare Hugging Face model the ST model was built from
    with pytest.warns(UserWarning, match="mean pooling"):
        manifest = export_model(str(hf_dir), tmp_path / "out")
    assert manifest["pooling"]["modes"] == ["mean"]
    ref = SentenceTransformer(str(hf_dir), device="cpu").encode(TEXTS)
    assert _worst(Encoder(tmp_path / "out", device="cpu").encode(TEXTS), ref)[0] <= ATOL
    assert st_dir.exists()
