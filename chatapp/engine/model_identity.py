"""Which model file produced a reply: name, quantization, size, architecture and its sha256.

Hashing a multi-gigabyte GGUF takes seconds, so the sha256 is computed once per file version and
remembered in the cache dir, keyed by path + size + mtime (a replaced file gets hashed again).
``Sha256Job`` hashes in a background thread that steps aside while a reply is being generated,
so loading a model stays fast and decoding is never slowed by it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from chatapp import paths
from chatapp.domain import ModelIdentity
from chatapp.models.gguf import GGUFInfo

log = logging.getLogger(__name__)

CACHE_FILE = "model-sha256.json"
CHUNK_BYTES = 8 * 1024 * 1024
_cache_lock = threading.Lock()


def _cache_path() -> Path:
    return paths.cache_dir() / CACHE_FILE


def _file_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _load_cache(cache_file: Path | None = None) -> dict[str, str]:
    try:
        data = json.loads((cache_file or _cache_path()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_sha256(path: Path, cache_file: Path | None = None) -> str | None:
    """The remembered sha256 of this exact file version, if it was hashed before."""
    try:
        key = _file_key(path)
    except OSError:
        return None
    return _load_cache(cache_file).get(key)


def _remember(path: Path, key: str, digest: str, cache_file: Path | None) -> None:
    with _cache_lock:
        cache = _load_cache(cache_file)
        # Forget older versions of the same file so the cache does not grow forever.
        prefix = f"{path.resolve()}|"
        cache = {k: v for k, v in cache.items() if not k.startswith(prefix)}
        cache[key] = digest
        target = cache_file or _cache_path()
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=0), encoding="utf-8")
        tmp.replace(target)


class HashingStopped(Exception):
    """The model was closed before its hash was done."""


def file_sha256(
    path: Path,
    *,
    may_run: threading.Event | None = None,
    stop: threading.Event | None = None,
    cache_file: Path | None = None,
) -> str:
    """sha256 of the file (from the cache when this file version was hashed before).

    ``may_run``, when given, is waited on before each chunk: clear it to pause the hashing;
    setting ``stop`` (and ``may_run``) abandons it with HashingStopped.
    """
    cached = cached_sha256(path, cache_file)
    if cached:
        return cached
    key = _file_key(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            if may_run is not None:
                may_run.wait()
            if stop is not None and stop.is_set():
                raise HashingStopped
            chunk = handle.read(CHUNK_BYTES)
            if not chunk:
                break
            digest.update(chunk)
    value = digest.hexdigest()
    _remember(path, key, value, cache_file)
    return value


class Sha256Job:
    """Hashes a model file in a daemon thread; ``result`` is None until it is done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Fixed now: the thread may finish after CHATAPP_HOME changed (tests switch it).
        self.cache_file = _cache_path()
        self.result: str | None = cached_sha256(path, self.cache_file)
        self.may_run = threading.Event()
        self.may_run.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.result is None:
            self._thread = threading.Thread(target=self._run, name="chatapp-sha256", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self.result = file_sha256(
                self.path, may_run=self.may_run, stop=self._stop, cache_file=self.cache_file
            )
        except HashingStopped:
            pass
        except OSError as exc:
            log.warning("model %s: could not hash it (%s)", self.path, exc)

    def stop(self) -> None:
        """Abandon the hashing (the model was closed); it starts over next time."""
        self._stop.set()
        self.may_run.set()

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until the hash is known (hashing resumes if it was paused)."""
        if self._thread is not None:
            self.may_run.set()
            self._thread.join(timeout)
        return self.result


def identity_from_gguf(
    info: GGUFInfo,
    *,
    name: str | None = None,
    sha256: str | None = None,
    backend: str = "llama_cpp",
) -> ModelIdentity:
    """A ModelIdentity from what the GGUF header says."""
    return ModelIdentity(
        name=name or info.path.stem,
        backend=backend,
        path=str(info.path),
        quant=info.file_type,
        size_bytes=info.file_size,
        sha256=sha256,
        architecture=info.architecture,
        n_ctx_train=info.context_length,
        parameters=info.parameters,
        chat_template=info.chat_template is not None,
    )
