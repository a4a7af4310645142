"""Build one torch module (transformer + pooling + Dense + Normalize) and trace it to ONNX.

Pooling is re-implemented here with trace-friendly ops (no data-dependent Python branches) and is
verified against sentence-transformers' own ``Pooling`` at export time.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, UnsupportedModelError
from ..modes import Pooling

#: sentence-transformers module class names that go into the graph, and what they become.
#: Transformer must come first; the others run in modules.json order.
SUPPORTED_MODULES = ("Transformer", "Pooling", "Dense", "Normalize", "Dropout", "LayerNorm")

DEFAULT_OPSET = 17


@dataclass
class ModelSpec:
    """What the export needs to know about a sentence-transformers model, read once at the edge."""

    model_type: str
    max_seq_length: int
    max_seq_length_source: str
    do_lower_case: bool
    pooling: list[Pooling]
    include_prompt: bool
    post_modules: list[dict[str, Any]]
    normalize: bool
    dim: int
    prompts: dict[str, str]
    default_prompt_name: str | None
    similarity_fn_name: str
    module_types: list[str] = field(default_factory=list)
    plain_hf: bool = False
    model_config: dict[str, int] = field(default_factory=dict)


def read_module_types(model_dir: Path) -> list[str]:
    """Class names listed in modules.json, refusing unsupported ones before anything is loaded.

    Raises:
        UnsupportedModelError: a module type that cannot be expressed in the graph.
    """
    modules_json = model_dir / "modules.json"
    if not modules_json.is_file():
        return []
    try:
        entries = json.loads(modules_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{modules_json} is corrupted: {e}") from e
    except RecursionError:  # NOTE: json's decoder recurses once per nested array or object
        raise ModelLoadError(f"{modules_json} is corrupted: its arrays or objects nest too deeply") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ModelLoadError(f"{modules_json} is corrupted: expected a JSON list of module objects")
    names = []
    for entry in entries:
        type_name = str(entry.get("type", ""))
        cls_name = type_name.rsplit(".", 1)[-1]
        if cls_name not in SUPPORTED_MODULES:
            raise UnsupportedModelError(
                f"module {type_name!r} (modules.json entry {entry.get('idx')}, path {entry.get('path')!r}) "
                f"is not supported; supported module types: {', '.join(SUPPORTED_MODULES)}"
            )
        names.append(cls_name)
    if names and names[0] != "Transformer":
        raise UnsupportedModelError(f"the first module must be a Transformer, got {names[0]!r}")
    if names.count("Transformer") != 1 or names.count("Pooling") > 1:
        raise UnsupportedModelError(f"expected one Transformer and at most one Pooling module, got {names}")
    return names


def load_sentence_transformer(model_dir: Path):
    """Load the reference model on CPU in eval mode.

    Raises:
        ModelLoadError: weights or configs are corrupted or unreadable.
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:  # pragma: no cover
        raise ModelLoadError("exporting needs sentence-transformers: pip install 'embedrt[export]'") from e
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # NOTE: the CLI prints its own steps; weight-loading bars are noise
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    except Exception as e:  # noqa: BLE001 - surfaced as a typed error that names the model
        raise ModelLoadError(f"could not load the model from {model_dir}: {type(e).__name__}: {e}") from e
    model.eval()
    return model


def position_limit(hf) -> int | None:
    """Longest input the model's absolute position embeddings cover (the rows of its position-embedding
    weight, less the ``padding_idx + 1`` offset RoBERTa-style models start their positions at); None for a
    model without them (rotary or relative positions only)."""
    base = getattr(hf, "base_model", hf)
    emb = getattr(getattr(base, "embeddings", None), "position_embeddings", None)
    rows = getattr(emb, "num_embeddings", None)
    if not isinstance(rows, int):
        return None
    pad = getattr(emb, "padding_idx", None)
    return rows - (int(pad) + 1 if pad is not None else 0)


def hf_model(st_model):
    transformer = st_model[0]
    hf = getattr(transformer, "auto_model", None) or getattr(transformer, "model", None)
    if hf is None:
        raise UnsupportedModelError(f"module 0 ({type(transformer).__name__}) has no Hugging Face model")
    return hf


