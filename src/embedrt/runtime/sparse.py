"""``SparseEncoder``: a torch-free drop-in for sentence-transformers' ``SparseEncoder`` (SPLADE) over one
ONNX graph that ends in the pooled ``(batch, vocab)`` vectors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..manifest import SPARSE, SPARSE_OUTPUT, Manifest
from ..modes import Device
from . import long_text as lt
from ._compat import check_no_pool, inputs_alias
from .encoder import _validate_texts
from .late import TokenGraphModel
from .util import SIMILARITY_FUNCTIONS, _as_2d, normalize

OUTPUT = SPARSE_OUTPUT


@dataclass
class SparseRows:
    """Rows of sparse vectors in CSR layout, for when scipy is not installed.

    Row ``i`` has the values ``data[indptr[i]:indptr[i+1]]`` at the columns
    ``indices[indptr[i]:indptr[i+1]]``.
    """

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    def toarray(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        out[rows, self.indices] = self.data
        return out

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of row ``i``."""
        s, e = self.indptr[i], self.indptr[i + 1]
        return self.indices[s:e], self.data[s:e]

    def __len__(self) -> int:
        return self.shape[0]


def _csr(data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]):
    try:
        from scipy.sparse import csr_matrix
    except ImportError:
        return SparseRows(data, indices, indptr, shape)
    return csr_matrix((data, indices, indptr), shape=shape)


def _dense(x: Any, name: str = "embeddings") -> np.ndarray:
    """A dense float32 matrix from CSR (scipy or SparseRows), a list of rows, or an array.

    Raises:
        InputError: anything else (None, text, an empty list, ragged rows).
    """
    try:
        if hasattr(x, "toarray"):
            x = x.toarray()
        elif isinstance(x, list):
            if not x:
                raise ValueError("an empty list has no width")
            x = np.vstack([r.toarray() if hasattr(r, "toarray") else np.atleast_2d(np.asarray(r)) for r in x])
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} must be sparse embeddings (CSR or rows of numbers): {e}") from None
    return _as_2d(x, name)


def select_top_k(dense: np.ndarray, k: int | None) -> np.ndarray:
    """Zero all but the ``k`` largest-magnitude values of each row (sentence-transformers'
    ``select_max_active_dims``), in place."""
    if k is None or k >= dense.shape[1]:
        return dense
    drop = np.argpartition(-np.abs(dense), k - 1, axis=1)[:, k:]
    np.put_along_axis(dense, drop, 0.0, axis=1)
    return dense


