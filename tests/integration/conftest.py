"""Integration fixtures: the bundled SmolLM2 GGUF through real llama.cpp, loaded once per run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def llama_backend(bundled_gguf: Path) -> Iterator:
    """The bundled model in-process: small context, fixed load seed, no warm-resume cache (its
    tests make their own). Shared by the whole run, so tests must not assume an empty KV cache
    (the backend reuses whatever prefix matches)."""
    from chatapp.config import ModelSettings
    from chatapp.engine.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(
        bundled_gguf, ModelSettings(n_ctx=2048, kv_cache_mb=0), name="smollm2-135m", seed=1234
    )
    yield backend
    backend.close()