def inspect_model(st_model, module_types: list[str], model_dir: Path) -> ModelSpec:
    """Read every setting the graph and the runtime need from the loaded reference model."""
    hf = hf_model(st_model)
    pooling: list[Pooling] = []
    include_prompt = True
    post: list[dict[str, Any]] = []
    normalize = False
    plain_hf = not module_types
    modules = list(st_model._modules.values())
    names = module_types or [type(m).__name__ for m in modules]
    for name, module in zip(names, modules, strict=False):
        if name == "Transformer":
            continue
        if name == "Pooling":
            modes = module.pooling_mode
            modes = (modes,) if isinstance(modes, str) else tuple(modes)
            pooling = [Pooling.parse(m, "pooling mode") for m in modes]
            include_prompt = bool(getattr(module, "include_prompt", True))
        elif name == "Dense":
            if getattr(module, "module_input_name", "sentence_embedding") != "sentence_embedding":
                raise UnsupportedModelError("Dense modules that read token embeddings are not supported")
            post.append(
                {
                    "type": "Dense",
                    "in": module.linear.in_features,
                    "out": module.linear.out_features,
                    "activation": type(module.activation_function).__name__,
                    "residual": bool(getattr(module, "use_residual", False)),
                }
            )
        elif name == "Normalize":
            if getattr(module, "module_input_name", "sentence_embedding") != "sentence_embedding":
                raise UnsupportedModelError("Normalize modules that read token embeddings are not supported")
            post.append({"type": "Normalize"})
        elif name in ("Dropout", "LayerNorm"):
            post.append({"type": name})
        else:
            raise UnsupportedModelError(f"module type {name!r} is not supported")
    if not pooling:
        raise UnsupportedModelError(
            "the model has no Pooling module, so it does not produce sentence embeddings"
        )
    # NOTE: a trailing Normalize makes every output unit-length; truncate_dim then needs re-normalising.
    normalize = bool(post) and post[-1]["type"] == "Normalize"
    sbert_cfg = {}
    cfg_path = model_dir / "sentence_bert_config.json"
    if cfg_path.is_file():
        sbert_cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    # NOTE: max_seq_length comes from sentence_bert_config.json (what sentence-transformers truncates at),
    # never from tokenizer.json, whose own truncation (128 for all-MiniLM-L6-v2) ST overrides.
    max_len = st_model.max_seq_length
    tok_cfg_path = model_dir / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text(encoding="utf-8")) if tok_cfg_path.is_file() else {}
    if "max_seq_length" in sbert_cfg:
        source = "sentence_bert_config.json"
    elif tok_cfg.get("model_max_length") == max_len:
        # NOTE: sentence-transformers >= 5 saves max_seq_length as the tokenizer's model_max_length.
        source = "tokenizer_config.json"
    else:
        source = "max_position_embeddings"
    if max_len is None or max_len > 100_000:
        raise UnsupportedModelError(f"cannot determine max_seq_length for {model_dir}")
    getter = getattr(st_model, "get_embedding_dimension", None) or st_model.get_sentence_embedding_dimension
    dim = getter()
    cfg = hf.config
    # NOTE: sizes for FLOP counts in benchmarks; DistilBERT names them differently.
    sizes = {
        "num_hidden_layers": getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layers", None),
        "hidden_size": getattr(cfg, "hidden_size", None) or getattr(cfg, "dim", None),
        "intermediate_size": getattr(cfg, "intermediate_size", None) or getattr(cfg, "hidden_dim", None),
        "num_attention_heads": getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_heads", None),
    }
    return ModelSpec(
        model_config={k: int(v) for k, v in sizes.items() if isinstance(v, int)},
        model_type=str(getattr(hf.config, "model_type", "unknown")),
        max_seq_length=int(max_len),
        max_seq_length_source=source,
        do_lower_case=bool(getattr(st_model[0], "do_lower_case", False)),
        pooling=pooling,
        include_prompt=include_prompt,
        post_modules=post,
        normalize=normalize,
        dim=int(dim),
        prompts=dict(getattr(st_model, "prompts", {}) or {}),
        default_prompt_name=getattr(st_model, "default_prompt_name", None),
        similarity_fn_name=str(getattr(st_model, "similarity_fn_name", "cosine") or "cosine"),
        module_types=names,
        plain_hf=plain_hf,
    )


