"""``Encoder``: a thin, torch-free drop-in for ``SentenceTransformer.encode`` over one ONNX graph."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..errors import ArtifactError, InputError
from ..manifest import Manifest, read_manifest
from ..modes import Device, Precision
from . import long_text as lt
from . import providers as prov
from ._compat import check_no_pool, inputs_alias
from .batching import run_batches
from .session import (
    CLASS_OF_TASK,
    GraphStatus,
    MaxSeqLength,
    load_tokenizer,
    open_graph,
    open_parallel_session,
    variant_of,
)
from .tokenize import check_text
from .util import SIMILARITY_FUNCTIONS, available_cores, normalize, quantize_embeddings

OUTPUT_NAME = "sentence_embedding"
# NOTE: measured on all-MiniLM-L6-v2 over 4,000 corpus-qnli lines: peak RSS 495 -> 332 MiB (fp32) and
# 464 -> 280 MiB (int8) against no budget. Length-sorted batches of short texts (32 x 26 tokens) stay whole.
DEFAULT_MAX_BATCH_TOKENS = 2048


def _validate_texts(sentences: Any) -> tuple[list[str], bool]:
    """Return (texts, is_single). Raises InputError naming the first bad element."""
    if isinstance(sentences, str):
        check_text(sentences, "sentences")
        return [sentences], True
    if sentences is None:
        raise InputError("sentences is None; pass a str or a list of str")
    if isinstance(sentences, (bytes, bytearray)):
        raise InputError("sentences is bytes; decode it first (e.g. data.decode('utf-8'))")
    if isinstance(sentences, np.ndarray):
        sentences = sentences.tolist()
    if not isinstance(sentences, (list, tuple)):
        if isinstance(sentences, Iterable) and not isinstance(sentences, dict):
            sentences = list(sentences)
        else:
            raise InputError(f"sentences must be a str or a list of str, got {type(sentences).__name__}")
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            kind = "a nested list" if isinstance(s, (list, tuple)) else type(s).__name__
            raise InputError(
                f"sentences[{i}] is {kind}, expected str (embedrt encodes single texts, not pairs)"
            )
        check_text(s, f"sentences[{i}]")
    return list(sentences), False


@dataclass(frozen=True)
class TokenizedTexts:
    """Texts as ``Encoder.tokenize`` turns them into token ids: what ``Encoder.encode_tokenized`` runs.

    Attributes:
        ids: token ids per text (special tokens and prompt included, truncated at ``max_seq_length``,
            unpadded).
        prompt_length: the prompt's tokens, for graphs that exclude it from pooling (``prompt_length`` input);
            None for graphs without that input.
    """

    ids: list[list[int]]
    prompt_length: int | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per text (int64 ``(N,)``): what the model saw, what OpenAI's ``usage`` counts."""
        return np.fromiter((len(r) for r in self.ids), dtype=np.int64, count=len(self.ids))

    @classmethod
    def concat(cls, parts: Sequence[TokenizedTexts]) -> TokenizedTexts:
        """One ``TokenizedTexts`` of several, in order (for one graph run over many requests).

        Raises:
            InputError: no parts, or parts with different prompt lengths (they cannot share a graph run).
        """
        if not parts:
            raise InputError("concat needs at least one TokenizedTexts")
        first = parts[0].prompt_length
        if any(p.prompt_length != first for p in parts):
            raise InputError("TokenizedTexts with different prompt lengths cannot be concatenated")
        if len(parts) == 1:
            return parts[0]
        return cls([r for p in parts for r in p.ids], first)


