"""Optional offline transformer fusions (onnxruntime.transformers.optimizer).

Measured on all-MiniLM-L6-v2 (README, "Graph optimisation"): onnxruntime applies the same kind of fusions
online when it loads the standard-op graph, and the offline-fused graph ran no faster, so this is off by
default; the standard-op graph also stays portable to any ONNX runtime.
"""

from __future__ import annotations

from pathlib import Path

#: onnxruntime optimizer model types by Hugging Face model_type (the BERT fusions cover these encoders).
OPTIMIZER_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "distilbert": "bert",
    "mpnet": "bert",
    "electra": "bert",
}


def fuse_transformer_model(
    src: Path, model_type: str, num_heads: int, hidden_size: int, use_gpu: bool = False
):
    """The optimizer's OnnxModel after fusion, and its fused-operator counts. Exact GELU only.

    ``use_gpu=True`` fuses for the CUDA provider (the layout onnxruntime's fp16 recipe starts from).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    kind = OPTIMIZER_TYPES.get(model_type, "bert")
    options = FusionOptions(kind)
    options.enable_gelu_approximation = False  # NOTE: FastGelu would break the 1e-5 exactness
    model = optimize_model(
        str(src),
        model_type=kind,
        num_heads=num_heads,
        hidden_size=hidden_size,
        optimization_options=options,
        opt_level=0,
        use_gpu=use_gpu,
    )
    return model, {k: v for k, v in model.get_fused_operator_statistics().items() if v}


def fuse_transformer(
    src: Path, dst: Path, model_type: str, num_heads: int, hidden_size: int
) -> dict[str, int]:
    """Write the fused graph to ``dst``; returns the fused-operator counts. Exact GELU only."""
    model, fused = fuse_transformer_model(src, model_type, num_heads, hidden_size)
    model.save_model_to_file(str(dst))
    return fused