#: Pooling modes the native op ai.embedrt::MeanPoolNormalize replaces in the fused graph, and its mode names.
FUSED_POOL_MODES = {Pooling.MEAN: "mean", Pooling.MEAN_SQRT_LEN: "mean_sqrt_len"}


def fused_pooling_plan(spec: ModelSpec) -> tuple[str, bool] | None:
    """(op mode, normalize folded in) when the model's pooling can become the native op, else None."""
    if len(spec.pooling) != 1 or spec.pooling[0] not in FUSED_POOL_MODES:
        return None
    kinds = [k["type"] for k in spec.post_modules if k["type"] != "Dropout"]
    return FUSED_POOL_MODES[spec.pooling[0]], bool(kinds) and kinds[0] == "Normalize"


def build_graph_module(st_model, spec: ModelSpec, fused_pooling: bool = False):
    """The whole model as one ``torch.nn.Module``: (input_ids, attention_mask[, prompt_length]) -> embedding.

    With ``fused_pooling``, pooling (and a Normalize right after it) traces to one
    ai.embedrt::MeanPoolNormalize node (see ``fused_pooling_plan``); the module computes the same numbers.
    """
    import torch
    import torch.nn.functional as F

    plan = fused_pooling_plan(spec) if fused_pooling else None
    if fused_pooling and plan is None:
        modes = [p.value for p in spec.pooling]
        raise UnsupportedModelError(
            f"pooling {modes} has no fused op; fused modes: {[p.value for p in FUSED_POOL_MODES]}"
        )

    hf = hf_model(st_model)
    spec_hidden = int(spec.model_config.get("hidden_size") or 0) or None

    class FusedPool(torch.autograd.Function):
        """Torch forward = the standard pooling; ONNX symbolic = the native op."""

        @staticmethod
        def forward(ctx, tokens, mask, mode, normalize):  # noqa: ARG004 - autograd.Function signature
            x = _pool(Pooling.MEAN if mode == "mean" else Pooling.MEAN_SQRT_LEN, tokens, mask, mask)
            return F.normalize(x, p=2.0, dim=-1) if normalize else x

        @staticmethod
        def symbolic(g, tokens, mask, mode, normalize):
            out = g.op("ai.embedrt::MeanPoolNormalize", tokens, mask, mode_s=mode, normalize_i=int(normalize))
            out.setType(tokens.type().with_dtype(torch.float32).with_sizes([None, spec_hidden]))
            return out

    post_modules = [
        m
        for name, m in zip(spec.module_types, st_model._modules.values(), strict=False)
        if name in ("Dense", "Normalize", "Dropout", "LayerNorm")
    ]

    class SentenceGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = hf
            self.post = torch.nn.ModuleList([m for m in post_modules if not isinstance(m, torch.nn.Dropout)])
            self.post_kinds = [k["type"] for k in spec.post_modules if k["type"] != "Dropout"]

        def forward(self, input_ids, attention_mask, prompt_length=None):
            tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask)[0]
            mask = attention_mask
            if prompt_length is not None:
                # NOTE: prompt tokens stay visible to attention but are excluded from pooling, as
                # sentence-transformers does with include_prompt=False (right padding: zero the first k).
                positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
                mask = mask * (positions >= prompt_length.reshape(-1, 1)).to(mask.dtype)
            post = list(zip(self.post_kinds, self.post, strict=False))
            if plan is not None:
                x = FusedPool.apply(tokens, mask, plan[0], plan[1])
                post = post[1:] if plan[1] else post  # NOTE: the op already normalised
            else:
                vectors = [_pool(mode, tokens, mask, attention_mask) for mode in spec.pooling]
                x = vectors[0] if len(vectors) == 1 else torch.cat(vectors, dim=-1)
            for kind, module in post:
                if kind == "Normalize":
                    # NOTE: F.normalize's eps=1e-12 clamp, exactly as sentence-transformers' Normalize.
                    x = F.normalize(x, p=2.0, dim=-1)
                else:
                    x = module({"sentence_embedding": x})["sentence_embedding"]
            return x

    def _pool(mode, tokens, mask, original_mask):
        dtype = tokens.dtype
        if mode in (Pooling.MEAN, Pooling.MEAN_SQRT_LEN):
            m = mask.unsqueeze(-1).to(dtype)
            total = (tokens * m).sum(dim=1)
            count = torch.clamp(m.sum(dim=1), min=1e-9)
            return total / (count if mode == Pooling.MEAN else torch.sqrt(count))
        if mode == Pooling.CLS:
            first = mask.to(torch.int32).argmax(dim=1)
            idx = first.reshape(-1, 1, 1).expand(-1, 1, tokens.shape[-1]).to(torch.int64)
            return torch.gather(tokens, 1, idx).squeeze(1)
        if mode == Pooling.MAX:
            m = mask.unsqueeze(-1).to(dtype)
            return tokens.masked_fill(m == 0, float("-inf")).max(dim=1).values
        if mode == Pooling.WEIGHTED_MEAN:
            m = mask.unsqueeze(-1).to(dtype)
            seq = tokens.shape[1]
            weights = torch.arange(1, seq + 1, device=tokens.device).to(dtype).view(1, -1, 1)
            pad = original_mask.to(torch.int32).argmax(dim=1).to(dtype).view(-1, 1, 1)
            wm = m * (weights - pad)
            return (tokens * wm).sum(dim=1) / torch.clamp(wm.sum(dim=1), min=1e-9)
        if mode == Pooling.LAST_TOKEN:
            seq = tokens.shape[1]
            values, indices = mask.to(torch.int32).flip(1).max(dim=1)
            indices = torch.where(values == 0, torch.full_like(indices, seq - 1), indices)
            idx = (seq - indices - 1).reshape(-1, 1, 1).expand(-1, 1, tokens.shape[-1]).to(torch.int64)
            m = mask.unsqueeze(-1).to(dtype)
            return torch.gather(tokens * m, 1, idx).squeeze(1)
        raise UnsupportedModelError(f"pooling mode {mode!r} is not supported")

    return SentenceGraph().eval()


