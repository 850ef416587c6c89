"""Every place chatapp reads or writes on disk, in one module.

Directories come from platformdirs. ``CHATAPP_HOME=/some/dir`` relocates all of them under one
folder (tests and portable installs use it). Each function creates its directory on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "chatapp"
HOME_ENV = "CHATAPP_HOME"


def _home_override() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """Where ``config.toml`` and the user's own templates live."""
    home = _home_override()
    return _ensure(home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME)))


def data_dir() -> Path:
    """Conversations database, document collections, the model registry."""
    home = _home_override()
    return _ensure(home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME)))


def cache_dir() -> Path:
    """Things that can be rebuilt: model hashes, static embedders, logs."""
    home = _home_override()
    return _ensure(home / "cache" if home else Path(platformdirs.user_cache_dir(APP_NAME)))


def models_dir() -> Path:
    """Downloaded GGUF models."""
    return _ensure(data_dir() / "models")


def config_file() -> Path:
    return config_dir() / "config.toml"


def templates_dir() -> Path:
    """The user's own prompt templates; a file here overrides a bundled one of the same name."""
    return _ensure(config_dir() / "templates")


def database_path() -> Path:
    return data_dir() / "chatapp.db"


def collections_dir() -> Path:
    """The embedded Chroma store and per-collection manifests."""
    return _ensure(data_dir() / "collections")


def log_file() -> Path:
    return cache_dir() / "chatapp.log"


def all_dirs() -> dict[str, Path]:
    return {
        "config": config_dir(),
        "data": data_dir(),
        "cache": cache_dir(),
        "models": models_dir(),
        "templates": templates_dir(),
        "collections": collections_dir(),
    }
