"""The one load path of an export's graph, for every encoder: manifest entry -> native-graph choice -> probe
check -> session -> provider check -> graph-against-manifest check. Also the checked tokenizer load.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

from ..errors import ArtifactError, InputError, NativeOpsError
from ..manifest import CROSS_ENCODER, EMBEDDING, MULTI_VECTOR, SPARSE, Manifest, Variant, sha256_file
from ..modes import Device
from . import native as native_ops
from . import providers as prov
from .tokenize import TextTokenizer

#: The embedrt class that loads each task's exports (for the error that names the right one).
CLASS_OF_TASK = {
    EMBEDDING: "Encoder",
    CROSS_ENCODER: "CrossEncoder",
    SPARSE: "SparseEncoder",
    MULTI_VECTOR: "MultiVectorEncoder",
}


@dataclass
class GraphStatus:
    """Which graph of a variant runs, and why.

    ``str()`` reads ``native: libembedrt_ops.so, model.packed.onnx, probe max abs diff 3.6e-07`` or
    ``standard: model.onnx (native graph not used: ...)``.
    """

    #: A graph with native ops runs.
    native: bool
    #: File name of the graph that runs.
    graph: str
    #: Why the standard graph runs ("" when the native one does).
    reason: str = ""
    #: The custom-op library, when the native graph runs.
    library: str | None = None
    #: Max abs diff of the native graph against the standard one on the export's probe.
    probe_max_abs_diff: float | None = None
    #: Which CPU kernel paths the native ops take (runtime.native's report; {} when unknown).
    kernels: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.native:
            isa = f", {self.kernels['isa']} kernels" if self.kernels.get("isa") else ""
            return (
                f"native: {self.library}, {self.graph}, probe max abs diff {self.probe_max_abs_diff:.1e}{isa}"
            )
        return f"standard: {self.graph} (native graph not used: {self.reason})"


@dataclass
class OpenGraph:
    """A loaded session, the device it really runs on, and which graph it is."""

    session: ort.InferenceSession
    device: Device
    active_providers: list[str]
    model_path: Path
    status: GraphStatus
    plan: prov.SessionPlan
    #: The most rows one run may have (TensorRT's profile maximum), None for no cap.
    max_rows: int | None = None
    #: The file the session runs, its manifest sha256, and the custom-op library it registers (None for the
    #: standard graph): what :func:`open_parallel_session` opens again.
    graph_path: Path | None = None
    graph_sha256: str | None = None
    library: Path | None = None


def check_file(path: Path, digest: str | None, verify_checksum: bool, what: str) -> None:
    """``path`` exists and, unless ``verify_checksum`` is False, matches its manifest sha256.

    Raises:
        ArtifactError: the file is missing or does not match.
    """
    if not path.is_file():
        raise ArtifactError(f"{what} is missing: {path}")
    if verify_checksum and digest:
        actual = sha256_file(path)
        if actual != digest:
            raise ArtifactError(
                f"sha256 mismatch for {path}: manifest says {digest}, file has {actual}; "
                "the file is corrupted or was replaced (re-export, or pass verify_checksum=False)"
            )


def load_tokenizer(
    manifest: Manifest, verify_checksum: bool = True, cls: type[TextTokenizer] = TextTokenizer
) -> TextTokenizer:
    """The export's tokenizer, checked against its sha256 before it is parsed.

    A format-1 export has no tokenizer sha256: it loads unchecked, with a warning.

    Raises:
        ArtifactError: the file is missing, corrupted or does not match.
    """
    tok = manifest.tokenizer
    path = manifest.file(tok.file)
    if tok.sha256 is None and verify_checksum:
        warnings.warn(
            f"{path}: this format-{manifest.format_version} export lists no sha256 for its tokenizer, "
            "so it is loaded unchecked; re-export to check it",
            UserWarning,
            stacklevel=3,
        )
    check_file(path, tok.sha256, verify_checksum, "tokenizer file")
    return cls(path, manifest.max_seq_length, tok.pad_token_id)


class MaxSeqLength:
    """The ``max_seq_length`` property of every loaded model: read from and set on its ``tokenizer``, within
    the export's own ``max_seq_length`` (``_max_seq_length_limit``, set by the model's ``__init__``)."""

    tokenizer: TextTokenizer
    _max_seq_length_limit: int

    @property
    def max_seq_length(self) -> int:
        """Longest input in tokens, special tokens included; longer inputs are truncated (a cross-encoder's
        pairs longest-first)."""
        return self.tokenizer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 1 <= value <= self._max_seq_length_limit
        ):
            raise InputError(
                f"max_seq_length must be an int in [1, {self._max_seq_length_limit}], got {value!r}"
            )
        self.tokenizer.set_max_seq_length(value)


def variant_of(manifest: Manifest, variant: Any) -> Variant:
    """Raises InputError for a variant the export does not have."""
    if not isinstance(variant, str) or variant not in manifest.variants:
        raise InputError(f"unknown variant {variant!r}; this export has: {sorted(manifest.variants)}")
    return manifest.variants[variant]


def open_graph(
    export_dir: str | os.PathLike,
    manifest: Manifest,
    variant: str,
    *,
    outputs: dict[str, int | None],
    device: Device | str = "auto",
    providers: list[Any] | None = None,
    intra_op_threads: int | None = None,
    verify_checksum: bool = True,
    tensorrt: prov.TensorRTOptions | None = None,
    device_id: int = 0,
    session_options: ort.SessionOptions | None = None,
    native: bool | str = "auto",
    max_batch_tokens: int | None = None,
) -> OpenGraph:
    """Load variant ``variant`` of the export on the requested device, its native graph when it can.

    Args:
        export_dir: the export directory.
        manifest: its manifest, read with ``read_manifest`` (every path already confined to the directory).
        variant: which graph to load (``"fp32"``, ...).
        outputs: the outputs the caller runs, each with its width (last dimension), or None for a 1-D output;
            the graph must have them.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"tensorrt"``; ignored when ``providers`` is given.
        providers: an explicit onnxruntime provider list.
        intra_op_threads: onnxruntime intra-op threads.
        verify_checksum: compare each file's sha256 with the manifest when it is read; a file that is not
            loaded (the standard graph while a native one runs on the CPU) is not read.
        tensorrt: TensorRT options (shape profiles come from ``max_seq_length`` and the graph inputs).
        device_id: GPU ordinal.
        session_options: replaces the default session options.
        native: ``"auto"`` runs the variant's native graph when the library is built and the graph agrees with
            the standard one on the probe; True requires it; False never uses it.
        max_batch_tokens: the token budget batches are cut to (sizes TensorRT's opt shape).

    Returns:
        The session, the device and the providers it actually got, and a :class:`GraphStatus`.

    Raises:
        InputError: an unknown variant, device or ``native`` value.
        ArtifactError: a missing or corrupted graph file, a sha256 mismatch, or a graph whose inputs or
            outputs disagree with the manifest.
        ProviderUnavailableError: a requested accelerator is missing, or the session fell back from it.
        NativeOpsError: ``native=True`` and the native graph is missing, fails, or disagrees on the probe.
    """
    export_dir = Path(export_dir)
    entry = variant_of(manifest, variant)
    native_ops.check_request(native)
    model_path = export_dir / entry.file
    if not model_path.is_file():
        raise ArtifactError(f"graph file for variant {variant!r} is missing: {model_path}")
    plan = prov.plan_session(
        device,
        providers,
        intra_op_threads=intra_op_threads,
        user_options=session_options,
        max_seq_length=manifest.max_seq_length,
        input_names=list(manifest.inputs),
        tensorrt=tensorrt,
        model_path=model_path,
        sha256=entry.sha256,
        device_id=device_id,
        max_batch_tokens=max_batch_tokens,
    )
    choice, reason = native_ops.resolve(
        native,
        export_dir,
        entry,
        verify_checksum,
        user_options=session_options is not None,
        tensorrt=plan.device is Device.TENSORRT,
        cpu=plan.device is Device.CPU,
    )
    session, status = None, None
    graph_path, graph_sha256, library = model_path, entry.sha256, None
    if choice is not None:
        session, status = _open_native(
            choice, plan, native, model_path, entry, verify_checksum, next(iter(outputs))
        )
        reason = status.reason
        if session is not None:
            graph_path, library = choice.graph, choice.library
            graph_sha256 = choice.entry.sha256 if choice.entry is not None else None
    if session is None:
        check_file(model_path, entry.sha256, verify_checksum, f"graph file for variant {variant!r}")
        try:
            session = prov.open_session(model_path, plan)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises several untyped errors for bad files
            raise ArtifactError(f"onnxruntime could not load {model_path}: {e}") from e
        status = GraphStatus(False, model_path.name, reason)
    active = prov.check_session(session, plan)
    check_graph(session, manifest, Path(export_dir) / status.graph, outputs)
    return OpenGraph(
        session,
        plan.device,
        active,
        model_path,
        status,
        plan,
        plan.max_rows,
        graph_path,
        graph_sha256,
        library,
    )


def open_parallel_session(graph: OpenGraph, verify_checksum: bool = True) -> ort.InferenceSession:
    """A second session on the graph that ``graph`` runs, with one onnxruntime thread: several Python threads
    run it at once, one graph run each (onnxruntime's ``run`` is thread-safe and releases the GIL).

    Raises:
        ArtifactError: the graph file changed since ``graph`` was opened (sha256 mismatch) or does not load.
    """
    if graph.graph_path is None:
        raise ArtifactError("this graph cannot be opened again (no file)")
    check_file(graph.graph_path, graph.graph_sha256, verify_checksum, f"graph file {graph.graph_path.name}")
    so = prov.session_options(1)
    if graph.library is not None:
        native_ops.register(so, graph.library)
    try:
        return prov.open_session(graph.graph_path, graph.plan, so)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises several untyped errors for bad files
        raise ArtifactError(f"onnxruntime could not load {graph.graph_path}: {e}") from e


def _open_native(
    choice: native_ops.NativeChoice,
    plan: prov.SessionPlan,
    request: bool | str,
    model_path: Path,
    entry: Variant,
    verify_checksum: bool,
    output: str,
) -> tuple[ort.InferenceSession | None, GraphStatus]:
    """A session on the native graph, checked once on the export's probe; (None, status with the reason) to
    fall back to the standard graph.

    Raises:
        NativeOpsError: ``request`` is True and the native graph fails or disagrees.
    """
    try:
        so = plan.options()
        native_ops.register(so, choice.library)
        session = prov.open_session(choice.graph, plan, so)
        reference = None
        if session.get_providers()[0] != prov.CPU:
            # NOTE: the stored expected values come from the CPU provider; on a GPU, compare with the
            # standard graph on the same provider, so TF32 or kernel choices do not count as a mismatch.
            check_file(model_path, entry.sha256, verify_checksum, f"graph file for variant {entry.name!r}")
            reference = prov.open_session(model_path, plan, prov.session_options(plan.intra_op_threads))
        diff = native_ops.probe_difference(session, choice.probe, reference, output)
        atol = choice.entry.probe_atol if choice.entry is not None else native_ops.PROBE_ATOL
        if not diff <= atol:
            raise NativeOpsError(
                f"the native graph {choice.graph.name} differs from the standard graph on the "
                f"probe by {diff:.3e} > {atol:g}"
            )
    except NativeOpsError as e:
        if request is True:
            raise
        return None, GraphStatus(False, model_path.name, str(e))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises untyped errors
        if request is True:
            raise NativeOpsError(f"the native graph {choice.graph} failed: {e}") from e
        return None, GraphStatus(False, model_path.name, f"the native graph {choice.graph.name} failed: {e}")
    library = choice.library.name if choice.library is not None else None
    return session, GraphStatus(
        True, choice.graph.name, "", library, diff, native_ops.kernel_report_of(choice.library)
    )


def check_graph(
    session: ort.InferenceSession, manifest: Manifest, path: Path, outputs: dict[str, int | None]
) -> None:
    """The session's graph against the manifest: the same input names, and each output the caller runs with
    the width the manifest gives (``dim``, ``num_labels``).

    Raises:
        ArtifactError: they disagree (the message names the manifest field).
    """
    graph_inputs = [i.name for i in session.get_inputs()]
    if sorted(graph_inputs) != sorted(manifest.inputs):
        raise ArtifactError(
            f"{path.name} has inputs {graph_inputs}, but the manifest field 'inputs' says "
            f"{list(manifest.inputs)}"
        )
    graph_outputs = {o.name: o.shape for o in session.get_outputs()}
    for name, width in outputs.items():
        if name not in graph_outputs:
            raise ArtifactError(f"{path.name} has no output {name!r} (its outputs: {sorted(graph_outputs)})")
        shape = graph_outputs[name]
        field_name = "num_labels" if manifest.task == CROSS_ENCODER else "dim"
        declared = manifest.outputs.get(name) if manifest.task in (SPARSE, MULTI_VECTOR) else None
        if declared is not None:
            # NOTE: sparse and multi-vector graphs declare every output's shape in the manifest (a 2-D mask,
            # 3-D token vectors): the rank must match, and the last axis the width the caller reads.
            if len(shape) != len(declared) or (
                width is not None and isinstance(shape[-1], int) and shape[-1] != width
            ):
                raise ArtifactError(
                    f"{path.name} output {name!r} has shape {shape}, but the manifest field "
                    f"'outputs.{name}' says {list(declared)} ('{field_name}' {manifest.dim})"
                )
            continue
        if width is None:
            if len(shape) != 1:
                raise ArtifactError(
                    f"{path.name} output {name!r} has shape {shape}, but the manifest field "
                    f"'{field_name}' says one value per row"
                )
        elif len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != width):
            raise ArtifactError(
                f"{path.name} output {name!r} has shape {shape}, but the manifest field "
                f"'{field_name}' says {width}"
            )
