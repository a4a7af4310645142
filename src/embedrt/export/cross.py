"""Cross-encoders (rerankers): a sentence-transformers ``CrossEncoder`` -> one ONNX graph (transformer,
classification head, activation) that scores text pairs, verified against ``CrossEncoder.predict``.

Steps, atomicity and the manifest follow the embedding export, on the shared skeleton (``staging.py``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ModelLoadError, UnsupportedModelError, VerificationError
from ..manifest import FORMAT_VERSION, sha256_file, write_manifest
from ..modes import Activation, Task
from ..runtime.cross_encoder import TORCH_ACTIVATIONS
from .graph import DEFAULT_OPSET, position_limit
from .pipeline import MODEL_FILE
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
from .tasks import not_a_cross_encoder
from .verify import probe_texts, words

SCORES = "scores"
LOGITS = "logits"


@dataclass
class CrossSpec:
    """What the export needs to know about a CrossEncoder, read once at the edge."""

    model_type: str
    architecture: str
    num_labels: int
    labels: list[str]
    activation: Activation
    activation_fn: (
        str  #: the class path sentence-transformers reports (``torch.nn.modules.activation.Sigmoid``)
    )
    max_seq_length: int
    max_seq_length_source: str
    input_names: list[str]
    model_config: dict[str, int] = field(default_factory=dict)


def load_cross_encoder(model_dir: Path):
    """Load the reference ``sentence_transformers.CrossEncoder`` on CPU in eval mode.

    Raises:
        ModelLoadError: weights or configs are corrupted or unreadable, or sentence-transformers is missing.
    """
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as e:  # pragma: no cover
        raise ModelLoadError("exporting needs sentence-transformers: pip install 'embedrt[export]'") from e
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = CrossEncoder(str(model_dir), device="cpu", local_files_only=True)
    except Exception as e:  # noqa: BLE001 - surfaced as a typed error that names the model
        raise ModelLoadError(
            f"could not load the cross-encoder from {model_dir}: {type(e).__name__}: {e}"
        ) from e
    model.eval()
    return model


def _hf_classifier(ce):
    modules = list(ce._modules.values())
    first = modules[0] if modules else None
    task = getattr(first, "transformer_task", "sequence-classification")
    hf = getattr(ce, "model", None)
    if len(modules) != 1 or task != "sequence-classification" or hf is None:
        names = [type(m).__name__ for m in modules]
        raise UnsupportedModelError(
            f"only sequence-classification cross-encoders (one Transformer with a classification head) "
            f"can be exported; this one has modules {names} with transformer_task {task!r}"
        )
    return hf


def inspect_cross_encoder(ce, model_dir: Path) -> CrossSpec:
    """Read every setting the graph and the runtime need from the loaded reference model.

    Raises:
        UnsupportedModelError: another module layout, an activation without a graph/numpy equivalent, or no
            usable max length.
    """
    hf = _hf_classifier(ce)
    fn = ce.activation_fn
    cls = type(fn)
    act = TORCH_ACTIVATIONS.get(cls.__name__) if cls.__module__.startswith("torch.") else None
    if act is None:
        raise UnsupportedModelError(
            f"activation_fn {cls.__module__}.{cls.__name__} is not supported; supported: "
            f"{', '.join('torch.nn.' + n for n in TORCH_ACTIVATIONS)}"
        )
    if act is Activation.SOFTMAX and getattr(fn, "dim", None) not in (None, -1, 1):
        raise UnsupportedModelError(f"torch.nn.Softmax(dim={fn.dim}) is not supported; only the label axis")
    max_len = ce.max_seq_length
    if max_len is None or max_len > 100_000:
        raise UnsupportedModelError(
            f"cannot determine the max length of {model_dir}; pass max_length when saving"
        )
    tok_cfg_path = model_dir / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text(encoding="utf-8")) if tok_cfg_path.is_file() else {}
    # NOTE: sentence-transformers truncates at the tokenizer's model_max_length, capped at the model's
    # max_position_embeddings; say which of the two it was.
    source = (
        "tokenizer_config.json" if tok_cfg.get("model_max_length") == max_len else "max_position_embeddings"
    )
    # NOTE: token_type_ids go in exactly when the reference tokenizer produces them (BERT: yes; RoBERTa,
    # XLM-R, DistilBERT: no, and their models then use all-zero segments, as the graph does).
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in getattr(ce.tokenizer, "model_input_names", []):
        names.append("token_type_ids")
    cfg = hf.config
    sizes = {
        "num_hidden_layers": getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layers", None),
        "hidden_size": getattr(cfg, "hidden_size", None) or getattr(cfg, "dim", None),
        "intermediate_size": getattr(cfg, "intermediate_size", None) or getattr(cfg, "hidden_dim", None),
        "num_attention_heads": getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_heads", None),
    }
    num_labels = int(ce.num_labels)
    id2label = getattr(cfg, "id2label", None) or {}
    labels = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(num_labels)]
    return CrossSpec(
        model_type=str(getattr(cfg, "model_type", "unknown")),
        architecture=type(hf).__name__,
        num_labels=num_labels,
        labels=labels,
        activation=act,
        activation_fn=f"{cls.__module__}.{cls.__name__}",
        max_seq_length=int(max_len),
        max_seq_length_source=source,
        input_names=names,
        model_config={k: int(v) for k, v in sizes.items() if isinstance(v, int)},
    )


def build_cross_graph(ce, spec: CrossSpec):
    """The whole model as one ``torch.nn.Module``: (input_ids, attention_mask[, token_type_ids]) ->
    (scores, logits)."""
    import torch

    hf = _hf_classifier(ce)
    activations: dict[Activation, Callable] = {
        Activation.IDENTITY: lambda x: x,
        Activation.SIGMOID: torch.sigmoid,
        Activation.TANH: torch.tanh,
        Activation.RELU: torch.relu,
        Activation.SOFTMAX: lambda x: torch.softmax(x, dim=-1),
    }
    act = activations[spec.activation]
    squeeze = spec.num_labels == 1

    class CrossGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = hf

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            logits = self.model(**kwargs).logits
            # NOTE: CrossEncoder._inference's order: activation on [batch, labels], then squeeze one label.
            scores = act(logits)
            if squeeze:
                scores = scores.squeeze(-1)
            return scores, logits

    return CrossGraph().eval()


def export_cross_onnx(
    graph_module, tokenizer, path: Path, spec: CrossSpec, opset: int = DEFAULT_OPSET
) -> None:
    """Trace ``graph_module`` to ``path`` with dynamic batch and sequence axes, static label axis."""
    import onnx
    import torch

    # NOTE: a padded two-row sample of pairs, so tracing sees both segments and padded positions.
    sample = tokenizer(
        ["an example query to trace with", "short"],
        ["and the document it is paired with", "b"],
        padding=True,
        return_tensors="pt",
    )
    args = tuple(sample[n].to(torch.int64) for n in spec.input_names)
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in spec.input_names}
    axes[SCORES] = {0: "batch"}
    axes[LOGITS] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # NOTE: TorchScript exporter, as for embeddings: its attention pattern is what onnxruntime fuses.
        torch.onnx.export(
            graph_module,
            args,
            str(path),
            input_names=list(spec.input_names),
            output_names=[SCORES, LOGITS],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        want = 1 if out.name == SCORES and spec.num_labels == 1 else 2
        while len(dims) > want:
            dims.pop()
        dims[0].Clear()
        dims[0].dim_param = "batch"
        if want == 2:
            dims[1].Clear()
            dims[1].dim_value = spec.num_labels
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def probe_pairs(
    count_tokens: Callable[[str], int] | None = None, max_length: int = 512
) -> list[tuple[str, str]]:
    """Pairs that break cross-encoder runtimes: empty sides, both sides or one side beyond the max length
    (longest_first truncation, either side the longer), unicode, literal special tokens; plus every embedding
    probe text.

    Args:
        count_tokens: tokens of a text under the model's tokenizer, so the long sides are 2 and 3 times
            ``max_length`` whatever the vocabulary (default: 1.3 tokens per word).
        max_length: the model's max length in tokens.
    """
    per_word = count_tokens(words(100)) / 100 if count_tokens else 1.3

    def sized(tokens: float) -> str:
        return words(max(1, int(tokens / per_word) + 1))

    long2, long3 = sized(2 * max_length), sized(3 * max_length)
    pairs = [
        ("", ""),
        ("", "Hello world"),
        ("Hello world", ""),
        (
            "who wrote the theory of relativity?",
            "Albert Einstein published the theory of relativity in 1905.",
        ),
        ("A man is playing a guitar.", "Someone plays an instrument on stage."),
        (long3, long2),
        (long2, long3),
        (long2, long2),
        (long3, "a short document"),
        ("a short query", long3),
        (sized(0.3 * max_length), sized(0.9 * max_length)),
        ("Crème brûlée à la française", "日本語のテキストと中文句子，还有한국어 문장도 있습니다。"),
        ("I love pizza 🍕🔥👍🏽", "مرحبا بالعالم — שלום עולם"),
        ("[CLS] [SEP] [MASK]", "<s> </s> <pad> [SEP]literal[SEP]"),
    ]
    texts = probe_texts()
    # NOTE: each text meets the one half a list away, so the long embedding probes meet short ones: pair
    # truncation in `tokenizers` costs (len_a / max) x (len_b / max) overflow pieces; long x long is above.
    half = len(texts) // 2
    pairs += [(texts[i], texts[(i + half) % len(texts)]) for i in range(len(texts))]
    return pairs


def verify_cross_export(
    export_dir: Path, ce, variant: str = "fp32", pairs: list[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """Score the probe pairs with the written artifact (our runtime) and with ``CrossEncoder.predict``.

    Checks the default scores as one batch and one pair at a time, and the raw logits (what an
    ``activation_fn`` override at predict time starts from).
    """
    import torch

    from ..runtime.cross_encoder import CrossEncoder

    if pairs is None:
        pairs = probe_pairs(
            lambda t: len(ce.tokenizer(t, add_special_tokens=False)["input_ids"]), ce.max_seq_length
        )
    ours = CrossEncoder(export_dir, device="cpu", variant=variant)
    as_lists = [list(p) for p in pairs]
    reference = np.asarray(
        ce.predict(as_lists, batch_size=len(pairs), convert_to_numpy=True), dtype=np.float64
    )
    ref_logits = np.asarray(
        ce.predict(as_lists, batch_size=len(pairs), activation_fn=torch.nn.Identity(), convert_to_numpy=True),
        dtype=np.float64,
    )
    batched = np.asarray(ours.predict(pairs, batch_size=len(pairs)), dtype=np.float64)
    singles = np.stack([np.asarray(ours.predict(p), dtype=np.float64) for p in pairs])
    logits = np.asarray(
        ours.predict(pairs, batch_size=len(pairs), activation_fn=Activation.IDENTITY), dtype=np.float64
    )

    def rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = np.abs(a - b)
        return d.reshape(len(d), -1).max(axis=1)

    per_pair = rows(batched, reference)
    worst = int(np.argmax(per_pair)) if not np.isnan(per_pair).any() else int(np.argmax(np.isnan(per_pair)))
    return {
        "n_pairs": len(pairs),
        "max_abs_diff": float(per_pair.max()),
        "single_max_abs_diff": float(rows(singles, reference).max()),
        "single_vs_batch_max_abs_diff": float(rows(singles, batched).max()),
        "logits_max_abs_diff": float(rows(logits, ref_logits).max()),
        "worst_row": worst,
        "worst_pair": [pairs[worst][0][:60], pairs[worst][1][:60]],
    }


def export_cross_encoder(
    model: str,
    output: str | os.PathLike,
    *,
    force: bool = False,
    atol: float = 1e-5,
    opset: int = DEFAULT_OPSET,
    log: Callable[[str], None] | None = None,
    variants: tuple[str, ...] | list[str] = ("fp32",),
    optimize: bool = False,
    eval_sts: str | None = None,
    **_ignored: Any,
) -> dict[str, Any]:
    """Export a sentence-transformers ``CrossEncoder`` to one verified ONNX graph plus tokenizer and manifest.

    Args:
        model: local directory, hub id, or short name.
        output: target directory; written to a temporary sibling and renamed into place at the end.
        force: replace an existing target.
        atol: maximum abs diff allowed between the graph and ``CrossEncoder.predict`` (scores and logits).
        opset: ONNX opset.
        log: receives one line per step.
        variants: only ``fp32`` for cross-encoders.
        optimize: not supported for cross-encoders (must be False).
        eval_sts: not supported for cross-encoders (must be None).

    Returns:
        The manifest that was written.

    Raises:
        InputError, ModelNotFoundError, ModelLoadError, UnsupportedModelError, OutputExistsError, ExportError,
        VerificationError. On any error nothing is left at ``output`` (and an existing one is untouched).
    """
    output = Path(output).expanduser().absolute()
    extra = [v for v in dict.fromkeys(variants) if v != "fp32"]
    if extra:
        raise InputError(
            f"variants {extra} are not available for cross-encoders yet; valid choices: ['fp32']"
        )
    if optimize or eval_sts:
        raise InputError("--optimize and --eval-sts apply to embedding exports only, not to cross-encoders")
    check_target(output, force)
    steps = Steps(log, total=5)
    with steps.step("resolve", model):
        resolved = resolve_model(model)
        why = not_a_cross_encoder(resolved.path)
        if why:
            raise UnsupportedModelError(
                f"{resolved.path} is not a cross-encoder: {why}; loading it as one would add an untrained "
                "classification head (export it as an embedding model instead)"
            )
        if log:
            log(f"      found {resolved.model_id} via {resolved.source} at {resolved.path} (cross-encoder)")
    with steps.step("load", "sentence-transformers CrossEncoder reference"):
        ce = load_cross_encoder(resolved.path)
        spec = inspect_cross_encoder(ce, resolved.path)

    with staging(output) as tmp:
        with steps.step("trace", f"{spec.architecture}, {spec.num_labels} label(s), {spec.activation.value}"):
            import torch

            # NOTE: as for embeddings: plain MatMul/Softmax, fused by onnxruntime
            with eager_attention(_hf_classifier(ce)), torch.no_grad():
                export_cross_onnx(build_cross_graph(ce, spec), ce.tokenizer, tmp / MODEL_FILE, spec, opset)
            tokenizer_entry = save_tokenizer(ce, tmp)
            manifest = _manifest(resolved, spec, tokenizer_entry, opset, position_limit(_hf_classifier(ce)))
            manifest["variants"]["fp32"] = {
                "file": MODEL_FILE,
                "precision": "fp32",
                "sha256": sha256_file(tmp / MODEL_FILE),
                "batch_invariant": True,
            }
            write_manifest(tmp, manifest)
        with steps.step("verify", f"against CrossEncoder.predict, atol={atol:g}"):
            figures = verify_cross_export(tmp, ce, "fp32")
            manifest["variants"]["fp32"]["verification"] = figures
            if log:
                log(
                    f"      max abs diff {figures['max_abs_diff']:.2e} (scores), "
                    f"{figures['logits_max_abs_diff']:.2e} "
                    f"(logits), single vs batch {figures['single_vs_batch_max_abs_diff']:.2e} on "
                    f"{figures['n_pairs']} probe pairs"
                )
            worst = max(
                figures["max_abs_diff"], figures["single_max_abs_diff"], figures["logits_max_abs_diff"]
            )
            if not worst <= atol:  # NOTE: also catches NaN
                raise VerificationError(
                    f"cross-encoder graph differs from CrossEncoder.predict by max abs {worst:.3e} > "
                    f"atol {atol:g} "
                    f"(worst pair: {figures['worst_pair']!r}); nothing was written"
                )
        finish(steps, tmp, output, manifest)
    return manifest


def _manifest(
    resolved, spec: CrossSpec, tokenizer_entry: dict[str, Any], opset: int, limit: int | None
) -> dict[str, Any]:
    return {
        "format": "embedrt",
        "format_version": FORMAT_VERSION,
        "task": Task.CROSS_ENCODER.value,
        "source": {
            "model": resolved.model_id,
            "resolved_from": resolved.source,
            "path": str(resolved.path),
            "weights_sha256": weights_sha256(resolved.path),
        },
        "architecture": spec.model_type,
        "hf_architecture": spec.architecture,
        "model_config": spec.model_config,
        "max_seq_length": spec.max_seq_length,
        "max_seq_length_source": spec.max_seq_length_source,
        "position_limit": limit,
        "num_labels": spec.num_labels,
        "labels": spec.labels,
        "activation": spec.activation.value,
        "activation_fn": spec.activation_fn,
        "tokenizer": tokenizer_entry,
        "inputs": spec.input_names,
        "outputs": {
            SCORES: ["batch"] if spec.num_labels == 1 else ["batch", spec.num_labels],
            LOGITS: ["batch", spec.num_labels],
        },
        "output": SCORES,
        "opset": opset,
        "versions": versions(),
        "variants": {},
    }
