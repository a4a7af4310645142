"""What the sparse and multi-vector runtimes share: the export's graph and tokenizer, prompts, validation,
length-sorted batches."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..errors import ArtifactError, InputError
from ..manifest import Manifest, read_manifest
from ..modes import Device
from . import providers as prov
from .batching import length_sorted_batches
from .encoder import _validate_texts
from .session import CLASS_OF_TASK, GraphStatus, MaxSeqLength, load_tokenizer, open_graph, variant_of


class TokenGraphModel(MaxSeqLength):
    """An export of task ``TASK`` (set by subclasses): its session, tokenizer and prompts."""

    TASK = ""
    CLASS = ""

    @staticmethod
    def graph_outputs(manifest: Manifest) -> dict[str, int | None]:
        """The outputs this class runs, each with its last-axis width (``open_graph``'s ``outputs``)."""
        raise NotImplementedError

    def __init__(
        self,
        path: str | os.PathLike,
        device: Device | str = "auto",
        providers: list[Any] | None = None,
        variant: str = "fp32",
        intra_op_threads: int | None = None,
        *,
        max_batch_tokens: int | None = 8192,
        verify_checksum: bool = True,
        tensorrt: prov.TensorRTOptions | None = None,
        device_id: int = 0,
        session_options: ort.SessionOptions | None = None,
    ) -> None:
        self.path = Path(path)
        self.manifest: Manifest = read_manifest(self.path)
        m = self.manifest
        if m.task != self.TASK:
            raise ArtifactError(
                f"{self.path} is an export of task {m.task!r}, not {self.TASK!r}: load it with "
                f"embedrt.{CLASS_OF_TASK.get(m.task, '?')} instead of embedrt.{self.CLASS}"
            )
        variant_of(m, variant)
        if max_batch_tokens is not None and (
            isinstance(max_batch_tokens, bool)
            or not isinstance(max_batch_tokens, int)
            or max_batch_tokens <= 0
        ):
            raise InputError(f"max_batch_tokens must be a positive int or None, got {max_batch_tokens!r}")
        self.max_batch_tokens = max_batch_tokens
        self.tokenizer = load_tokenizer(m, verify_checksum)
        self._max_seq_length_limit = m.max_seq_length
        self.input_names: list[str] = list(m.inputs)
        self.prompts: dict[str, str] = dict(m.prompts)
        self.default_prompt_name: str | None = m.default_prompt_name
        self.similarity_fn_name: str = m.similarity_fn_name
        self._dim = int(m.dim)
        graph = open_graph(
            self.path,
            m,
            variant,
            outputs=self.graph_outputs(m),
            device=device,
            providers=providers,
            intra_op_threads=intra_op_threads,
            verify_checksum=verify_checksum,
            tensorrt=tensorrt,
            device_id=device_id,
            session_options=session_options,
            max_batch_tokens=max_batch_tokens,
        )
        self._session = graph.session
        self.device: Device = graph.device
        self.active_providers: list[str] = graph.active_providers
        #: Which graph runs and why (always the standard one: these exports have no native graphs).
        self.graph_status: GraphStatus = graph.status
        self.variant = variant

    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        if prompt is not None:
            if not isinstance(prompt, str):
                raise InputError(f"prompt must be a str, got {type(prompt).__name__}")
            return prompt
        if prompt_name is not None:
            if not isinstance(prompt_name, str):
                raise InputError(f"prompt_name must be a str, got {type(prompt_name).__name__}")
            if prompt_name not in self.prompts:
                raise InputError(
                    f"prompt_name {prompt_name!r} not found; this model's prompts: {sorted(self.prompts)}"
                )
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts.get(self.default_prompt_name)
        return None

    def _query_prompt_name(self, prompt: str | None, prompt_name: str | None) -> str | None:
        if prompt_name is None and prompt is None and "query" in self.prompts:
            return "query"
        return prompt_name

    def _document_prompt_name(self, prompt: str | None, prompt_name: str | None) -> str | None:
        if prompt_name is None and prompt is None:
            for name in ("document", "passage", "corpus"):
                if name in self.prompts:
                    return name
        return prompt_name

    def prompt_text(self, prompt_name: str | None = None, side: str | None = None) -> str | None:
        """The prompt ``encode`` prepends for ``prompt_name``; without one, the prompt that
        ``encode_query`` (``side="query"``) or ``encode_document`` (``side="document"``) picks, else the
        model's default prompt (None: no prompt).

        Raises:
            InputError: ``prompt_name`` is not one of the model's prompts, or ``side`` is unknown.
        """
        if side == "query":
            prompt_name = self._query_prompt_name(None, prompt_name)
        elif side == "document":
            prompt_name = self._document_prompt_name(None, prompt_name)
        elif side is not None:
            raise InputError(f"side must be 'query', 'document' or None, got {side!r}")
        return self._resolve_prompt(None, prompt_name)

    def count_tokens(
        self, sentences: str | Sequence[str], prompt_name: str | None = None, prompt: str | None = None
    ) -> Any:
        """Tokens of each text before truncation (prompt and special tokens included), as ``Encoder``."""
        texts, single = _validate_texts(sentences)
        p = self._resolve_prompt(prompt, prompt_name)
        rows = self.tokenizer.encode_full([p + t for t in texts] if p else texts)
        counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        return int(counts[0]) if single else counts

    @staticmethod
    def _check_batch_size(batch_size: Any) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")

    def _batches(
        self, rows: list[list[int]], batch_size: int, attended: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(row indices, input_ids, attention_mask) of the graph runs of ``length_sorted_batches``, longest
        first. ``attended``: how many leading positions of each row the mask opens (default: all of them)."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        for idx in length_sorted_batches(lengths, batch_size, self.max_batch_tokens):
            ids, mask = self.tokenizer.pad([rows[i] for i in idx])
            if attended is not None:
                mask = (np.arange(ids.shape[1])[None, :] < attended[idx][:, None]).astype(np.int64)
            yield idx, ids, mask

    def _run(self, names: list[str], ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        return self._session.run(names, {"input_ids": ids, "attention_mask": mask})

    def __repr__(self) -> str:
        return (
            f"{self.CLASS}(path={str(self.path)!r}, variant={self.variant!r}, device={self.device.value!r}, "
            f"dim={self._dim}, max_seq_length={self.max_seq_length}, providers={self.active_providers})"
        )
