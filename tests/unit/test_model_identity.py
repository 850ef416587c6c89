"""Model file hashes: computed once per file version, remembered in the cache dir."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from chatapp import paths
from chatapp.engine.model_identity import (
    HashingStopped,
    Sha256Job,
    cached_sha256,
    file_sha256,
    identity_from_gguf,
)
from chatapp.models.gguf import read_gguf_info


def test_hash_is_cached_per_file_version(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"first version")
    assert cached_sha256(model) is None
    first = file_sha256(model)
    assert first == hashlib.sha256(b"first version").hexdigest()
    assert cached_sha256(model) == first
    assert (paths.cache_dir() / "model-sha256.json").exists()

    model.write_bytes(b"second version!")  # new size and mtime: a new version
    os.utime(model, ns=(1, 1))
    assert cached_sha256(model) is None
    assert file_sha256(model) == hashlib.sha256(b"second version!").hexdigest()


def test_background_job_and_stop(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"x" * 1000)
    job = Sha256Job(model)
    assert job.wait(timeout=30) == hashlib.sha256(b"x" * 1000).hexdigest()
    assert Sha256Job(model).result == job.result  # known at once from the cache

    stop = threading.Event()
    stop.set()
    other = tmp_path / "n.gguf"
    other.write_bytes(b"y")
    with pytest.raises(HashingStopped):
        file_sha256(other, stop=stop)
    assert cached_sha256(other) is None


def test_identity_from_the_bundled_header(bundled_gguf: Path) -> None:
    identity = identity_from_gguf(read_gguf_info(bundled_gguf), name="smollm2-135m")
    assert identity.to_dict() | {"path": None} == {
        "name": "smollm2-135m",
        "backend": "llama_cpp",
        "path": None,
        "quant": "Q4_1",
        "size_bytes": bundled_gguf.stat().st_size,
        "sha256": None,
        "architecture": "llama",
        "n_ctx_train": 8192,
        "parameters": identity.parameters,
        "chat_template": True,
    }
    assert identity_from_gguf(read_gguf_info(bundled_gguf)).name == bundled_gguf.stem
