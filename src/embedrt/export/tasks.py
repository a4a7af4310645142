"""What a model directory holds (sentence embeddings or a cross-encoder), and the exporter of each task.

The embedding export is the body of ``export_model``; every other task registers its exporter here.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..modes import Task

#: Exporters of the tasks other than embeddings, as "module:function" (imported lazily: torch behind them).
#: Each takes ``(model, output, *, force, atol, opset, log, variants, optimize, eval_sts)``.
EXPORTERS: dict[Task, str] = {
    Task.CROSS_ENCODER: "embedrt.export.cross:export_cross_encoder",
    Task.SPARSE: "embedrt.export.sparse:export_sparse_encoder",
    Task.MULTI_VECTOR: "embedrt.export.multivector:export_multi_vector_encoder",
}


#: config_sentence_transformers.json ``model_type`` of each model class sentence-transformers saves.
SAVED_AS = {
    "CrossEncoder": Task.CROSS_ENCODER,
    "SparseEncoder": Task.SPARSE,
    "MultiVectorEncoder": Task.MULTI_VECTOR,
}


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path} is corrupted: {e}") from e
    except RecursionError:  # NOTE: json's decoder recurses once per nested array or object
        raise ModelLoadError(f"{path} is corrupted: its arrays or objects nest too deeply") from None
    return data if isinstance(data, dict) else {}


def detect_task(model_dir: Path) -> Task:
    """Read the task from the model's configs, before anything heavy is loaded.

    A cross-encoder is any of: sentence-transformers >= 4 saved it as one
    (``config_sentence_transformers.json`` ``model_type: CrossEncoder``); its Transformer module is a
    ``sequence-classification`` one (``sentence_bert_config.json``, sentence-transformers >= 6); or it is a
    bare Hugging Face ``*ForSequenceClassification`` checkpoint with no ``modules.json`` (how cross-encoders
    were saved before sentence-transformers 4, e.g. cross-encoder/ms-marco-MiniLM-L-6-v2). Everything else is
    a sentence-embedding model.
    """
    model_dir = Path(model_dir)
    saved_as = _json(model_dir / "config_sentence_transformers.json").get("model_type")
    if saved_as in SAVED_AS:
        return SAVED_AS[saved_as]
    if _json(model_dir / "sentence_bert_config.json").get("transformer_task") == "sequence-classification":
        return Task.CROSS_ENCODER
    if not (model_dir / "modules.json").is_file():
        archs = _json(model_dir / "config.json").get("architectures") or []
        if archs and str(archs[0]).endswith("ForSequenceClassification"):
            return Task.CROSS_ENCODER
    return Task.EMBEDDING


def not_a_cross_encoder(model_dir: Path) -> str | None:
    """Why ``model_dir`` is known not to be a trained cross-encoder, or None.

    sentence-transformers loads a SentenceTransformer or a bare ``BertModel`` as a CrossEncoder by adding a
    freshly initialised (random) classification head; exporting that would give meaningless scores.
    """
    model_dir = Path(model_dir)
    if detect_task(model_dir) is Task.CROSS_ENCODER:
        return None
    if (model_dir / "modules.json").is_file():
        return "it is a SentenceTransformer (modules.json without a sequence-classification Transformer)"
    archs = _json(model_dir / "config.json").get("architectures") or []
    if archs:
        return f"its architecture {archs[0]} has no sequence-classification head"
    return None


def exporter_for(task: Task) -> Callable[..., dict[str, Any]] | None:
    """The registered exporter of ``task``; None for embeddings (``export_model`` itself)."""
    target = EXPORTERS.get(task)
    if target is None:
        return None
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)
