"""Encode at several batch sizes, then its parts alone: tokenization, the session run, pooling.

Run: python -m pytest benchmarks/ --benchmark-only --benchmark-columns=median,iqr,ops
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from embedrt import Encoder


@pytest.fixture(scope="module")
def enc(export_dir):
    return Encoder(export_dir, device="cpu")


@pytest.fixture(scope="module")
def batch32(enc, corpus):
    """A batch of 32 texts of the corpus's median length, padded as the encoder pads it."""
    rows = enc.tokenizer.encode_ids(corpus)
    order = np.argsort([len(r) for r in rows])
    mid = len(order) // 2
    return enc.tokenizer.pad([rows[i] for i in order[mid - 16 : mid + 16]])


@pytest.mark.parametrize("batch_size", [1, 8, 32, 128])
def test_encode_512_texts(benchmark, enc, corpus, batch_size):
    benchmark.pedantic(
        enc.encode, args=(corpus[:512],), kwargs={"batch_size": batch_size}, rounds=3, warmup_rounds=1
    )


def test_tokenize_4000_texts(benchmark, enc, corpus):
    benchmark(enc.tokenizer.encode_ids, corpus)


def test_pad_4000_texts_in_batches_of_32(benchmark, enc, corpus):
    rows = enc.tokenizer.encode_ids(corpus)
    benchmark(lambda: [enc.tokenizer.pad(rows[i : i + 32]) for i in range(0, len(rows), 32)])


def test_session_run_batch32(benchmark, enc, batch32):
    ids, mask = batch32
    benchmark(enc._run, ids, mask, None)


def _split(export_dir, tmp_path):
    """Cut model.onnx at the last hidden state: transformer part and pooling+normalize part."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.shape_inference.infer_shapes(onnx.load(str(export_dir / "model.onnx")))
    hidden = [n for n in model.graph.node if n.op_type == "LayerNormalization"][-1].output[0]
    ex = Extractor(model)
    pool = ex.extract_model([hidden, "attention_mask"], ["sentence_embedding"])
    pool.ir_version = min(pool.ir_version, 10)
    transformer = ex.extract_model(["input_ids", "attention_mask"], [hidden])
    transformer.ir_version = min(transformer.ir_version, 10)
    paths = tmp_path / "pool.onnx", tmp_path / "transformer.onnx"
    onnx.save(pool, str(paths[0]))
    onnx.save(transformer, str(paths[1]))
    return hidden, paths


def test_transformer_alone_batch32(benchmark, export_dir, batch32, tmp_path):
    pytest.importorskip("onnx")
    _, (_, tpath) = _split(export_dir, tmp_path)
    sess = ort.InferenceSession(str(tpath), providers=["CPUExecutionProvider"])
    ids, mask = batch32
    benchmark(sess.run, None, {"input_ids": ids, "attention_mask": mask})


def test_pooling_alone_batch32(benchmark, export_dir, batch32, tmp_path):
    pytest.importorskip("onnx")
    hidden, (ppath, _) = _split(export_dir, tmp_path)
    sess = ort.InferenceSession(str(ppath), providers=["CPUExecutionProvider"])
    ids, mask = batch32
    tokens = np.random.default_rng(0).standard_normal((*ids.shape, 384)).astype(np.float32)
    benchmark(sess.run, None, {hidden: tokens, "attention_mask": mask})
