"""Tokenization with the ``tokenizers`` library alone, reproducing sentence-transformers exactly.

sentence-transformers calls the Hugging Face fast tokenizer with ``padding=True`` (longest in the
batch), ``truncation="longest_first"`` and ``max_length = max_seq_length``; the fast tokenizer is a thin
wrapper over the same Rust ``tokenizers.Tokenizer`` used here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from ..errors import ArtifactError, InputError


def check_text(text: str, where: str) -> None:
    """Raise InputError when ``text`` is not valid Unicode (a lone surrogate such as ``"\\ud800"``, which a
    Python str and JSON allow but UTF-8 and the tokenizer do not). Texts are rejected, never repaired.
    """
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = text[e.start : e.end]
        raise InputError(
            f"{where} is not valid Unicode: lone surrogate {ascii(bad)} at character {e.start}; "
            "texts must be valid Unicode (where bytes were decoded with errors='surrogateescape', "
            "decode them with errors='replace' instead)"
        ) from None


def check_texts(texts: Iterable[Any], where: str) -> None:
    """check_text on each of ``texts``, naming ``where[i]``."""
    for i, t in enumerate(texts):
        if isinstance(t, str):
            check_text(t, f"{where}[{i}]")


class TextTokenizer:
    """Turns texts into int64 ``input_ids`` / ``attention_mask`` arrays, right-padded to the longest row."""

    def __init__(self, path: str | Path, max_seq_length: int, pad_token_id: int) -> None:
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"tokenizer file is missing: {path}")
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as e:  # noqa: BLE001 - the Rust error type is not importable
            raise ArtifactError(f"tokenizer file {path} is corrupted: {e}") from e
        self.max_seq_length = int(max_seq_length)
        self.pad_token_id = int(pad_token_id)
        # NOTE: truncation is set once here and padding is done in numpy per batch, so the tokenizer is
        # never mutated after construction and encode is safe to call from many threads.
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=self.max_seq_length, strategy="longest_first")
        self._special_ids = {i for i, t in self._tok.get_added_tokens_decoder().items() if t.special}
        # NOTE: a second, never-truncating copy counts tokens and cuts long texts into windows; it too is
        # configured once here, so both stay safe to share between threads.
        self._full = Tokenizer.from_str(self._tok.to_str())
        self._full.no_truncation()
        self._full.no_padding()
        with_specials = self._full.encode("a", add_special_tokens=True).ids
        bare = self._full.encode("a", add_special_tokens=False).ids
        at = next(
            (
                i
                for i in range(len(with_specials) - len(bare) + 1)
                if with_specials[i : i + len(bare)] == bare
            ),
            0,
        )
        #: special tokens the post-processor puts before and after a text ([CLS] / [SEP] for BERT)
        self.n_prefix, self.n_suffix = at, len(with_specials) - at - len(bare)

    def encode_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (special tokens added, truncated, unpadded).

        Raises:
            InputError: a text is not valid Unicode.
        """
        return [e.ids for e in self.encode_batch(texts)]

    def encode_batch(self, inputs: list[Any]) -> list[Any]:
        """The tokenizer's encodings; its raw error on invalid Unicode becomes an InputError."""
        try:
            return self._tok.encode_batch(inputs, add_special_tokens=True)
        except TypeError:
            for i, item in enumerate(inputs):
                if isinstance(item, str):
                    check_text(item, f"text {i}")
                else:
                    check_texts(item, f"pair {i}")
            raise

    def encode_full(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text with special tokens, never truncated."""
        return [e.ids for e in self._full.encode_batch(texts, add_special_tokens=True)]

    def pad(self, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Right-pad to the longest row: int64 ``input_ids`` and ``attention_mask`` of shape (B, T)."""
        width = max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return ids, mask

    def prompt_length(self, prompt: str) -> int:
        """Tokens a prompt contributes, without a trailing special token (as sentence-transformers counts)."""
        ids = self._tok.encode(prompt, add_special_tokens=True).ids
        n = len(ids)
        if ids and ids[-1] in self._special_ids:
            n -= 1
        return n

    def set_max_seq_length(self, value: int) -> None:
        self.max_seq_length = int(value)
        self._tok.enable_truncation(max_length=self.max_seq_length, strategy="longest_first")
