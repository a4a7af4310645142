"""``export_model``: resolve -> load -> trace -> verify -> fuse -> quantize -> write, atomically (the shared
skeleton of every exporter is ``staging.py``)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError, QualityGateError, VerificationError
from ..manifest import FORMAT_VERSION, sha256_file, write_manifest
from ..modes import Task
from ..runtime.native import PROBE_ATOL
from .gate import GateThresholds, gate_failures, measure_variant
from .graph import (
    DEFAULT_OPSET,
    build_graph_module,
    export_onnx,
    hf_model,
    inspect_model,
    load_sentence_transformer,
    position_limit,
    read_module_types,
)
from .quantize import Int8Config, convert_fp16, quantize_int8, smoothing_stats
from .resolve import resolve_model
from .staging import (
    Steps,
    check_target,
    eager_attention,
    finish,
    save_tokenizer,
    staging,
    versions,
    weights_sha256,
)
from .tasks import detect_task, exporter_for
from .verify import verify_export

MODEL_FILE = "model.onnx"
#: Variants export-model can add beside fp32, and the file each is written to.
VARIANT_FILES = {"int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}


#: The opsets an export is verified at: 13-20 export and verify (tiny BERT, every variant); below 13 the
#: tracer cannot express the models' dynamic slices, above 20 torch's TorchScript exporter stops.
SUPPORTED_OPSETS = range(13, 21)


def check_export_options(
    atol: Any, opset: Any, thresholds: GateThresholds | None, calibration: list[str] | None
) -> None:
    """Raises InputError for an option no export could honour, before any work.

    Args: as ``export_model``.
    """

    def finite(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    if not finite(atol) or atol < 0:
        raise InputError(f"atol must be a finite number >= 0, got {atol!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in SUPPORTED_OPSETS:
        raise InputError(
            f"opset must be an int from {SUPPORTED_OPSETS[0]} to {SUPPORTED_OPSETS[-1]}, got {opset!r}"
        )
    if thresholds is not None:
        for name in ("min_mean_cosine", "min_cosine"):
            value = getattr(thresholds, name)
            if not finite(value) or not -1 <= value <= 1:
                raise InputError(f"{name} must be a cosine, a number from -1 to 1, got {value!r}")
    if calibration is not None and not any(isinstance(t, str) and t.strip() for t in calibration):
        raise InputError("the calibration sentences hold no text; give real sentences, one per line")


def export_model(
    model: str,
    output: str | os.PathLike,
    *,
    force: bool = False,
    atol: float = 1e-5,
    opset: int = DEFAULT_OPSET,
    log: Callable[[str], None] | None = None,
    variants: tuple[str, ...] | list[str] = ("fp32",),
    int8: Int8Config | None = None,
    thresholds: GateThresholds | None = None,
    calibration: list[str] | None = None,
    eval_sts: str | None = None,
    optimize: bool = False,
    task: Task | str | None = None,
) -> dict[str, Any]:
    """Export a sentence-transformers model to one verified ONNX graph plus tokenizer and manifest.

    Args:
        model: local directory, hub id, or short name (``all-MiniLM-L6-v2``).
        output: target directory; written to a temporary sibling and renamed into place at the end.
        force: replace an existing target.
        atol: maximum abs diff allowed between the fp32 graph and ``SentenceTransformer.encode``.
        opset: ONNX opset.
        log: receives one line per step (the CLI passes ``print``).
        variants: ``fp32`` always, plus ``int8`` (per-token int8, CPU) and/or ``fp16`` (GPU providers).
        int8: the int8 scheme (default: every transformer Linear, no smoothing; see docs/quantization.md).
        thresholds: the quality gate for reduced-precision variants (mean cosine >= 0.99, min >= 0.95).
        calibration: real sentences for the gate (and for smoothing); default: a built-in sample.
        eval_sts: an STS file (score, s1, s2): Spearman of fp32 and of every variant goes into the manifest.
        optimize: also try onnxruntime's offline transformer fusions; kept only if verification still holds.
        task: ``"embedding"``, ``"cross-encoder"``, or None to read it from the model's configs
            (``export.tasks.detect_task``); tasks other than embedding go to their registered exporter.

    Returns:
        The manifest that was written.

    Raises:
        ModelNotFoundError, ModelLoadError, UnsupportedModelError, OutputExistsError, ExportError,
        VerificationError, QualityGateError. On any error nothing is left at ``output`` (and an existing one
        is untouched).
    """
    output = Path(output).expanduser().absolute()
    check_export_options(atol, opset, thresholds, calibration)
    extra = [v for v in dict.fromkeys(variants) if v != "fp32"]
    unknown = [v for v in extra if v not in VARIANT_FILES]
    if unknown:
        raise InputError(f"unknown variants {unknown}; valid choices: {['fp32', *VARIANT_FILES]}")
    thresholds = thresholds or GateThresholds()
    check_target(output, force)
    task = Task.parse(task, "task") if task is not None else detect_task(resolve_model(model).path)
    exporter = exporter_for(task)
    if exporter is not None:
        return exporter(
            model,
            output,
            force=force,
            atol=atol,
            opset=opset,
            log=log,
            variants=variants,
            optimize=optimize,
            eval_sts=eval_sts,
        )
    steps = Steps(log, total=6 + len(extra) + int(optimize))
    with steps.step("resolve", model):
        resolved = resolve_model(model)
        module_types = read_module_types(resolved.path)
        if not module_types:
            warnings.warn(
                f"{resolved.path} has no modules.json: treating it as a plain Hugging Face model "
                "with mean pooling, as sentence-transformers does",
                UserWarning,
                stacklevel=2,
            )
            if log:
                log("      warning: no modules.json, using mean pooling (as sentence-transformers does)")
        if log:
            log(f"      found {resolved.model_id} via {resolved.source} at {resolved.path}")
    with steps.step("load", "sentence-transformers reference"):
        st_model = load_sentence_transformer(resolved.path)
        spec = inspect_model(st_model, module_types, resolved.path)

    with staging(output) as tmp:
        with steps.step("trace", f"{spec.model_type}, pooling={'+'.join(p.value for p in spec.pooling)}"):
            import torch

            with eager_attention(hf_model(st_model)):
                graph = build_graph_module(st_model, spec)
                with torch.no_grad():
                    input_names = export_onnx(
                        graph,
                        st_model.tokenizer,
                        tmp / MODEL_FILE,
                        with_prompt_length=not spec.include_prompt,
                        dim=spec.dim,
                        opset=opset,
                    )
            tokenizer_entry = save_tokenizer(st_model, tmp)
            manifest = _manifest(
                resolved, spec, tokenizer_entry, input_names, opset, position_limit(hf_model(st_model))
            )
            manifest["variants"]["fp32"] = {
                "file": MODEL_FILE,
                "precision": "fp32",
                "sha256": sha256_file(tmp / MODEL_FILE),
                "batch_invariant": True,
            }
            write_manifest(tmp, manifest)
        with steps.step("verify", f"against SentenceTransformer.encode, atol={atol:g}"):
            figures = verify_export(tmp, st_model, "fp32")
            manifest["variants"]["fp32"]["verification"] = figures
            if log:
                log(
                    f"      max abs diff {figures['max_abs_diff']:.2e}, min cosine "
                    f"{figures['min_cosine']:.8f}, single vs batch "
                    f"{figures['single_vs_batch_max_abs_diff']:.2e} on {figures['n_texts']} probes"
                )
            worst = max(figures["max_abs_diff"], figures["single_max_abs_diff"])
            if not worst <= atol:  # NOTE: also catches NaN
                raise VerificationError(
                    f"fp32 graph differs from SentenceTransformer.encode by max abs {worst:.3e} > atol "
                    f"{atol:g} "
                    f"(worst text: {figures['worst_text']!r}); nothing was written"
                )
        if optimize:
            with steps.step("optimise", "onnxruntime transformer fusions, exact GELU"):
                _optimize(tmp, spec, st_model, manifest, atol, log)
        with steps.step("fuse", "pooling as the native ai.embedrt::MeanPoolNormalize op (model.fused.onnx)"):
            _fuse(tmp, st_model, spec, manifest, opset, log)
        if eval_sts:
            from ..evaluate import read_sts, sts_spearman
            from ..runtime.encoder import Encoder

            s1, s2, gold = read_sts(eval_sts)
            fp = Encoder(tmp, device="cpu", native=False)
            ref_st = sts_spearman(st_model.encode(s1), st_model.encode(s2), gold)
            manifest["variants"]["fp32"]["sts"] = {
                "file": str(eval_sts),
                "spearman": sts_spearman(fp.encode(s1), fp.encode(s2), gold),
                "sentence_transformers_spearman": ref_st,
            }
        for variant in extra:
            with steps.step(f"quantize {variant}", "build, then gate against fp32"):
                file = VARIANT_FILES[variant]
                if variant == "int8":
                    cfg = int8 or Int8Config(exclude_roles=())
                    feeds = _calibration_feeds(tmp, calibration) if cfg.smooth_alpha is not None else None
                    # NOTE: calibrated once, for model.int8.onnx and its native twin alike
                    smooth = smoothing_stats(tmp / MODEL_FILE, cfg, feeds)
                    scheme = quantize_int8(tmp / MODEL_FILE, tmp / file, cfg, smooth=smooth)
                else:
                    cfg16 = spec.model_config
                    scheme = convert_fp16(
                        tmp / MODEL_FILE,
                        tmp / file,
                        spec.model_type,
                        cfg16.get("num_attention_heads", 0),
                        cfg16.get("hidden_size", 0),
                    )
                entry = {
                    "file": file,
                    "precision": variant,
                    "sha256": sha256_file(tmp / file),
                    "scheme": scheme,
                    "batch_invariant": True,
                }
                manifest["variants"][variant] = entry
                write_manifest(tmp, manifest)
                baseline = manifest["variants"]["fp32"].get("sts", {}).get("spearman")
                figures = measure_variant(tmp, variant, calibration, eval_sts, baseline)
                entry["quality"] = figures
                entry["batch_invariant"] = figures["batch_invariance_min_cosine"] >= 0.99999
                entry["thresholds"] = {
                    "min_mean_cosine": thresholds.min_mean_cosine,
                    "min_cosine": thresholds.min_cosine,
                }
                if log:
                    sts = f", STS delta {figures['sts']['delta']:+.3f}" if "sts" in figures else ""
                    log(
                        f"      {variant}: mean cosine {figures['mean_cosine']:.5f}, "
                        f"min {figures['min_cosine']:.5f}, top-10 overlap {figures['top10_overlap']:.2f}, "
                        f"alone-vs-batch min cosine "
                        f"{figures['batch_invariance_min_cosine']:.7f}{sts}"
                    )
                failures = gate_failures(figures, thresholds)
                if failures:
                    raise QualityGateError(
                        f"variant {variant!r} refused by the quality gate: "
                        + "; ".join(failures)
                        + f" (mean cosine {figures['mean_cosine']:.5f}, "
                        f"min cosine {figures['min_cosine']:.5f}, over {figures['n_texts']} texts); "
                        "nothing was written"
                    )
                if variant == "int8":
                    _fuse_int8(tmp, manifest, cfg, smooth, log, calibration, eval_sts, thresholds)
                write_manifest(tmp, manifest)
        finish(steps, tmp, output, manifest)
    return manifest


def _optimize(tmp: Path, spec, st_model, manifest: dict[str, Any], atol: float, log) -> None:
    from .optimize import fuse_transformer

    cfg = spec.model_config
    plain = tmp / "model.plain.onnx"
    os.replace(tmp / MODEL_FILE, plain)
    try:
        fused = fuse_transformer(
            plain,
            tmp / MODEL_FILE,
            spec.model_type,
            cfg.get("num_attention_heads", 0),
            cfg.get("hidden_size", 0),
        )
        manifest["variants"]["fp32"]["sha256"] = sha256_file(tmp / MODEL_FILE)
        write_manifest(tmp, manifest)
        figures = verify_export(tmp, st_model, "fp32")
        ok = max(figures["max_abs_diff"], figures["single_max_abs_diff"]) <= atol
    except Exception as e:  # noqa: BLE001 - the optimizer is best-effort; the plain graph stays
        fused, figures, ok = {"error": f"{type(e).__name__}: {e}"}, None, False
    if ok:
        plain.unlink()
        manifest["variants"]["fp32"]["verification"] = figures
    else:
        os.replace(plain, tmp / MODEL_FILE)
        manifest["variants"]["fp32"]["sha256"] = sha256_file(tmp / MODEL_FILE)
    manifest["variants"]["fp32"]["optimization"] = {"fused_operators": fused, "kept": ok}
    write_manifest(tmp, manifest)
    if log:
        kept = "kept" if ok else "not kept (verification failed), standard graph stays"
        log(f"      fused {fused}; {kept}")


def _fuse(tmp: Path, st_model, spec, manifest: dict[str, Any], opset: int, log) -> None:
    from .fuse import write_fused

    # NOTE: traced with eager attention, as model.onnx was: the fused graph must differ only in its pooling
    # (under SDPA the trace adds IsNaN/Where guards and runtime shape arithmetic, and runs slower).
    with eager_attention(hf_model(st_model)):
        entry = write_fused(tmp, st_model, spec, opset, MODEL_FILE)
    if entry is None:
        if log:
            log(
                f"      pooling {'+'.join(p.value for p in spec.pooling)} has no fused op: model.onnx with "
                "packed Linears only"
            )
        packed = _pack(tmp, MODEL_FILE, st_model, spec, log)
        if packed is not None:
            # NOTE: the variant's native graph itself, CPU and AVX-512 only (see runtime.native)
            manifest["variants"]["fp32"]["native"] = {**packed, "cpu_only": True, "packed_only": True}
            write_manifest(tmp, manifest)
        return
    checked = _check_native(tmp, entry, "model.onnx", log)
    if checked is None:
        return
    manifest["variants"]["fp32"]["native"] = entry
    write_manifest(tmp, manifest)
    if log:
        log(f"      {entry['file']}: mode={entry['mode']}, normalize={entry['normalize']} ({checked})")
    packed = _pack(tmp, entry["file"], st_model, spec, log, probe=entry["probe"])
    if packed is not None:
        entry["packed"] = packed
        write_manifest(tmp, manifest)


def _pack(tmp: Path, source: str, st_model, spec, log, probe: str | None = None) -> dict[str, Any] | None:
    """``model.packed.onnx``: ``source`` with its Linears as ``ai.embedrt::PackedMatMul`` (the fp32 CPU graph
    on AVX-512), checked against ``probe`` (the fused graph's, shared) or, without one, a probe of its own
    written from ``model.onnx`` (here when the library is built, and at every load). Returns its manifest
    entry.

    NOTE: an optimisation on top of the artifacts, so best effort: a graph this cannot rewrite or run leaves
    the export without model.packed.onnx, not failed.
    """
    from ..manifest import sha256_file
    from .fuse import PACKED_FILE, PACKED_PROBE_FILE, write_packed, write_probe

    own_probe = probe is None
    try:
        entry = write_packed(tmp, source)
        if entry is None:
            return None
        if own_probe:
            probe = PACKED_PROBE_FILE
            write_probe(
                tmp,
                tmp / MODEL_FILE,
                tmp / probe,
                spec.max_seq_length,
                int(st_model.tokenizer.pad_token_id),
                spec.include_prompt,
            )
        entry.update(probe=probe, probe_sha256=sha256_file(tmp / probe))
        # NOTE: a shared probe stays when this graph is dropped
        checked = _check_native(tmp, entry, MODEL_FILE, log, keep_probe=not own_probe)
    except Exception as e:  # noqa: BLE001 - onnx/onnxruntime raise untyped errors
        for name in (PACKED_FILE, PACKED_PROBE_FILE) if own_probe else (PACKED_FILE,):
            (tmp / name).unlink(missing_ok=True)
        if log:
            log(f"      {PACKED_FILE} skipped: {type(e).__name__}: {e}")
        return None
    if checked is None:
        return None
    if log:
        log(
            f"      {entry['file']}: {entry['linears']} Linears as {entry['op']}, {entry['folded_bias']} "
            f"biases folded ({checked})"
        )
    return entry


def _pack_int8(tmp: Path, native: dict[str, Any], standard: str, log) -> dict[str, Any] | None:
    """``model.int8.packed.onnx`` (fuse.write_int8_packed), checked on the int8 native graph's probe; its
    manifest entry, or None. Best effort, like _pack: a graph this cannot rewrite or run is left out."""
    from .fuse import INT8_PACKED_FILE, write_int8_packed

    try:
        entry = write_int8_packed(tmp, native)
        if entry is None:
            return None
        checked = _check_native(tmp, entry, standard, log, keep_probe=True)
    except Exception as e:  # noqa: BLE001 - onnx/onnxruntime raise untyped errors
        (tmp / INT8_PACKED_FILE).unlink(missing_ok=True)
        if log:
            log(f"      {INT8_PACKED_FILE} skipped: {type(e).__name__}: {e}")
        return None
    if checked is None:
        return None
    if log:
        log(f"      {entry['file']}: {entry['gemms']} MatMulIntegers as {entry['op']} ({checked})")
    return entry


def _check_native(
    tmp: Path, entry: dict[str, Any], standard: str, log, keep_probe: bool = False
) -> str | None:
    """Run a native graph against its standard graph's probe outputs (when the library is built). Returns
    how it was checked, or None after deleting a graph that disagrees.

    NOTE: a disagreeing native graph is dropped, not fatal: the standard graph is the artifact, this an
    option.
    """
    from .fuse import check_fused

    diff = check_fused(tmp, entry)
    entry["export_check_max_abs_diff"] = diff
    if diff is not None and not diff <= entry.get("probe_atol", PROBE_ATOL):
        for name in (entry["file"],) if keep_probe else (entry["file"], entry["probe"]):
            (tmp / name).unlink(missing_ok=True)
        if log:
            log(f"      {entry['file']} dropped: it differs from {standard} by {diff:.2e} on the probe")
        return None
    return "library not built, checked at load" if diff is None else f"probe max abs diff {diff:.1e}"


def _fuse_int8(
    tmp: Path, manifest: dict[str, Any], cfg, smooth, log, calibration, eval_sts, thresholds
) -> None:
    """``model.int8.fused.onnx``: the int8 graph with the native ops, held to the quality gate itself (it is
    what the Encoder serves on a CPU). With the library built here, its probe holds its own outputs (any CPU
    must reproduce them; checked at every load); without it, the standard graph's, with a looser check."""
    from .fuse import write_int8_fused
    from .gate import gate_failures, measure_variant

    int8 = manifest["variants"]["int8"]
    entry = write_int8_fused(tmp, manifest, cfg, smooth)
    checked = _check_native(tmp, entry, int8["file"], log)
    if checked is None:
        return
    if entry.get("probe_of") == "this graph":
        # NOTE: its float ops are embedrt's, not onnxruntime's: an 8-bit activation may round one step the
        # other way than in model.int8.onnx, so it gets its own gate figures against fp32
        int8["native"] = entry
        write_manifest(tmp, manifest)
        baseline = manifest["variants"]["fp32"].get("sts", {}).get("spearman")
        figures = measure_variant(tmp, "int8", calibration, eval_sts, baseline, native=True)
        failures = gate_failures(figures, thresholds)
        if failures:
            del int8["native"]
            for name in (entry["file"], entry["probe"]):
                (tmp / name).unlink(missing_ok=True)
            if log:
                log(f"      {entry['file']} dropped by the quality gate: " + "; ".join(failures))
            return
        entry["quality"] = figures
    int8["native"] = entry
    if int8.get("scheme", {}).get("machine_independent"):
        # NOTE: PackedMatMulInteger's AVX2 tile is exact only for weights that cannot saturate pmaddubsw: not
        # for the w8a8-vnni opt-in, whose graph keeps onnxruntime's kernel everywhere
        packed = _pack_int8(tmp, entry, int8["file"], log)
        if packed is not None:
            entry["packed"] = packed
    if log:
        q = entry.get("quality")
        gate = (
            f"; gate: mean cosine {q['mean_cosine']:.5f}, min {q['min_cosine']:.5f}"
            + (f", STS delta {q['sts']['delta']:+.3f}" if "sts" in q else "")
            if q
            else ""
        )
        log(f"      {entry['file']}: {entry['op']}, {entry['folded_bias']} biases folded ({checked}{gate})")


def _calibration_feeds(export_dir: Path, sentences: list[str] | None) -> list[dict[str, Any]]:
    from ..runtime.encoder import Encoder
    from .gate import SAMPLE_SENTENCES

    enc = Encoder(export_dir, device="cpu", native=False)
    rows = enc.tokenizer.encode_ids(list(sentences or SAMPLE_SENTENCES))
    feeds = []
    for i in range(0, len(rows), 32):
        ids, mask = enc.tokenizer.pad(rows[i : i + 32])
        feeds.append({"input_ids": ids, "attention_mask": mask})
    return feeds


def _manifest(resolved, spec, tokenizer_entry, input_names, opset, limit: int | None) -> dict[str, Any]:
    return {
        "format": "embedrt",
        "format_version": FORMAT_VERSION,
        "source": {
            "model": resolved.model_id,
            "resolved_from": resolved.source,
            "path": str(resolved.path),
            "weights_sha256": weights_sha256(resolved.path),
        },
        "architecture": spec.model_type,
        "model_config": spec.model_config,
        "modules": spec.module_types,
        "max_seq_length": spec.max_seq_length,
        "max_seq_length_source": spec.max_seq_length_source,
        "position_limit": limit,
        "do_lower_case": spec.do_lower_case,
        "pooling": {"modes": [p.value for p in spec.pooling], "include_prompt": spec.include_prompt},
        "dense": [m for m in spec.post_modules if m["type"] == "Dense"],
        "normalize": spec.normalize,
        "dim": spec.dim,
        "prompts": spec.prompts,
        "default_prompt_name": spec.default_prompt_name,
        "similarity_fn_name": spec.similarity_fn_name,
        "tokenizer": tokenizer_entry,
        "inputs": input_names,
        "output": "sentence_embedding",
        "opset": opset,
        "versions": versions(),
        "variants": {},
    }
