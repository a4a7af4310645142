"""``MultiVectorEncoder``: a torch-free drop-in for sentence-transformers' ``MultiVectorEncoder`` (ColBERT
style
late interaction): one vector per token, scored by MaxSim in numpy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..manifest import MASK_OUTPUT, MULTI_VECTOR, TOKENS_OUTPUT, Manifest, QueryExpansion
from ..modes import Device
from . import long_text as lt
from .encoder import _validate_texts
from .late import TokenGraphModel
from .tokenize import TextTokenizer
from .util import _numbers, normalize

TOKENS = TOKENS_OUTPUT
MASK = MASK_OUTPUT
TASKS = (None, "query", "document")
#: The MaxSim of a document with no token (before length normalisation), as sentence-transformers scores it:
#: below every real score.
EMPTY_DOCUMENT_SCORE = -1e9


def _token_matrices(side: Any, name: str) -> list[np.ndarray]:
    """Each text's ``(tokens, dim)`` float32 matrix; an empty matrix stays one (a text without tokens)."""
    if side is None or isinstance(side, (str, bytes, dict)):
        raise InputError(f"{name} must be a list of token matrices, got {type(side).__name__}")
    out = []
    for i, x in enumerate(side):
        m = _numbers(x, f"{name}[{i}]").astype(np.float32, copy=False)
        if m.ndim == 1 and m.size == 0:
            m = m.reshape(0, 0)
        m = np.atleast_2d(m)
        if m.ndim != 2:
            raise InputError(f"{name}[{i}] must be a (tokens, dim) matrix, got shape {m.shape}")
        out.append(m)
    return out


def _no_other_task(kwargs: dict[str, Any], task: str) -> None:
    """Drops ``task`` from ``kwargs`` when it says ``task``; raises InputError when it says another."""
    given = kwargs.pop("task", task)
    if given != task:
        raise InputError(
            f"encode_{task} encodes with task={task!r}, got task={given!r}; call encode(task=...)"
        )


def maxsim(
    queries: Sequence[np.ndarray], documents: Sequence[np.ndarray], length_normalize: bool = False
) -> np.ndarray:
    """MaxSim matrix ``(len(queries), len(documents))``: for each pair, the sum over query tokens of the
    best dot product with any document token (divided by the query's tokens when ``length_normalize``). A
    document without tokens scores ``EMPTY_DOCUMENT_SCORE``, as in sentence-transformers.

    Memory: all query tokens times one document's tokens at a time.

    Raises:
        InputError: a side that is not a list of token matrices, or matrices of different widths.
    """
    q, d = _token_matrices(queries, "queries"), _token_matrices(documents, "documents")
    widths = {x.shape[1] for x in q + d if len(x)}
    if len(widths) > 1:
        raise InputError(f"the token vectors have different dimensions: {sorted(widths)}")
    out = np.zeros((len(q), len(d)), dtype=np.float32)
    if not q or not d:
        return out
    counts = np.array([len(x) for x in q])
    stacked = np.vstack(q)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for j, doc in enumerate(d):
        if len(doc) == 0:
            out[:, j] = EMPTY_DOCUMENT_SCORE
            continue
        if len(stacked) == 0:
            continue
        best = (stacked @ doc.T).max(axis=1)
        sums = np.add.reduceat(best, starts) if len(best) else np.zeros(len(q), np.float32)
        out[:, j] = np.where(counts > 0, sums, 0.0)
    if length_normalize:
        out /= np.maximum(counts, 1)[:, None]
    return out


