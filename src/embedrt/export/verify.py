"""Verification at export: the written artifact (tokenizer + graph, run by our own runtime) against
``SentenceTransformer.encode`` on a probe set built to break things."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_WORDS = (
    "the model reads every token once and pools them into one vector while the index keeps "
    "millions of such vectors for semantic search over real documents written by people"
).split()


def words(n: int) -> str:
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(n))


def probe_texts() -> list[str]:
    """Inputs that have broken embedding runtimes before: empty and blank strings, truncation edges,
    unicode of every kind, control characters and literal special tokens."""
    return [
        "",
        " ",
        "\t\n  \r",
        "Hello world",
        "A man is playing a guitar on stage.",
        "HELLO World, MiXeD CaSe and numbers 1234567890 3.14159",
        "Crème brûlée à la française, naïve café, Ångström, Straße",
        "日本語のテキストと中文句子，还有한국어 문장도 있습니다。",
        "I love pizza 🍕🔥👍🏽 and 👨‍👩‍👧‍👦 families",
        "مرحبا بالعالم — שלום עולם — mixed with English",
        "tab\there\x00null\x07bell\u200bzero\u00a0width\u202eRTL-override",
        "[CLS] [SEP] [MASK] [PAD] [UNK]",
        "<s> </s> <pad> <mask> <unk> [SEP]literal[SEP]",
        "def f(x):\n    return x ** 2  # code, with {braces} and <tags/>",
        words(140),  # between 129 and 256 tokens: tokenizer.json's own 128 limit must not apply
        words(230),
        words(600),  # far beyond max_seq_length: truncated
        ("supercalifragilisticexpialidocious antidisestablishmentarianism " * 40).strip(),
        "a",
        "?",
    ]


def compare(candidate: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Max abs diff and cosines of two ``(N, D)`` matrices, with the worst row."""
    candidate = np.asarray(candidate, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    diff = np.abs(candidate - reference).max(axis=1) if candidate.size else np.zeros(0)
    num = (candidate * reference).sum(1)
    den = np.linalg.norm(candidate, axis=1) * np.linalg.norm(reference, axis=1)
    cos = num / np.maximum(den, 1e-30)
    worst = int(np.argmax(diff)) if diff.size else -1
    return {
        "n_texts": int(len(candidate)),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "worst_row": worst,
        "mean_cosine": float(cos.mean()) if cos.size else 1.0,
        "min_cosine": float(cos.min()) if cos.size else 1.0,
    }


def verify_export(
    export_dir: Path, st_model, variant: str = "fp32", texts: list[str] | None = None
) -> dict[str, Any]:
    """Encode the probe set with the exported artifact and with sentence-transformers, and compare.

    Checks one mixed-length batch, one text per batch (batch invariance), and every prompt the model has.
    """
    from ..runtime.encoder import Encoder

    texts = texts if texts is not None else probe_texts()
    enc = Encoder(export_dir, device="cpu", variant=variant, native=False)
    reference = st_model.encode(texts, batch_size=len(texts), convert_to_numpy=True)
    batched = enc.encode(texts, batch_size=len(texts))
    result = compare(batched, reference)
    singles = np.stack([enc.encode(t) for t in texts])
    result["single_vs_batch_max_abs_diff"] = float(np.abs(singles - batched).max())
    result["single_max_abs_diff"] = compare(singles, reference)["max_abs_diff"]
    for name in sorted(getattr(st_model, "prompts", {}) or {}):
        ref_p = st_model.encode(texts[:8], prompt_name=name, convert_to_numpy=True)
        ours = enc.encode(texts[:8], prompt_name=name)
        got = compare(ours, reference=ref_p)
        result.setdefault("prompts", {})[name] = got["max_abs_diff"]
        result["max_abs_diff"] = max(result["max_abs_diff"], got["max_abs_diff"])
    result["worst_text"] = texts[result["worst_row"]][:80] if result["worst_row"] >= 0 else None
    return result
