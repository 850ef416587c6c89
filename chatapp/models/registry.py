"""Resolve what the user named (a model name or a GGUF path) to a file on disk.

Minimal for now: the bundled model by name, or a path. The models area extends this with the
catalog and downloaded models; ``resolve_model_path`` keeps its signature.
"""

from __future__ import annotations

from pathlib import Path

from chatapp.errors import ModelLoadError, ModelNotFoundError
from chatapp.models.bundled import BUNDLED_CHAT_NAME, bundled_chat_model


def looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.lower().endswith(".gguf") or spec.startswith(".")


def resolve_model_path(spec: str) -> Path:
    """A GGUF path for ``spec``; raises ModelNotFoundError / ModelLoadError with one line."""
    if spec == BUNDLED_CHAT_NAME:
        return bundled_chat_model()
    if looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.exists():
            raise ModelLoadError(path, "no such file")
        return path
    raise ModelNotFoundError(
        f"model {spec!r}: unknown name (try `chatapp models list`, or give a path to a .gguf)"
    )
