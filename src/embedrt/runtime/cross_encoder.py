"""``CrossEncoder``: a torch-free drop-in for ``sentence_transformers.CrossEncoder`` (``predict``, ``rank``)
over one ONNX graph that scores text pairs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..errors import ArtifactError, InputError
from ..manifest import Manifest, read_manifest
from ..modes import Activation, Device, Task
from . import long_text as lt
from . import providers as prov
from ._compat import check_no_pool
from .batching import run_batches
from .session import CLASS_OF_TASK, GraphStatus, MaxSeqLength, load_tokenizer, open_graph, variant_of
from .tokenize import TextTokenizer, check_text

SCORES = "scores"
LOGITS = "logits"


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # NOTE: the two-branch form never overflows exp (plain 1 / (1 + exp(-x)) warns for x << 0).
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


#: numpy versions of the activations, applied to float32 logits ``[batch, num_labels]``.
ACTIVATIONS: dict[Activation, Callable[[np.ndarray], np.ndarray]] = {
    Activation.IDENTITY: lambda x: x,
    Activation.SIGMOID: _sigmoid,
    Activation.TANH: np.tanh,
    Activation.RELU: lambda x: np.maximum(x, 0),
    Activation.SOFTMAX: _softmax,
}
#: torch.nn class names (what sentence-transformers stores as ``activation_fn``) and their Activation.
TORCH_ACTIVATIONS = {
    "Identity": Activation.IDENTITY,
    "Sigmoid": Activation.SIGMOID,
    "Tanh": Activation.TANH,
    "ReLU": Activation.RELU,
    "Softmax": Activation.SOFTMAX,
}


def parse_activation(value: Any) -> Activation | Callable[[np.ndarray], np.ndarray]:
    """An ``activation_fn`` argument -> an Activation, or a user callable on numpy logits.

    Accepts an Activation, its name (``"sigmoid"``), a torch class path as sentence-transformers saves it
    (``"torch.nn.modules.activation.Sigmoid"``), a torch module *instance* such as ``torch.nn.Sigmoid()``
    (recognised by class name, so torch is never imported), or any callable on a numpy array.

    Raises:
        InputError: an unknown name, or something that is neither a name nor callable.
    """
    if isinstance(value, Activation):
        return value
    choices = [a.value for a in Activation] + [f"torch.nn.{n}" for n in TORCH_ACTIVATIONS]
    if isinstance(value, str):
        short = value.rsplit(".", 1)[-1]
        if short in TORCH_ACTIVATIONS:
            return TORCH_ACTIVATIONS[short]
        try:
            return Activation.parse(value, "activation_fn")
        except InputError:
            raise InputError(
                f"unknown activation_fn {value!r}; valid choices: {choices}, or a callable on numpy arrays"
            ) from None
    cls = type(value)
    if cls.__module__.startswith("torch.") and cls.__name__ in TORCH_ACTIVATIONS:
        act = TORCH_ACTIVATIONS[cls.__name__]
        if act is Activation.SOFTMAX and getattr(value, "dim", None) not in (None, -1, 1):
            raise InputError(
                f"torch.nn.Softmax(dim={value.dim}) is not supported; scores are [batch, labels], so "
                "only dim=-1 (or 1, or None) applies"
            )
        return act
    if callable(value):
        return value
    raise InputError(
        f"activation_fn must be a name, a torch activation or a callable, got {type(value).__name__}; "
        f"valid names: {choices}"
    )


def _validate_pairs(inputs: Any) -> tuple[list[tuple[str, str]], bool]:
    """Return (pairs, is_single) with sentence-transformers' rule: a list whose first element is not a
    list/tuple is one pair. Raises InputError naming the first bad pair."""
    if inputs is None:
        raise InputError("inputs is None; pass a pair (text_a, text_b) or a list of pairs")
    if isinstance(inputs, (str, bytes, bytearray)):
        raise InputError(
            f"inputs is a single {type(inputs).__name__}, not a pair; pass (text_a, text_b) or a "
            "list of such pairs"
        )
    if isinstance(inputs, np.ndarray):
        inputs = inputs.tolist()
    if isinstance(inputs, dict) or not isinstance(inputs, Iterable):
        raise InputError(f"inputs must be a pair or a list of pairs, got {type(inputs).__name__}")
    if not isinstance(inputs, (list, tuple)):
        inputs = list(inputs)
    single = len(inputs) > 0 and not isinstance(inputs[0], (list, tuple))
    rows = [inputs] if single else inputs
    pairs: list[tuple[str, str]] = []
    for i, pair in enumerate(rows):
        where = "inputs" if single else f"inputs[{i}]"
        if not isinstance(pair, (list, tuple)):
            raise InputError(f"{where} is {type(pair).__name__}, expected a pair (text_a, text_b)")
        if len(pair) != 2:
            raise InputError(f"{where} has {len(pair)} elements, expected a pair of 2 texts (text_a, text_b)")
        for j, text in enumerate(pair):
            if not isinstance(text, str):
                raise InputError(f"{where}[{j}] is {type(text).__name__}, expected str")
            check_text(text, f"{where}[{j}]")
        pairs.append((pair[0], pair[1]))
    return pairs, single


class PairTokenizer(TextTokenizer):
    """``TextTokenizer`` for pairs: ``[CLS] a [SEP] b [SEP]`` (or the model's template) with segment ids,
    truncated ``longest_first`` to ``max_seq_length`` as the Hugging Face tokenizer does for a pair."""

    def encode_pairs(self, pairs: list[tuple[str, str]]) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids and segment (token type) ids of each pair, special tokens added, truncated, unpadded."""
        encodings = self.encode_batch(pairs)
        return [e.ids for e in encodings], [e.type_ids for e in encodings]

    def count_pairs(self, pairs: list[tuple[str, str]]) -> list[int]:
        """Tokens of each pair with its special tokens, before truncation."""
        return [len(e.ids) for e in self._full.encode_batch(pairs, add_special_tokens=True)]

    def pair_windows(
        self, pair: tuple[str, str], chunk_stride: Any, where: str
    ) -> tuple[list[list[int]], list[list[int]]]:
        """The windows of a pair too long for ``max_seq_length``: the first text whole in each, the second
        cut into overlapping pieces of what room is left (window ``i`` starts ``i * stride`` of its tokens
        in, the last reaches its end), each assembled with the special tokens by the model's template. Token
        ids and segment ids of each window.

        Raises:
            InputError: the first text leaves no room for the second, or a bad ``chunk_stride``.
        """
        first, second = (self._full.encode(t, add_special_tokens=False) for t in pair)
        n_special = self._full.num_special_tokens_to_add(True)
        width = self.max_seq_length - len(first.ids) - n_special
        if width <= 0:
            raise InputError(
                f"{where}: its first text and the special tokens take {len(first.ids) + n_special} of the "
                f"{self.max_seq_length} tokens of a window: no room left to chunk the second text"
            )
        stride = lt.check_stride(chunk_stride, width)
        # NOTE: Encoding.truncate keeps the first `width` tokens and puts the rest in overlapping
        # encodings that share `width - stride` tokens with the one before: the windows
        second.truncate(width, stride=width - stride)
        windows = [
            self._full.post_process(first, w, add_special_tokens=True) for w in [second, *second.overflowing]
        ]
        return [w.ids for w in windows], [w.type_ids for w in windows]

    def pad_types(self, types: list[list[int]], width: int) -> np.ndarray:
        """Right-pad segment ids with 0 (the Hugging Face ``pad_token_type_id``): int64 (B, T)."""
        out = np.zeros((len(types), width), dtype=np.int64)
        for i, t in enumerate(types):
            out[i, : len(t)] = t
        return out


class CrossEncoder(MaxSeqLength):
    """Load a cross-encoder export and score pairs exactly like ``sentence_transformers.CrossEncoder``.

    Args:
        path: export directory written by ``export-model --cross-encoder``.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"tensorrt"``.
        providers: an explicit onnxruntime provider list; overrides ``device``.
        variant: which graph of the export to load (``"fp32"``).
        intra_op_threads: onnxruntime intra-op threads (default: onnxruntime's choice, one per core).
        max_batch_tokens: default token budget per batch (rows x padded length); None means batch_size only.
        verify_checksum: check the graph's sha256 against the manifest at load.
        tensorrt: TensorRT options.
        device_id: GPU ordinal for CUDA and TensorRT.
        session_options: replaces the default onnxruntime session options.

    Raises:
        ArtifactError: a missing or corrupted file, a sha256 mismatch, or an export of another task.
        ProviderUnavailableError: the requested accelerator is not available or not active.
        InputError: an unknown device or variant name.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        device: Device | str = "auto",
        providers: list[Any] | None = None,
        variant: str = "fp32",
        intra_op_threads: int | None = None,
        *,
        max_batch_tokens: int | None = None,
        verify_checksum: bool = True,
        tensorrt: prov.TensorRTOptions | None = None,
        device_id: int = 0,
        session_options: ort.SessionOptions | None = None,
    ) -> None:
        self.path = Path(path)
        self.manifest: Manifest = read_manifest(self.path)
        m = self.manifest
        if m.task != Task.CROSS_ENCODER.value:
            raise ArtifactError(
                f"{self.path} is an export of task {m.task!r}, not a cross-encoder: load it with "
                f"embedrt.{CLASS_OF_TASK.get(m.task, 'Encoder')}, or export a cross-encoder with "
                "export-model --cross-encoder"
            )
        variant_of(m, variant)
        self.activation: Activation = Activation.parse(m.activation, "activation in the manifest")
        self.num_labels: int = int(m.num_labels)
        self.tokenizer = load_tokenizer(m, verify_checksum, PairTokenizer)
        widths = {SCORES: None if self.num_labels == 1 else self.num_labels, LOGITS: self.num_labels}
        graph = open_graph(
            self.path,
            m,
            variant,
            outputs=widths,
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
        self._row_cap = graph.max_rows
        self.device: Device = graph.device
        self.active_providers: list[str] = graph.active_providers
        #: Which graph runs and why (cross-encoder exports have the standard graph only).
        self.graph_status: GraphStatus = graph.status
        self.variant = variant
        self._max_seq_length_limit = m.max_seq_length
        self.input_names: list[str] = list(m.inputs)
        self._with_types = "token_type_ids" in self.input_names
        self.labels: list[str] = list(m.labels)
        self.max_batch_tokens = max_batch_tokens

    # ------------------------------------------------------------------ properties
    @property
    def max_length(self) -> int:
        """Alias of ``max_seq_length`` (sentence-transformers' older name)."""
        return self.max_seq_length

    # ------------------------------------------------------------------ predict / rank
    def predict(
        self,
        inputs: Sequence[str] | Sequence[Sequence[str]],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Any = None,
        apply_softmax: bool | None = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        *,
        max_batch_tokens: int | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        long_text: str = "truncate",
        chunk_stride: int | None = None,
        device: str | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
    ) -> np.ndarray | np.float32 | list[Any]:
        """Score pairs: the arguments, shapes and numbers of ``sentence_transformers.CrossEncoder.predict``.

        Args:
            inputs: one pair ``(text_a, text_b)`` (gives a scalar, or ``(num_labels,)``), or a list of pairs
                (gives ``(N,)``, or ``(N, num_labels)``; an empty list gives ``(0,)`` or ``(0, num_labels)``).
            batch_size: pairs per graph run.
            show_progress_bar: show a tqdm bar (if tqdm is installed).
            activation_fn: None uses the model's activation (inside the graph); otherwise a name
                (``"sigmoid"``, ``"identity"``, ``"tanh"``, ``"relu"``, ``"softmax"``), a torch activation
                instance or class path, or a callable on numpy arrays, applied to the raw logits.
            apply_softmax: for more than one label, softmax over the labels after the activation.
            convert_to_numpy: False returns a list with one entry per pair.
            convert_to_tensor: not supported (no torch in the runtime); raises InputError when True.
            max_batch_tokens: cap rows x padded length per batch.
            prompt_name: accepted for signature parity; must be None (cross-encoder exports have no prompts).
            prompt: accepted for signature parity; must be None.
            long_text: ``"truncate"`` (sentence-transformers' behaviour: the pair is cut ``longest_first``)
                or ``"chunk"``: a pair longer than ``max_seq_length`` is scored as overlapping windows of its
                second text (the document), each with the whole first text (the query), and gets the best
                window's score (the max of the windows' logits, then the activation). One-label models only.
                Pairs that fit are unchanged, bit for bit.
            chunk_stride: the second text's tokens between window starts (default: three quarters of a
                window).
            device: accepted for signature parity; must be None or this cross-encoder's device.
            pool, chunk_size: accepted for signature parity; must be None (sentence-transformers'
                multi-process scoring; one cross-encoder already runs its graph on every core).

        Returns:
            float32 scores.

        Raises:
            InputError: None, a bare str, a pair without exactly 2 texts, a non-str text, an invalid argument.
        """
        pairs, single = _validate_pairs(inputs)
        if prompt_name is not None or prompt is not None:
            raise InputError("prompts are not supported for cross-encoders: prompt, prompt_name must be None")
        check_no_pool(pool, chunk_size, "CrossEncoder")
        if device is not None and Device.parse(device, "device") not in (self.device, Device.AUTO):
            raise InputError(
                f"this CrossEncoder runs on {self.device.value!r}; create another CrossEncoder for {device!r}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        if convert_to_tensor:
            raise InputError(
                "convert_to_tensor=True needs torch, which the runtime does not use; "
                "use convert_to_numpy=True"
            )
        budget = max_batch_tokens if max_batch_tokens is not None else self.max_batch_tokens
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
            raise InputError(f"max_batch_tokens must be a positive int, got {budget!r}")
        activation = parse_activation(activation_fn) if activation_fn is not None else None
        # NOTE: the graph outputs both the activated scores and the raw logits (one pass, the activation is a
        # handful of elementwise ops): the default reads `scores`, so the graph alone serves the model as
        # exported; an activation_fn override needs the logits, applied here in numpy.
        output = SCORES if activation is None else LOGITS
        shape_tail: tuple[int, ...] = () if self.num_labels == 1 and output == SCORES else (self.num_labels,)
        long_text = lt.check_mode(long_text)
        if chunk_stride is not None and long_text != "chunk":
            raise InputError("chunk_stride only applies with long_text='chunk'")
        if long_text == "chunk" and self.num_labels != 1:
            raise InputError(
                f"long_text='chunk' scores a pair by its best window, which needs one label; this model has "
                f"{self.num_labels}: {self.labels}"
            )
        if pairs:
            scores = self._score(pairs, output, shape_tail, batch_size, budget, show_progress_bar)
            if long_text == "chunk":
                self._chunk_long(scores, pairs, output, chunk_stride, batch_size, budget)
        else:
            scores = np.zeros((0, *shape_tail), dtype=np.float32)
        if activation is not None:
            fn = ACTIVATIONS[activation] if isinstance(activation, Activation) else activation
            scores = np.asarray(fn(scores), dtype=np.float32) if len(scores) else scores
            if self.num_labels == 1 and scores.ndim > 1:
                scores = scores.squeeze(-1)
        if apply_softmax and scores.ndim > 1:
            scores = _softmax(scores, axis=1).astype(np.float32, copy=False)
        if single:
            return scores[0]
        if not convert_to_numpy:
            return list(scores)
        return scores

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Any = None,
        long_text: str = "truncate",
        chunk_stride: int | None = None,
        *,
        prompt_name: str | None = None,
        prompt: str | None = None,
        apply_softmax: bool | None = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """Score ``query`` against every document and sort, as ``sentence_transformers.CrossEncoder.rank``.

        Args:
            query: the query text.
            documents: the texts to rank (an empty list gives ``[]``).
            top_k: keep the best ``top_k`` (None: all).
            return_documents: add each document's ``"text"``.
            batch_size: pairs per graph run.
            show_progress_bar: show a tqdm bar.
            activation_fn, long_text, chunk_stride: as in ``predict`` (``"chunk"`` scores a long document
                by its best window).
            prompt_name, prompt, apply_softmax, convert_to_numpy, convert_to_tensor, device, pool,
                chunk_size: accepted as ``sentence_transformers.CrossEncoder.rank`` accepts them, checked
                as ``predict`` checks them (the ranking is the same: one label has nothing to soft-max,
                and a list of scores sorts as an array does).

        Returns:
            ``[{"corpus_id": int, "score": float[, "text": str]}, ...]``, best first (ties keep input order).

        Raises:
            InputError: a model with more than one label, a non-str query, documents that are not a list of
                str, a negative top_k.
        """
        if self.num_labels != 1:
            raise InputError(
                f"rank() only works for models with num_labels=1 (this one has {self.num_labels}: "
                f"{self.labels}); use predict() with pairs instead"
            )
        if not isinstance(query, str):
            raise InputError(f"query must be a str, got {type(query).__name__}")
        if documents is None or isinstance(documents, (str, bytes, bytearray, dict)):
            got = "None" if documents is None else type(documents).__name__
            raise InputError(f"documents must be a list of str, got {got}")
        if isinstance(documents, np.ndarray):
            documents = documents.tolist()
        documents = list(documents)
        for i, d in enumerate(documents):
            if not isinstance(d, str):
                raise InputError(f"documents[{i}] is {type(d).__name__}, expected str")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
            raise InputError(f"top_k must be None or a non-negative int, got {top_k!r}")
        del convert_to_numpy  # NOTE: the scores are sorted either way, as sentence-transformers does
        scores = self.predict(
            [(query, d) for d in documents],
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            activation_fn=activation_fn,
            apply_softmax=apply_softmax,
            convert_to_tensor=convert_to_tensor,
            long_text=long_text,
            chunk_stride=chunk_stride,
            prompt_name=prompt_name,
            prompt=prompt,
            device=device,
            pool=pool,
            chunk_size=chunk_size,
        ).tolist()
        results: list[dict[str, Any]] = []
        for i, score in enumerate(scores):
            results.append({"corpus_id": i, "score": score})
            if return_documents:
                results[-1]["text"] = documents[i]
        # NOTE: Python's sort is stable, so tied scores keep document order, exactly as the reference.
        results.sort(key=lambda r: r["score"], reverse=True)
        return results[:top_k]

    # ------------------------------------------------------------------ internals
    def _score(
        self,
        pairs: list[tuple[str, str]],
        output: str,
        shape_tail: tuple[int, ...],
        batch_size: int,
        budget: int | None,
        show_progress_bar: bool | None,
    ) -> np.ndarray:
        ids, types = self.tokenizer.encode_pairs(pairs)
        out = np.empty((len(ids), *shape_tail), dtype=np.float32)
        lengths = np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(ids))
        rows = min(batch_size, self._row_cap or batch_size)  # NOTE: TensorRT's profile maximum

        def run(idx: np.ndarray) -> None:
            out[idx] = self._run([ids[i] for i in idx], [types[i] for i in idx], output)

        run_batches(lengths, rows, budget, run, show_progress_bar, desc="Scoring", unit="pair")
        return out

    def _chunk_long(
        self,
        scores: np.ndarray,
        pairs: list[tuple[str, str]],
        output: str,
        chunk_stride: int | None,
        batch_size: int,
        budget: int | None,
    ) -> None:
        """Replace, in place, the scores of pairs longer than the window by their best window's (the max
        over windows: the logits' max and the activation's agree, the activation being monotone)."""
        limit = self.max_seq_length
        counts = self.tokenizer.count_pairs(pairs)
        plan: list[tuple[int, int, int]] = []  # (pair, first window row, windows)
        ids: list[list[int]] = []
        types: list[list[int]] = []
        for i, n in enumerate(counts):
            if n > limit:
                w_ids, w_types = self.tokenizer.pair_windows(pairs[i], chunk_stride, f"inputs[{i}]")
                plan.append((i, len(ids), len(w_ids)))
                ids += w_ids
                types += w_types
        if not plan:
            return
        out = np.empty((len(ids), *scores.shape[1:]), dtype=np.float32)
        lengths = np.fromiter((len(r) for r in ids), dtype=np.int64, count=len(ids))

        def run(idx: np.ndarray) -> None:
            out[idx] = self._run([ids[k] for k in idx], [types[k] for k in idx], output)

        run_batches(lengths, min(batch_size, self._row_cap or batch_size), budget, run, False)
        for i, at, n in plan:
            scores[i] = out[at : at + n].max(axis=0)

    def count_tokens(self, inputs: Sequence[str] | Sequence[Sequence[str]]) -> Any:
        """Tokens of each pair as ``predict`` would feed it before truncation, special tokens included; a
        count above ``max_seq_length`` means ``predict`` cuts the pair (or, with ``long_text="chunk"``,
        scores it in windows).

        Returns:
            int64 ``(N,)`` for a list of pairs, an int for one pair.

        Raises:
            InputError: as ``predict`` for bad pairs.
        """
        pairs, single = _validate_pairs(inputs)
        counts = np.array(self.tokenizer.count_pairs(pairs) if pairs else [], dtype=np.int64)
        return int(counts[0]) if single else counts

    def _run(self, ids: list[list[int]], types: list[list[int]], output: str) -> np.ndarray:
        input_ids, mask = self.tokenizer.pad(ids)
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if self._with_types:
            feed["token_type_ids"] = self.tokenizer.pad_types(types, input_ids.shape[1])
        # NOTE: no IO binding on CUDA: the output is a few floats per pair, so its copy costs nothing.
        return self._session.run([output], feed)[0]

    def __repr__(self) -> str:
        return (
            f"CrossEncoder(path={str(self.path)!r}, variant={self.variant!r}, device={self.device.value!r}, "
            f"num_labels={self.num_labels}, activation={self.activation.value!r}, "
            f"max_seq_length={self.max_seq_length}, providers={self.active_providers})"
        )


def rerank_hits(
    cross_encoder: CrossEncoder,
    query: str,
    hits: list[dict[str, Any]],
    corpus: Sequence[str],
    top_k: int | None = None,
    batch_size: int = 32,
) -> list[dict[str, Any]]:
    """Rerank one query's retrieval hits (``semantic_search`` output) with a cross-encoder.

    Args:
        cross_encoder: a one-label cross-encoder.
        query: the query text.
        hits: ``[{"corpus_id", "score"}, ...]`` from the bi-encoder, best first.
        corpus: the texts ``corpus_id`` indexes.
        top_k: keep the best ``top_k`` after reranking (None: all hits).
        batch_size: pairs per graph run.

    Returns:
        ``[{"corpus_id", "score", "retrieval_score", "retrieval_rank"}, ...]``, best first;
        ``score`` is the cross-encoder's, ``retrieval_rank`` the 0-based position the bi-encoder gave it.

    Raises:
        InputError: as ``CrossEncoder.rank``, or a ``corpus_id`` outside the corpus.
    """
    for h in hits:
        if not 0 <= int(h["corpus_id"]) < len(corpus):
            raise InputError(f"hit corpus_id {h['corpus_id']} is outside the corpus of {len(corpus)} texts")
    ranked = cross_encoder.rank(
        query, [corpus[int(h["corpus_id"])] for h in hits], top_k=top_k, batch_size=batch_size
    )
    return [
        {
            "corpus_id": int(hits[r["corpus_id"]]["corpus_id"]),
            "score": r["score"],
            "retrieval_score": float(hits[r["corpus_id"]]["score"]),
            "retrieval_rank": r["corpus_id"],
        }
        for r in ranked
    ]