class MultiVectorEncoder(TokenGraphModel):
    """Load a multi-vector export and encode like ``sentence_transformers.MultiVectorEncoder``.

    ``encode`` returns one float32 ``(tokens_i, dim)`` array per text (the ragged output of
    sentence-transformers with ``convert_to_numpy=True``): the tokens its scoring mask keeps (real tokens,
    minus the skiplist for documents). ``encode_query`` / ``encode_document`` add the query / document
    prompt and use the model's ``query_length`` / ``document_length``; with ``query_expansion`` (ColBERT's
    [MASK] padding) a query shorter than its expansion length is filled up to it with the expansion token,
    and those positions get vectors too, as sentence-transformers does.

    Raises:
        ArtifactError: a missing or corrupted file, or an export of another task.
        ProviderUnavailableError, InputError: as ``Encoder``.
    """

    TASK = MULTI_VECTOR
    CLASS = "MultiVectorEncoder"

    @staticmethod
    def graph_outputs(manifest: Manifest) -> dict[str, int | None]:
        return {TOKENS: manifest.dim, MASK: None}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        info = self.manifest.multi_vector
        self.query_length: int | None = info.query_length
        self.document_length: int | None = info.document_length
        self._skip = np.array(info.skiplist_ids, dtype=np.int64)
        self._skip_tasks = list(info.skiplist_tasks)
        #: ColBERT query expansion (None: off); see :class:`embedrt.manifest.QueryExpansion`.
        self.query_expansion: QueryExpansion | None = info.query_expansion
        self._keep_only = (
            np.array(info.keep_only_token_ids, dtype=np.int64) if info.keep_only_token_ids else None
        )
        self._task_tokenizers: dict[int, TextTokenizer] = {}

    def get_sentence_embedding_dimension(self) -> int:
        """Width of each token vector."""
        return self._dim

    def _task_length(self, task: str | None) -> int | None:
        """The most tokens a text of ``task`` keeps (None: ``max_seq_length``), as ``Transformer.preprocess``:
        the task's length; for queries with expansion, the expansion length ("fixed") or at least it
        ("min")."""
        qe = self.query_expansion if task == "query" else None
        if qe is not None:
            if qe.strategy == "fixed":
                return qe.length
            if self.query_length is not None:
                return max(self.query_length, qe.length)
            return None
        return {"query": self.query_length, "document": self.document_length}.get(task or "")

    def _expand(self, rows: list[list[int]]) -> tuple[list[list[int]], np.ndarray | None]:
        """Fill each query shorter than the expansion length with the expansion token; returns the rows and
        how many leading positions of each the encoder attends to (None: all)."""
        qe = self.query_expansion
        assert qe is not None
        real = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        rows = [r + [qe.token_id] * (qe.length - len(r)) if len(r) < qe.length else r for r in rows]
        return rows, None if qe.attend else real

    def _tokenizer_for(self, task: str | None) -> TextTokenizer:
        length = self._task_length(task)
        if length is None or length == self.tokenizer.max_seq_length:
            return self.tokenizer
        # NOTE: as sentence-transformers, the task's length replaces max_seq_length for that task
        if length not in self._task_tokenizers:
            # NOTE: the same file load_tokenizer checked against its sha256 when the encoder was made
            tok = self.manifest.tokenizer
            self._task_tokenizers[length] = TextTokenizer(
                self.manifest.file(tok.file), length, tok.pad_token_id
            )
        return self._task_tokenizers[length]

    def encode(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str | None = "token_embeddings",
        convert_to_numpy: bool = True,
        device: str | None = None,
        normalize_embeddings: bool = False,
        task: str | None = None,
        long_text: str = "truncate",
        chunk_stride: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Per-token embeddings; the arguments and numbers of ``MultiVectorEncoder.encode``.

        Args:
            sentences: a str or a list of str.
            prompt_name, prompt: as ``Encoder.encode``.
            batch_size: texts per graph run.
            output_value: only ``"token_embeddings"``.
            convert_to_numpy: accepted for parity; results are always numpy arrays.
            device: must be None or this encoder's device.
            normalize_embeddings: L2-normalise every token vector.
            task: None, ``"query"`` or ``"document"``: picks the length and whether the skiplist applies.
            long_text: ``"truncate"`` (sentence-transformers' behaviour) or ``"chunk"``: a text longer than
                its task's length is read as overlapping windows, and gets one vector per token of the whole
                text, each token's from the window it sits most centrally in (the leading special tokens and
                prompt from the first window, the trailing ones from the last), then the skiplist and
                allowlist. Texts that fit are unchanged, bit for bit.
            chunk_stride: content tokens between window starts (default: three quarters of a window).

        Returns:
            A list of float32 ``(tokens_i, dim)`` arrays; one array for a single str.

        Raises:
            InputError: bad texts, arguments, prompt names or task.
        """
        if kwargs:
            raise InputError(f"MultiVectorEncoder.encode() got unexpected keyword arguments {sorted(kwargs)}")
        if output_value != "token_embeddings":
            raise InputError(
                f"output_value {output_value!r} is not supported; valid choices: 'token_embeddings'"
            )
        if task not in TASKS:
            raise InputError(f"task must be one of {list(TASKS)}, got {task!r}")
        texts, single = _validate_texts(sentences)
        self._check_batch_size(batch_size)
        if device is not None and Device.parse(device, "device") not in (self.device, Device.AUTO):
            raise InputError(f"this MultiVectorEncoder runs on {self.device.value!r}")
        long_text = lt.check_mode(long_text)
        if chunk_stride is not None and long_text != "chunk":
            raise InputError("chunk_stride only applies with long_text='chunk'")
        p = self._resolve_prompt(prompt, prompt_name)
        tokenizer = self._tokenizer_for(task)
        inputs = [p + t for t in texts] if p else texts
        rows = tokenizer.encode_ids(inputs)
        attended = None
        if task == "query" and self.query_expansion is not None:
            rows, attended = self._expand(rows)
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        skip = self._skip if ((task or "document") in self._skip_tasks and self._skip.size) else None
        keep_only = self._keep_only if task != "query" else None

        def scored(ids: np.ndarray, n: np.ndarray) -> np.ndarray:
            # NOTE: as MultiVectorMask: every token of the row (a query's expansion included, attended or
            # not), minus the skiplist, within the allowlist
            keep = np.arange(ids.shape[1])[None, :] < n[:, None]
            if skip is not None:
                keep &= ~np.isin(ids, skip)
            if keep_only is not None:
                keep &= np.isin(ids, keep_only)
            return keep

        def finish(v: np.ndarray) -> np.ndarray:
            return normalize(v).astype(np.float32) if normalize_embeddings else np.ascontiguousarray(v)

        out: list[np.ndarray] = [np.zeros((0, self._dim), np.float32)] * len(rows)
        for idx, ids, mask in self._batches(rows, batch_size, attended):
            vectors = self._run([TOKENS], ids, mask)[0]
            keep = scored(ids, lengths[idx])
            for j, i in enumerate(idx):
                out[i] = finish(vectors[j][keep[j]])
        if long_text == "chunk":
            full = tokenizer.encode_full(inputs)
            for i, tokens, ids in self._chunk_long(tokenizer, full, p, chunk_stride, batch_size):
                out[i] = finish(tokens[scored(ids[None, :], np.array([len(ids)]))[0]])
        return out[0] if single else out

    def _chunk_long(
        self,
        tokenizer: TextTokenizer,
        full: list[list[int]],
        prompt: str | None,
        chunk_stride: int | None,
        batch_size: int,
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(text index, one vector per token of the whole text, its ids)`` of each text longer than the
        window, read as overlapping windows (see ``encode``'s ``long_text``)."""
        n_head = tokenizer.prompt_length(prompt) if prompt else tokenizer.n_prefix
        n_suffix = tokenizer.n_suffix
        stride, plan = lt.plan_windows(full, tokenizer.max_seq_length, n_head, n_suffix, chunk_stride)
        rows = [row for _, wins, _ in plan for row in wins]
        window_vectors: list[np.ndarray] = [np.zeros((0, self._dim), np.float32)] * len(rows)
        for idx, ids, mask in self._batches(rows, batch_size):
            vectors = self._run([TOKENS], ids, mask)[0]
            for j, r in enumerate(idx):
                window_vectors[r] = vectors[j, : len(rows[r])]
        at = 0
        for i, wins, weights in plan:
            window, position = lt.token_sources(weights, stride, n_head, n_suffix)
            tokens = np.stack([window_vectors[at + w][q] for w, q in zip(window, position, strict=True)])
            yield i, tokens, np.asarray(full[i], dtype=np.int64)
            at += len(wins)

    def encode_query(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """``encode(task="query")`` with the ``"query"`` prompt when the model has one."""
        _no_other_task(kwargs, "query")
        return self.encode(
            sentences,
            prompt_name=self._query_prompt_name(prompt, prompt_name),
            prompt=prompt,
            task="query",
            **kwargs,
        )

    def encode_document(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """``encode(task="document")`` with the first ``"document"``/``"passage"``/``"corpus"`` prompt."""
        _no_other_task(kwargs, "document")
        return self.encode(
            sentences,
            prompt_name=self._document_prompt_name(prompt, prompt_name),
            prompt=prompt,
            task="document",
            **kwargs,
        )

    def similarity(self, queries: Any, documents: Any, length_normalize: bool | None = None) -> np.ndarray:
        """MaxSim (MeanMaxSim for ``similarity_fn_name == "meanmaxsim"``) of every query and document."""
        if isinstance(queries, np.ndarray) and queries.ndim == 2:
            queries = [queries]
        if isinstance(documents, np.ndarray) and documents.ndim == 2:
            documents = [documents]
        if length_normalize is None:
            length_normalize = self.similarity_fn_name == "meanmaxsim"
        return maxsim(queries, documents, length_normalize=length_normalize)
