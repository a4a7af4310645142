"""Open one graph of an export: sha256 check, provider choice, session, and a check of what it really got.

``embedrt.CrossEncoder`` loads its graph through here. ``Encoder`` still holds the same steps inline (they
predate this module); it can call :func:`open_graph` once the branches that edit ``Encoder.__init__`` have
merged, so the two cannot drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from ..errors import ArtifactError, InputError, ProviderUnavailableError
from ..manifest import sha256_file
from ..modes import Device
from . import providers as prov


@dataclass
class OpenGraph:
    """A loaded session and the device it really runs on."""

    session: ort.InferenceSession
    device: Device
    active_providers: list[str]
    model_path: Path
    #: The most rows one run may have (TensorRT's profile maximum), None for no cap.
    max_rows: int | None = None


def default_session_options(intra_op_threads: int | None) -> ort.SessionOptions:
    """Full graph optimisation (onnxruntime fuses attention, SkipLayerNorm, Gelu at load), thread count.

    Raises:
        InputError: a negative or non-int thread count.
    """
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads is not None:
        if (
            isinstance(intra_op_threads, bool)
            or not isinstance(intra_op_threads, int)
            or intra_op_threads < 0
        ):
            raise InputError(f"intra_op_threads must be a non-negative int, got {intra_op_threads!r}")
        so.intra_op_num_threads = intra_op_threads
    return so


def open_graph(
    export_dir: str | os.PathLike,
    manifest: dict[str, Any],
    variant: str,
    *,
    device: Device | str = "auto",
    providers: list[Any] | None = None,
    intra_op_threads: int | None = None,
    verify_checksum: bool = True,
    tensorrt: prov.TensorRTOptions | None = None,
    device_id: int = 0,
    session_options: ort.SessionOptions | None = None,
    max_batch_tokens: int | None = None,
) -> OpenGraph:
    """Load ``manifest["variants"][variant]`` from ``export_dir`` on the requested device.

    Args:
        export_dir: the export directory.
        manifest: its manifest, already read with ``read_manifest``.
        variant: which graph to load (``"fp32"``, ...).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"tensorrt"``; ignored when ``providers`` is given.
        providers: an explicit onnxruntime provider list.
        intra_op_threads: onnxruntime intra-op threads.
        verify_checksum: compare the graph's sha256 with the manifest.
        tensorrt: TensorRT options (shape profiles come from ``max_seq_length`` and the graph inputs).
        device_id: GPU ordinal.
        session_options: replaces the default session options.
        max_batch_tokens: the token budget batches are cut to (sizes TensorRT's opt shape).

    Returns:
        The session, the device and the providers the session actually got.

    Raises:
        InputError: an unknown variant or device.
        ArtifactError: a missing or corrupted graph file, or a sha256 mismatch.
        ProviderUnavailableError: a requested accelerator is missing, or the session fell back from it.
        InputError: a TensorRT cache directory that cannot be written.
    """
    export_dir = Path(export_dir)
    variants = manifest["variants"]
    if not isinstance(variant, str) or variant not in variants:
        raise InputError(f"unknown variant {variant!r}; this export has: {sorted(variants)}")
    entry = variants[variant]
    model_path = export_dir / entry["file"]
    if not model_path.is_file():
        raise ArtifactError(f"graph file for variant {variant!r} is missing: {model_path}")
    if verify_checksum and entry.get("sha256"):
        digest = sha256_file(model_path)
        if digest != entry["sha256"]:
            raise ArtifactError(
                f"sha256 mismatch for {model_path}: manifest says {entry['sha256']}, file has {digest}; "
                "the file is corrupted or was replaced (re-export, or pass verify_checksum=False)"
            )
    available = ort.get_available_providers()
    if providers is not None:
        names = [p if isinstance(p, str) else p[0] for p in providers]
        missing = [n for n in names if n not in available]
        if missing:
            raise ProviderUnavailableError(f"providers {missing} are not available (available: {available})")
        chosen = Device.CUDA if any(n in (prov.CUDA, prov.TENSORRT) for n in names) else Device.CPU
        provider_list = list(providers)
    else:
        chosen, provider_list = prov.choose_providers(
            device,
            available,
            max_seq_length=int(manifest["max_seq_length"]),
            input_names=list(manifest["inputs"]),
            trt=tensorrt,
            trt_cache=prov.default_tensorrt_cache(prov.graph_key(model_path, entry.get("sha256"))),
            device_id=device_id,
            max_batch_tokens=max_batch_tokens,
        )
    so = session_options or default_session_options(intra_op_threads)
    try:
        session = prov.create_session(model_path, so, provider_list)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises several untyped errors for bad files
        raise ArtifactError(f"onnxruntime could not load {model_path}: {e}") from e
    active = session.get_providers()
    first = provider_list[0] if isinstance(provider_list[0], str) else provider_list[0][0]
    if providers is not None:
        if first not in active:
            raise ProviderUnavailableError(f"requested {first} but the session runs on {active}")
    else:
        prov.check_active(chosen, active)
    return OpenGraph(session, chosen, active, model_path, prov.row_cap(chosen, tensorrt))
