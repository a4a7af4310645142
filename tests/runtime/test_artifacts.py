"""Loading an export directory: missing, corrupted or incompatible files give typed errors naming them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from embedrt import ArtifactError, Encoder


@pytest.fixture()
def copy(tiny_bert, tmp_path):
    _, export_dir = tiny_bert
    dst = tmp_path / "export"
    shutil.copytree(export_dir, dst)
    return dst


def test_missing_directory(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        Encoder(tmp_path / "nope", device="cpu")


def test_missing_manifest(copy):
    (copy / "embedrt.json").unlink()
    with pytest.raises(ArtifactError, match="embedrt.json is missing"):
        Encoder(copy, device="cpu")


DEEP = "[" * 5_000 + "]" * 5_000  # deeper than json's recursion limit


@pytest.mark.parametrize("text", ["{not json", DEEP, '{"a": ' + DEEP + "}"])
def test_corrupted_manifest(copy, text):
    (copy / "embedrt.json").write_text(text)
    with pytest.raises(ArtifactError, match="embedrt.json is corrupted"):
        Encoder(copy, device="cpu")


def test_incompatible_manifest_version(copy):
    m = json.loads((copy / "embedrt.json").read_text())
    m["format_version"] = 99
    (copy / "embedrt.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="format_version 99"):
        Encoder(copy, device="cpu")


def test_missing_graph(copy):
    (copy / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match="model.onnx"):
        Encoder(copy, device="cpu")


def test_sha256_mismatch_names_the_file(copy):
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"sha256 mismatch for .*model.onnx"):
        Encoder(copy, device="cpu", native=False)
    # NOTE: each graph's sha256 is checked when that graph is loaded: with the native library, "auto" serves
    # the (intact, checked) native graph and never reads model.onnx; without it, model.onnx is refused
    from embedrt.runtime import native

    if native.library_path() is None:
        with pytest.raises(ArtifactError, match=r"sha256 mismatch for .*model.onnx"):
            Encoder(copy, device="cpu")
    else:
        enc = Encoder(copy, device="cpu")
        assert enc.native is True and "model.onnx" not in str(enc.graph_status).split(", ")[1]


def test_corrupted_graph_without_checksum_is_still_typed(copy):
    (copy / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="could not load"):
        # NOTE: native=False: with the native library built, "auto" serves model.fused.onnx instead
        Encoder(copy, device="cpu", verify_checksum=False, native=False)


def test_missing_and_corrupted_tokenizer(copy):
    (copy / "tokenizer.json").write_text("{}")
    with pytest.raises(ArtifactError, match=r"sha256 mismatch for .*tokenizer.json"):
        Encoder(copy, device="cpu")
    with pytest.raises(ArtifactError, match="tokenizer file .*tokenizer.json is corrupted"):
        Encoder(copy, device="cpu", verify_checksum=False)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ArtifactError, match="tokenizer file is missing"):
        Encoder(copy, device="cpu")


BLOCKED = ["torch", "transformers", "sentence_transformers", "optimum"]


def test_runtime_works_with_heavy_libraries_blocked(tiny_bert, tiny_cross):
    _, export_dir = tiny_bert
    _, cross_dir = tiny_cross
    code = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # any import of it now raises ImportError
import embedrt
from embedrt import Encoder, cos_sim, semantic_search
enc = Encoder({str(export_dir)!r}, device="cpu")
emb = enc.encode(["hello world", "", "the model"])
assert emb.shape == (3, 32), emb.shape
semantic_search(emb[:1], emb, top_k=2)
from embedrt import CrossEncoder
ce = CrossEncoder({str(cross_dir)!r}, device="cpu")
assert ce.predict([("hello world", ""), ("a", "b")]).shape == (2,)
assert [r["corpus_id"] for r in ce.rank("q", ["a", "b"], top_k=1)] in ([0], [1])
loaded = [m for m in {BLOCKED!r} if sys.modules.get(m) is not None]
assert not loaded, loaded
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