class Encoder(MaxSeqLength):
    """Load an embedrt export directory and encode texts exactly like ``SentenceTransformer.encode``.

    Args:
        path: export directory written by ``export-model``.
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"tensorrt"``.
        providers: an explicit onnxruntime provider list; overrides ``device``.
        variant: which graph of the export to load (``"fp32"``, ``"int8"``, ...; see ``manifest.variants``).
        intra_op_threads: onnxruntime intra-op threads (default: onnxruntime's choice, one per core).
        truncate_dim: default Matryoshka truncation for every ``encode`` call.
        max_batch_tokens: default token budget per batch (rows x padded length); None means batch_size only.
            The default, 2048, only splits batches of long texts; it bounds the activation memory that
            onnxruntime's arena keeps (peak RSS) without changing the numbers.
        verify_checksum: check the sha256 of each file (graph, probe, tokenizer.json) against the manifest
            when it is loaded; a graph that is not loaded (model.onnx while a native graph serves) is not
            read.
        tensorrt: TensorRT options (fp16, engine cache, shape profiles).
        device_id: GPU ordinal for CUDA and TensorRT.
        session_options: replaces the default onnxruntime session options.
        native: ``"auto"`` (default) runs the variant's native graph (fp32: ``model.fused.onnx``, one
            native ``MeanPoolNormalize`` op, or on an AVX-512 CPU ``model.packed.onnx``, which also runs each
            Linear as a native ``PackedMatMul``; int8: ``model.int8.fused.onnx``, which also runs each
            per-token
            quantization and rescale as one native op, CPU only) when the native library is built and the
            graph agrees with the standard one on the export's probe; otherwise the standard graph. ``True``
            requires it (raises NativeOpsError), ``False`` never uses it. ``self.native`` says whether it
            runs, ``self.graph_status`` which graph runs and why.
        fused_pooling: deprecated alias of ``native`` (a DeprecationWarning; removed in the next release).
        parallel_runs: how many graph runs of one ``encode`` call go at once, each on one onnxruntime thread
            of a second session on the same graph, opened at the first call with more than one run (calls
            of one run, such as a single text, keep the first session and all its threads, unless another
            call is running at the same time: then the run goes to the same threads as that call's runs, so
            that calls from several threads, as a server's batches are, do not ask for more threads than
            there are cores). None (default):
            one per thread for an int8 variant on the CPU, where the runs in parallel pay
            (docs/performance.md), else 1; 1 turns it off. The vectors are the same bits either way (the
            graphs are batch- and thread-invariant). ``self.parallel_runs`` says what was chosen.

    Raises:
        ArtifactError: a missing or corrupted file, an incompatible manifest, or a sha256 mismatch.
        ProviderUnavailableError: the requested accelerator is not available or not active.
        InputError: an unknown device or variant name.
        NativeOpsError: ``native=True`` but the library or the native graph is missing, or disagrees.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        device: Device | str = "auto",
        providers: list[Any] | None = None,
        variant: str = "fp32",
        intra_op_threads: int | None = None,
        *,
        truncate_dim: int | None = None,
        max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS,
        verify_checksum: bool = True,
        tensorrt: prov.TensorRTOptions | None = None,
        device_id: int = 0,
        session_options: ort.SessionOptions | None = None,
        native: bool | str = "auto",
        fused_pooling: bool | str | None = None,
        parallel_runs: int | None = None,
    ) -> None:
        if parallel_runs is not None and (
            isinstance(parallel_runs, bool) or not isinstance(parallel_runs, int) or parallel_runs < 1
        ):
            raise InputError(f"parallel_runs must be a positive int or None, got {parallel_runs!r}")
        if fused_pooling is not None:
            warnings.warn(
                "Encoder(fused_pooling=...) is deprecated and will be removed in the next release; "
                "pass native=... (same values)",
                DeprecationWarning,
                stacklevel=2,
            )
            if native != "auto" and native != fused_pooling:
                raise InputError(
                    f"native={native!r} and fused_pooling={fused_pooling!r} disagree; pass native only"
                )
            native = fused_pooling
        self.path = Path(path)
        self.manifest: Manifest = read_manifest(self.path)
        m = self.manifest
        if m.task != "embedding":
            raise ArtifactError(
                f"{self.path} is an export of task {m.task!r}, not an embedding model: "
                f"load it with embedrt.{CLASS_OF_TASK.get(m.task, 'CrossEncoder')}"
            )
        variant_of(m, variant)
        self.variant = variant
        self.truncate_dim = self._check_truncate_dim(truncate_dim)
        if max_batch_tokens is not None and (
            isinstance(max_batch_tokens, bool)
            or not isinstance(max_batch_tokens, int)
            or max_batch_tokens <= 0
        ):
            raise InputError(f"max_batch_tokens must be a positive int or None, got {max_batch_tokens!r}")
        self.max_batch_tokens = max_batch_tokens
        self._max_seq_length_limit = m.max_seq_length
        self.tokenizer = load_tokenizer(m, verify_checksum)
        self.input_names: list[str] = list(m.inputs)
        self.prompts: dict[str, str] = dict(m.prompts)
        self.default_prompt_name: str | None = m.default_prompt_name
        self.similarity_fn_name: str = m.similarity_fn_name
        if self.similarity_fn_name not in SIMILARITY_FUNCTIONS:
            raise ArtifactError(
                f"{self.path}: field 'similarity_fn_name' is {self.similarity_fn_name!r}; "
                f"valid choices: {sorted(SIMILARITY_FUNCTIONS)}"
            )
        self._dim = int(m.dim)
        self._normalized_output = m.normalize
        graph = open_graph(
            self.path,
            m,
            variant,
            outputs={OUTPUT_NAME: self._dim},
            device=device,
            providers=providers,
            intra_op_threads=intra_op_threads,
            verify_checksum=verify_checksum,
            tensorrt=tensorrt,
            device_id=device_id,
            session_options=session_options,
            native=native,
            max_batch_tokens=max_batch_tokens,
        )
        self._session = graph.session
        #: The most rows per graph run (TensorRT's profile maximum); larger batches are split.
        self._row_cap = graph.max_rows
        self.device: Device = graph.device
        self.active_providers: list[str] = graph.active_providers
        #: Which graph runs (the native one or the standard one) and why.
        self.graph_status: GraphStatus = graph.status
        #: True when the variant's native graph (``ai.embedrt`` ops) runs; see graph_status.
        self.native: bool = graph.status.native
        #: How many graph runs of one encode call go at once (see the ``parallel_runs`` argument).
        self.parallel_runs: int = self._plan_parallel_runs(parallel_runs, intra_op_threads, session_options)
        # NOTE: the second session opens at the first call with more than one run, so that an encoder that
        # only ever sees single texts (a server's one-text requests) pays neither its memory nor its start
        self._graph, self._verify_checksum = graph, verify_checksum
        self._parallel_session: ort.InferenceSession | None = None
        self._parallel_lock = threading.Lock()
        self._run_pool: ThreadPoolExecutor | None = None
        self._calls = 0  # encode calls running now, from any thread (guarded by _parallel_lock)

    def _runners(self) -> ThreadPoolExecutor:
        """The threads that run graph runs in parallel, started once (their sessions are thread-safe)."""
        if self._run_pool is None:
            with self._parallel_lock:
                if self._run_pool is None:
                    self._run_pool = ThreadPoolExecutor(self.parallel_runs, thread_name_prefix="embedrt-run")
        return self._run_pool

    def _parallel(self) -> ort.InferenceSession:
        """The session the runs in parallel share, opened once (``open_parallel_session``)."""
        if self._parallel_session is None:
            with self._parallel_lock:
                if self._parallel_session is None:
                    self._parallel_session = open_parallel_session(self._graph, self._verify_checksum)
        return self._parallel_session

    def _plan_parallel_runs(
        self, asked: int | None, intra_op_threads: int | None, session_options: ort.SessionOptions | None
    ) -> int:
        if asked is not None:
            if asked > 1 and self.device is not Device.CPU:
                raise InputError(
                    f"parallel_runs={asked} runs on the CPU only; this encoder is on {self.device.value}"
                )
            return asked
        if self.device is not Device.CPU or session_options is not None:
            return 1
        if variant_of(self.manifest, self.variant).precision != "int8":
            # NOTE: fp32 gained less and would hold the packed weights twice (docs/performance.md, "Graph runs
            # in parallel")
            return 1
        return max(1, intra_op_threads or available_cores())

    @property
    def fused_pooling(self) -> bool:
        """Deprecated: ``native``."""
        warnings.warn(
            "Encoder.fused_pooling is deprecated; use Encoder.native", DeprecationWarning, stacklevel=2
        )
        return self.native

    @property
    def fused_pooling_status(self) -> str:
        """Deprecated: ``str(graph_status)``."""
        warnings.warn(
            "Encoder.fused_pooling_status is deprecated; use Encoder.graph_status",
            DeprecationWarning,
            stacklevel=2,
        )
        return str(self.graph_status)

    # ------------------------------------------------------------------ properties
    def get_sentence_embedding_dimension(self) -> int:
        """Output dimension, after the default ``truncate_dim`` if one is set."""
        return min(self._dim, self.truncate_dim) if self.truncate_dim else self._dim

    def _check_truncate_dim(self, truncate_dim: Any) -> int | None:
        if truncate_dim is None:
            return None
        if isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int) or truncate_dim <= 0:
            raise InputError(f"truncate_dim must be a positive int, got {truncate_dim!r}")
        return truncate_dim

    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        if prompt is not None:
            if not isinstance(prompt, str):
                raise InputError(f"prompt must be a str, got {type(prompt).__name__}")
            check_text(prompt, "prompt")
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

    # ------------------------------------------------------------------ encode
    @inputs_alias
    def encode(
        self,
        sentences: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str | None = "sentence_embedding",
        precision: Precision | str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        max_batch_tokens: int | None = None,
        return_token_counts: bool = False,
        long_text: str = "truncate",
        chunk_stride: int | None = None,
        pool: Any = None,
        chunk_size: int | None = None,
    ) -> Any:
        """Embed texts; the same arguments, shapes and numbers as ``SentenceTransformer.encode``.

        ``inputs=`` (sentence-transformers 5.7's name for the texts) is accepted for ``sentences``.

        Args:
            sentences: a str (gives ``(D,)``) or a list of str (gives ``(N, D)``; an empty list gives ``(0,
            D)``).
            prompt_name: key of ``self.prompts`` to prepend; ignored when ``prompt`` is given.
            prompt: a literal prompt to prepend.
            batch_size: rows per graph run.
            show_progress_bar: show a tqdm bar (if tqdm is installed).
            output_value: only ``"sentence_embedding"``; token embeddings are not part of the one-graph
            export.
            precision: ``float32``, ``int8``, ``uint8``, ``binary`` or ``ubinary`` (``quantize_embeddings``).
            convert_to_numpy: False returns a list of 1-D arrays, as sentence-transformers returns a list.
            convert_to_tensor: not supported (the runtime has no torch); raises InputError when True.
            device: accepted for signature parity; must be None or this encoder's device.
            normalize_embeddings: L2-normalise the (possibly truncated) output.
            truncate_dim: keep the first ``truncate_dim`` dimensions (Matryoshka), re-normalised when the
                model ends in Normalize.
            max_batch_tokens: cap rows x padded length per batch; None uses the Encoder's default.
            return_token_counts: also return each text's tokens before truncation (``count_tokens``): a count
                above ``max_seq_length`` means the text was cut (or, with ``long_text="chunk"``, chunked).
            long_text: ``"truncate"`` (sentence-transformers' behaviour) or ``"chunk"``: a text longer than
                ``max_seq_length`` is embedded as overlapping windows, pooled into one vector (the windows'
                token-weighted mean, then the model's normalisation). Texts that fit are unchanged, bit for
                bit.
            chunk_stride: content tokens between the starts of consecutive windows (default: three quarters
                of a window); only with ``long_text="chunk"``.
            pool, chunk_size: accepted for signature parity; must be None. sentence-transformers'
                multi-process pool has no counterpart: one encoder already runs its graph on every core.

        Returns:
            float32 ``(N, D)`` (or int8/uint8 for quantized precisions), ``(D,)`` for a single str; with
            ``return_token_counts``, the tuple ``(embeddings, counts)`` (int64 ``(N,)``, or an int).

        Raises:
            InputError: None, bytes, a non-str element, a nested list, or an invalid argument.
        """
        texts, single = _validate_texts(sentences)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        if output_value != "sentence_embedding":
            raise InputError(
                f"output_value {output_value!r} is not supported; valid choices: 'sentence_embedding'"
            )
        if convert_to_tensor:
            raise InputError(
                "convert_to_tensor=True needs torch, which the runtime does not use; "
                "use convert_to_numpy=True"
            )
        if device is not None and Device.parse(device, "device") not in (self.device, Device.AUTO):
            raise InputError(
                f"this Encoder runs on {self.device.value!r}; create another Encoder for {device!r}"
            )
        check_no_pool(pool, chunk_size, "Encoder")
        precision = Precision.parse(precision, "precision")
        truncate_dim = (
            self._check_truncate_dim(truncate_dim) if truncate_dim is not None else self.truncate_dim
        )
        budget = max_batch_tokens if max_batch_tokens is not None else self.max_batch_tokens
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
            raise InputError(f"max_batch_tokens must be a positive int, got {budget!r}")
        prompt_text = self._resolve_prompt(prompt, prompt_name)
        long_text = lt.check_mode(long_text)
        if chunk_stride is not None and long_text != "chunk":
            raise InputError("chunk_stride only applies with long_text='chunk'")

        out_dim = min(self._dim, truncate_dim) if truncate_dim else self._dim
        counts = np.zeros(0, dtype=np.int64)
        if not texts:
            emb = np.zeros((0, out_dim), dtype=np.float32)
        else:
            full = None
            if return_token_counts or long_text == "chunk":
                full = self.tokenizer.encode_full([prompt_text + t for t in texts] if prompt_text else texts)
                counts = np.fromiter((len(r) for r in full), dtype=np.int64, count=len(full))
            emb, _ = self._embed(texts, prompt_text, batch_size, budget, show_progress_bar)
            if long_text == "chunk":
                self._chunk_long(emb, full, prompt_text, chunk_stride, batch_size, budget)
            emb = self.truncate_embeddings(emb, truncate_dim, normalize_embeddings)
        if precision is not Precision.FLOAT32:
            emb = quantize_embeddings(emb, precision)
        if single:
            emb = emb[0]
        elif not convert_to_numpy:
            emb = list(emb)
        if return_token_counts:
            return emb, (int(counts[0]) if single else counts)
        return emb

    def count_tokens(
        self, sentences: str | Sequence[str], prompt_name: str | None = None, prompt: str | None = None
    ) -> Any:
        """Tokens of each text as ``encode`` would feed it, before truncation: the prompt (the default one
        too) and special tokens included. A count above ``max_seq_length`` means ``encode`` cuts the text.

        Returns:
            int64 ``(N,)`` for a list, an int for a single str.

        Raises:
            InputError: as ``encode`` for bad texts or prompt names.
        """
        texts, single = _validate_texts(sentences)
        prompt_text = self._resolve_prompt(prompt, prompt_name)
        rows = self.tokenizer.encode_full([prompt_text + t for t in texts] if prompt_text else texts)
        counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        return int(counts[0]) if single else counts

    def _chunk_long(
        self,
        emb: np.ndarray,
        full: list[list[int]],
        prompt: str | None,
        chunk_stride: int | None,
        batch_size: int,
        budget: int | None,
    ) -> None:
        """Replace, in place, the rows of texts longer than the window by their pooled windows."""
        limit = self.max_seq_length
        long_rows = [i for i, r in enumerate(full) if len(r) > limit]
        if not long_rows:
            return
        tok = self.tokenizer
        n_head = tok.prompt_length(prompt) if prompt else tok.n_prefix
        width = lt.window_width(limit, n_head, tok.n_suffix)
        stride = lt.check_stride(chunk_stride, width)
        rows: list[list[int]] = []
        plan: list[tuple[int, list[int], int]] = []  # (text, weights, first extra row)
        for i in long_rows:
            wins, weights = lt.windows(full[i], n_head, tok.n_suffix, width, stride)
            plan.append((i, weights, len(rows)))
            rows.extend(wins[1:])  # NOTE: window 0 is the truncated row, already embedded
        extra = self._run_tokenized(
            TokenizedTexts(rows, self._tokenize([], prompt).prompt_length), batch_size, budget, None
        )
        for i, weights, at in plan:
            vectors = np.vstack([emb[i : i + 1], extra[at : at + len(weights) - 1]])
            emb[i] = lt.pool_windows(vectors, weights, self._normalized_output)

    @inputs_alias
    def encode_query(self, sentences: str | Sequence[str], **kwargs: Any) -> np.ndarray | list[np.ndarray]:
        """``encode`` with the ``"query"`` prompt when the model has one (as sentence-transformers)."""
        if kwargs.get("prompt_name") is None and kwargs.get("prompt") is None and "query" in self.prompts:
            kwargs["prompt_name"] = "query"
        return self.encode(sentences, **kwargs)

    @inputs_alias
    def encode_document(self, sentences: str | Sequence[str], **kwargs: Any) -> np.ndarray | list[np.ndarray]:
        """``encode`` with the first of the ``"document"``/``"passage"``/``"corpus"`` prompts the model
        has."""
        if kwargs.get("prompt_name") is None and kwargs.get("prompt") is None:
            for name in ("document", "passage", "corpus"):
                if name in self.prompts:
                    kwargs["prompt_name"] = name
                    break
        return self.encode(sentences, **kwargs)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Pairwise similarity matrix with the model's ``similarity_fn_name`` (cosine by default)."""
        return SIMILARITY_FUNCTIONS[self.similarity_fn_name](embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Row-by-row similarity of two equally long matrices."""
        a2 = np.atleast_2d(np.asarray(embeddings1, np.float32))
        b2 = np.atleast_2d(np.asarray(embeddings2, np.float32))
        if a2.shape != b2.shape:
            raise InputError(f"shapes differ: {a2.shape} vs {b2.shape}")
        fn = SIMILARITY_FUNCTIONS[self.similarity_fn_name]
        return np.array([fn(x, y)[0, 0] for x, y in zip(a2, b2, strict=True)], dtype=np.float32)

    # ------------------------------------------------------------------ internals
    def truncate_embeddings(
        self, embeddings: np.ndarray, truncate_dim: int | None, normalize_embeddings: bool = False
    ) -> np.ndarray:
        """Encode's output rule on rows ``embeddings`` (from ``encode_tokenized``): keep the first
        ``truncate_dim`` dimensions (Matryoshka), then L2-normalise when asked, or when the cut vectors of a
        model that ends in Normalize must stay unit length.

        Args:
            embeddings: float32 ``(N, D)``.
            truncate_dim: dimensions to keep; None (or ``>= D``) keeps them all.
            normalize_embeddings: L2-normalise the (possibly cut) rows.

        Returns:
            float32 ``(N, min(D, truncate_dim))``; ``embeddings`` itself when nothing changes.

        Raises:
            InputError: ``truncate_dim`` is not a positive int.
        """
        truncate_dim = self._check_truncate_dim(truncate_dim)
        emb = embeddings
        if truncate_dim and truncate_dim < emb.shape[1]:
            emb = np.ascontiguousarray(emb[:, :truncate_dim])
            # NOTE: a model that ends in Normalize promises unit vectors, and a truncated unit vector is not
            # one; re-normalise so dot product stays cosine. sentence-transformers leaves the cut vector as
            # is;
            # ST's encode(truncate_dim=k, normalize_embeddings=True) equals ours.
            normalize_embeddings = normalize_embeddings or self._normalized_output
        if normalize_embeddings:
            emb = normalize(emb).astype(np.float32, copy=False)
        return emb

    def tokenize(
        self, sentences: str | Sequence[str], prompt_name: str | None = None, prompt: str | None = None
    ) -> TokenizedTexts:
        """The first half of ``encode``: token ids of each text, as ``encode`` would run them.

        ``encode(texts)`` equals ``truncate_embeddings(encode_tokenized(tokenize(texts)), ...)``; servers call
        the halves apart to batch the texts of many requests, to bound batches by tokens and to report usage.

        Args:
            sentences: a str or a list of str.
            prompt_name: key of ``self.prompts`` to prepend (default: the model's default prompt, if any).
            prompt: a literal prompt to prepend; overrides ``prompt_name``.

        Returns:
            ``TokenizedTexts``: ids per text (special tokens and prompt included, truncated at
            ``max_seq_length``, unpadded) and the prompt length the graph needs.

        Raises:
            InputError: None, bytes, a non-str element, a nested list, an unknown prompt_name.
        """
        texts, _ = _validate_texts(sentences)
        return self._tokenize(texts, self._resolve_prompt(prompt, prompt_name))

    def encode_tokenized(
        self, tokens: TokenizedTexts, batch_size: int = 32, max_batch_tokens: int | None = None
    ) -> np.ndarray:
        """The second half of ``encode``: run the graph on ``tokenize``'s output.

        Args:
            tokens: from ``tokenize`` (or ``TokenizedTexts.concat`` of several with the same prompt length).
            batch_size: rows per graph run.
            max_batch_tokens: cap rows x padded length per graph run; None uses the Encoder's default.

        Returns:
            float32 ``(N, D)``, before ``truncate_embeddings``; ``(0, D)`` for no texts.

        Raises:
            InputError: an invalid batch_size or max_batch_tokens.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        budget = max_batch_tokens if max_batch_tokens is not None else self.max_batch_tokens
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0):
            raise InputError(f"max_batch_tokens must be a positive int, got {budget!r}")
        if not isinstance(tokens, TokenizedTexts):
            raise InputError(
                f"tokens must be the TokenizedTexts of Encoder.tokenize, got {type(tokens).__name__}"
            )
        if not tokens.ids:
            return np.zeros((0, self._dim), dtype=np.float32)
        return self._run_tokenized(tokens, batch_size, budget, None)

    def _tokenize(self, texts: list[str], prompt: str | None) -> TokenizedTexts:
        """Token ids of ``texts`` with ``prompt`` prepended, and the prompt length the graph takes."""
        if prompt:
            texts = [prompt + t for t in texts]
        prompt_length = None
        if "prompt_length" in self.input_names:
            prompt_length = self.tokenizer.prompt_length(prompt) if prompt else 0
        return TokenizedTexts(self.tokenizer.encode_ids(texts), prompt_length)

    def _embed(
        self,
        texts: list[str],
        prompt: str | None,
        batch_size: int,
        budget: int | None,
        show_progress_bar: bool | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of ``texts`` (with ``prompt`` prepended) and their token counts."""
        tokens = self._tokenize(texts, prompt)
        return self._run_tokenized(tokens, batch_size, budget, show_progress_bar), tokens.lengths

    def _run_tokenized(
        self, tokens: TokenizedTexts, batch_size: int, budget: int | None, show_progress_bar: bool | None
    ) -> np.ndarray:
        rows = tokens.ids
        prompt_feed = None
        if tokens.prompt_length is not None:
            prompt_feed = np.array([tokens.prompt_length], dtype=np.int64)
        out = np.empty((len(rows), self._dim), dtype=np.float32)
        with self._parallel_lock:
            self._calls += 1
            concurrent = self._calls > 1
        try:
            if len(rows) == 1:  # NOTE: single-text fast path: no sorting, no index bookkeeping
                ids, mask = self.tokenizer.pad(rows)
                if concurrent and self.parallel_runs > 1:
                    # NOTE: another call's runs hold the run threads; the first session's threads on top of
                    # them would ask for twice the cores (docs/serving.md, "Two batches at once")
                    session = self._parallel()
                    out[:] = self._runners().submit(self._run, ids, mask, prompt_feed, session).result()
                else:
                    out[:] = self._run(ids, mask, prompt_feed)
                return out
            return self._run_runs(tokens, prompt_feed, out, batch_size, budget, show_progress_bar)
        finally:
            with self._parallel_lock:
                self._calls -= 1

    def _run_runs(
        self,
        tokens: TokenizedTexts,
        prompt_feed: np.ndarray | None,
        out: np.ndarray,
        batch_size: int,
        budget: int | None,
        show_progress_bar: bool | None,
    ) -> np.ndarray:
        rows, rows_per_run = tokens.ids, min(batch_size, self._row_cap or batch_size)

        def run(idx: np.ndarray, session: Any = None) -> None:
            ids, mask = self.tokenizer.pad([rows[i] for i in idx])
            out[idx] = self._run(ids, mask, prompt_feed, session)

        run_batches(
            tokens.lengths,
            rows_per_run,
            budget,
            run,
            show_progress_bar,
            desc="Encoding",
            unit="text",
            parallel_run=lambda idx: run(idx, self._parallel()),
            workers=self.parallel_runs,
            pool=self._runners,
        )
        return out

    def _run(
        self, ids: np.ndarray, mask: np.ndarray, prompt_length: np.ndarray | None, session: Any = None
    ) -> np.ndarray:
        # NOTE: plain run() on every provider. IO binding with bind_cpu_input made the same host-to-device and
        # device-to-host copies as run() (inputs are 2 x B x T int64, the output B x dim fp32: tens of KB
        # against milliseconds of transformer work), so it saved nothing; see docs/gpu.md (item 8).
        feed = {"input_ids": ids, "attention_mask": mask}
        if prompt_length is not None:
            feed["prompt_length"] = prompt_length
        return (session if session is not None else self._session).run([OUTPUT_NAME], feed)[0]

    def __repr__(self) -> str:
        return (
            f"Encoder(path={str(self.path)!r}, variant={self.variant!r}, device={self.device.value!r}, "
            f"dim={self._dim}, max_seq_length={self.max_seq_length}, providers={self.active_providers})"
        )