def nonzero_entries(block: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, values) of the non-zero entries of a pooled ``(batch, vocab)`` block, row-major, after
    keeping the ``k`` largest of each row (all of them when ``k`` is None).

    NOTE: zeroing all but ``k`` per row, then np.nonzero, measured 1.5% of the graph run on a MiniLM-sized
    SPLADE batch; gathering the ``k`` winners with argpartition measured 8.3% (benchmarks/sparse_topk.py).
    """
    block = select_top_k(block, k)
    r, c = np.nonzero(block)
    return r, c, block[r, c]


class SparseEncoder(TokenGraphModel):
    """Load a sparse (SPLADE) export and encode like ``sentence_transformers.SparseEncoder``.

    ``encode`` returns a scipy CSR matrix ``(N, vocab)`` (a :class:`SparseRows` without scipy); with
    ``convert_to_sparse_tensor=False`` a dense float32 array. Arguments otherwise as ``Encoder``.

    Raises:
        ArtifactError: a missing or corrupted file, or an export of another task.
        ProviderUnavailableError, InputError: as ``Encoder``.
    """

    TASK = SPARSE
    CLASS = "SparseEncoder"

    @staticmethod
    def graph_outputs(manifest: Manifest) -> dict[str, int | None]:
        return {OUTPUT: manifest.dim}

    def __init__(self, *args: Any, max_active_dims: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        info = self.manifest.sparse
        self.max_active_dims = self._check_k(
            max_active_dims if max_active_dims is not None else info.max_active_dims
        )
        self._vocab: list[str] | None = None
        self._pooling = info.pooling

    @staticmethod
    def _check_k(k: Any) -> int | None:
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k <= 0):
            raise InputError(f"max_active_dims must be a positive int or None, got {k!r}")
        return k

    def get_sentence_embedding_dimension(self) -> int:
        """The vocabulary size: the width of every sparse vector."""
        return self._dim

    @inputs_alias
    def encode(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_tensor: bool = True,
        convert_to_sparse_tensor: bool = True,
        save_to_cpu: bool = False,
        device: str | None = None,
        max_active_dims: int | None = None,
        long_text: str = "truncate",
        chunk_stride: int | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Sparse embeddings; the arguments and numbers of ``SparseEncoder.encode``.

        Args:
            sentences: a str or a list of str.
            prompt_name, prompt: as ``Encoder.encode``.
            batch_size: texts per graph run.
            show_progress_bar: accepted for parity (no bar).
            convert_to_tensor: False returns a list of rows instead of one matrix.
            convert_to_sparse_tensor: True (default) gives CSR (``scipy.sparse.csr_matrix``, or
                :class:`SparseRows` without scipy); False a dense float32 array.
            save_to_cpu: accepted for parity (results are always host arrays).
            device: must be None or this encoder's device.
            max_active_dims: keep only this many largest values per row (default: the model's setting).
            long_text: ``"truncate"`` (sentence-transformers' behaviour) or ``"chunk"``: a text longer than
                ``max_seq_length`` is read as overlapping windows, pooled as the model pools tokens (max: the
                element-wise max of the windows; sum: each window weighted by its share of new tokens), then
                ``max_active_dims`` applies. Texts that fit are unchanged, bit for bit.
            chunk_stride: content tokens between window starts (default: three quarters of a window).
            pool, chunk_size: accepted for signature parity; must be None (one encoder already runs its
                graph on every core).
            kwargs: only ``task`` (``"query"``/``"document"``), accepted as sentence-transformers does.

        Returns:
            ``(N, vocab)`` CSR or dense; a single str gives one row (CSR ``(1, vocab)``, dense ``(vocab,)``).

        Raises:
            InputError: bad texts, arguments or prompt names.
        """
        check_no_pool(pool, chunk_size, "SparseEncoder")
        unknown = set(kwargs) - {"task"}
        if unknown:
            raise InputError(f"SparseEncoder.encode() got unexpected keyword arguments {sorted(unknown)}")
        texts, single = _validate_texts(sentences)
        self._check_batch_size(batch_size)
        if device is not None and Device.parse(device, "device") not in (self.device, Device.AUTO):
            raise InputError(f"this SparseEncoder runs on {self.device.value!r}")
        k = self._check_k(max_active_dims) if max_active_dims is not None else self.max_active_dims
        p = self._resolve_prompt(prompt, prompt_name)
        chunked = self._chunked(texts, p, long_text, chunk_stride, batch_size, k)
        rows = self.tokenizer.encode_ids([p + t for t in texts] if p else texts)
        if not convert_to_sparse_tensor:
            dense_out = np.zeros((len(rows), self._dim), np.float32)
            for idx, ids, mask in self._batches(rows, batch_size):
                dense_out[idx] = select_top_k(self._run([OUTPUT], ids, mask)[0], k)
            for i, (c, vals) in chunked.items():
                dense_out[i] = 0.0
                dense_out[i, c] = vals
            if single:
                return dense_out[0]
            return dense_out if convert_to_tensor else list(dense_out)
        per_row = self.encode_rows(rows, batch_size=batch_size, max_active_dims=k)
        for i, entries in chunked.items():
            per_row[i] = entries
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(c) for c, _ in per_row])
        indices = np.concatenate([c for c, _ in per_row]) if per_row else np.zeros(0, np.int32)
        data = np.concatenate([v for _, v in per_row]) if per_row else np.zeros(0, np.float32)
        out = _csr(data.astype(np.float32), indices.astype(np.int32), indptr, (len(rows), self._dim))
        if single or convert_to_tensor:
            return out
        return [_csr(v.astype(np.float32), c, np.array([0, len(c)]), (1, self._dim)) for c, v in per_row]

    #: Long texts pooled per group, so that at most this many vocabulary-wide windows are dense at a time.
    CHUNK_GROUP_WINDOWS = 256

    def _chunked(
        self,
        texts: list[str],
        prompt: str | None,
        long_text: str,
        chunk_stride: Any,
        batch_size: int,
        k: int | None,
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """With ``long_text="chunk"``: the ``(indices, values)`` of each text longer than the window, pooled
        from its windows then cut to ``k`` active dimensions, by text index."""
        long_text = lt.check_mode(long_text)
        if chunk_stride is not None and long_text != "chunk":
            raise InputError("chunk_stride only applies with long_text='chunk'")
        if long_text != "chunk":
            return {}
        tok = self.tokenizer
        full = tok.encode_full([prompt + t for t in texts] if prompt else texts)
        n_head = tok.prompt_length(prompt) if prompt else tok.n_prefix
        stride, plan = lt.plan_windows(full, self.max_seq_length, n_head, tok.n_suffix, chunk_stride)
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        group: list[tuple[int, list[list[int]], list[int]]] = []
        for n, item in enumerate(plan):
            group.append(item)
            if n + 1 < len(plan) and sum(len(w) for _, w, _ in group) < self.CHUNK_GROUP_WINDOWS:
                continue
            rows = [row for _, wins, _ in group for row in wins]
            vectors = np.zeros((len(rows), self._dim), np.float32)
            for idx, ids, mask in self._batches(rows, batch_size):
                vectors[idx] = self._run([OUTPUT], ids, mask)[0]
            at = 0
            for i, wins, weights in group:
                pooled = lt.pool_sparse_windows(vectors[at : at + len(wins)], weights, stride, self._pooling)
                _, c, vals = nonzero_entries(pooled[None, :], k)
                out[i] = (c.astype(np.int32), vals.astype(np.float32))
                at += len(wins)
            group = []
        return out

    def encode_rows(
        self, rows: Sequence[Sequence[int]], batch_size: int = 32, max_active_dims: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The active dimensions of already tokenized texts (``tokenizer.encode_ids``, prompt included).

        Args:
            rows: token ids per text, truncated to ``max_seq_length``.
            batch_size: texts per graph run (``max_batch_tokens`` may make runs smaller).
            max_active_dims: as ``encode``; None keeps every non-zero value.

        Returns:
            One ``(indices, values)`` pair per row: int32 columns in ascending order and their float32
            values, exactly the non-zero entries of that row of ``encode``.
        """
        rows = [list(r) for r in rows]
        # NOTE: each batch is sparsified as it comes out of the graph, so at most one batch x vocab dense
        # block exists at a time (the tokens x vocab logits stay inside the graph).
        empty = (np.zeros(0, np.int32), np.zeros(0, np.float32))
        per_row: list[tuple[np.ndarray, np.ndarray]] = [empty] * len(rows)
        for idx, ids, mask in self._batches(rows, batch_size):
            r, c, vals = nonzero_entries(self._run([OUTPUT], ids, mask)[0], max_active_dims)
            bounds = np.searchsorted(r, np.arange(len(idx) + 1))
            for j, i in enumerate(idx):
                per_row[i] = (c[bounds[j] : bounds[j + 1]].astype(np.int32), vals[bounds[j] : bounds[j + 1]])
        return per_row

    @inputs_alias
    def encode_query(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """``encode`` with the ``"query"`` prompt when the model has one (as sentence-transformers)."""
        return self.encode(
            sentences, prompt_name=self._query_prompt_name(prompt, prompt_name), prompt=prompt, **kwargs
        )

    @inputs_alias
    def encode_document(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """``encode`` with the first ``"document"``/``"passage"``/``"corpus"`` prompt the model has."""
        return self.encode(
            sentences, prompt_name=self._document_prompt_name(prompt, prompt_name), prompt=prompt, **kwargs
        )

    def similarity(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Similarity matrix with the model's ``similarity_fn_name`` (dot by default), sparse-aware."""
        a, b = embeddings1, embeddings2
        if self.similarity_fn_name in ("dot", "cosine") and hasattr(a, "multiply") and hasattr(b, "multiply"):
            if a.shape[1] != b.shape[1]:
                raise InputError(f"the two sides have different dimensions: {a.shape[1]} and {b.shape[1]}")
            # NOTE: scipy CSR products touch only the active dimensions
            if self.similarity_fn_name == "cosine":
                na = np.sqrt(np.asarray(a.multiply(a).sum(axis=1))).ravel()
                nb = np.sqrt(np.asarray(b.multiply(b).sum(axis=1))).ravel()
                prod = (a @ b.T).toarray()
                return (prod / np.maximum(na[:, None], 1e-12) / np.maximum(nb[None, :], 1e-12)).astype(
                    np.float32
                )
            return np.asarray((a @ b.T).toarray(), dtype=np.float32)
        da, db = _dense(a, "embeddings1"), _dense(b, "embeddings2")
        if da.shape[1] != db.shape[1]:
            raise InputError(f"the two sides have different dimensions: {da.shape[1]} and {db.shape[1]}")
        if self.similarity_fn_name == "cosine":
            return normalize(da) @ normalize(db).T
        return SIMILARITY_FUNCTIONS[self.similarity_fn_name](da, db)

    def decode(self, embeddings: Any, top_k: int | None = None) -> list[list[tuple[str, float]]]:
        """The tokens of each row's active dimensions, largest first (``SparseEncoder.decode``)."""
        if self._vocab is None:
            tok = self.tokenizer._tok
            self._vocab = [tok.id_to_token(i) or "" for i in range(self._dim)]
        dense = _dense(embeddings)
        out = []
        for row in dense:
            nz = np.flatnonzero(row)
            nz = nz[np.argsort(-row[nz], kind="stable")][:top_k]
            out.append([(self._vocab[i], float(row[i])) for i in nz])
        return out