def export_onnx(
    graph_module,
    tokenizer,
    path: Path,
    with_prompt_length: bool,
    dim: int,
    opset: int = DEFAULT_OPSET,
    custom_opsets: dict[str, int] | None = None,
) -> list[str]:
    """Trace ``graph_module`` to ``path`` with dynamic batch and sequence axes. Returns the input names."""
    import torch

    # NOTE: a padded two-row sample, so tracing sees both real and padded positions.
    sample = tokenizer(["an example sentence to trace with", "short"], padding=True, return_tensors="pt")
    ids = sample["input_ids"].to(torch.int64)
    mask = sample["attention_mask"].to(torch.int64)
    args: tuple = (ids, mask)
    names = ["input_ids", "attention_mask"]
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "sentence_embedding": {0: "batch"},
    }
    if with_prompt_length:
        args = (ids, mask, torch.tensor([1], dtype=torch.int64))
        names.append("prompt_length")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # NOTE: the TorchScript exporter (dynamo=False) yields the op patterns that onnxruntime's
        # transformer fusions recognise; the dynamo exporter's decomposed attention does not fuse.
        torch.onnx.export(
            graph_module,
            args,
            str(path),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
            custom_opsets=custom_opsets or {},
        )
    _fix_output_shape(path, dim)
    return names


def _fix_output_shape(path: Path, dim: int) -> None:
    """The tracer leaves the embedding width symbolic; it is a constant of the model, so say so."""
    import onnx

    model = onnx.load(str(path))
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    out_dims[0].dim_param = "batch"
    out_dims[1].Clear()
    out_dims[1].dim_value = int(dim)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
