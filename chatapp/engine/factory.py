"""Pick and open the backend the settings ask for.

``create_backend`` is what the CLI, the UI and the benchmarks call: ``llama_cpp`` resolves the
model name or path and loads it in-process, ``openai`` talks to a server, ``fake`` replays
scripted tokens. Each backend module is imported only when chosen, so the fake path never pays
for llama.cpp and the in-process path never for HTTP clients.
"""

from __future__ import annotations

from chatapp.config import Settings
from chatapp.domain import GenerationParams
from chatapp.engine.base import Backend, LoadProgress
from chatapp.errors import UsageError

BACKEND_KINDS = ("llama_cpp", "openai", "fake")


def generation_params(settings: Settings) -> GenerationParams:
    """Sampling settings from ``[generation]`` as the params a backend takes."""
    gen = settings.generation
    return GenerationParams(
        temperature=gen.temperature,
        top_p=gen.top_p,
        top_k=gen.top_k,
        min_p=gen.min_p,
        repeat_penalty=gen.repeat_penalty,
        max_tokens=gen.max_tokens,
        seed=gen.seed,
        thinking=gen.thinking,
        reasoning_effort=gen.reasoning_effort,
    )


def create_backend(
    settings: Settings,
    *,
    model: str | None = None,
    backend: str | None = None,
    on_progress: LoadProgress | None = None,
) -> Backend:
    """Open the backend named by ``backend`` (default ``settings.backend.kind``).

    ``model`` overrides ``settings.model.name`` for the in-process backend. Raises
    ModelNotFoundError / ModelLoadError / BackendUnavailableError with a one-line message.
    """
    kind = backend or settings.backend.kind
    if kind == "llama_cpp":
        from chatapp.engine.llama_cpp import LlamaCppBackend
        from chatapp.models.registry import looks_like_path, resolve_model_path

        spec = model or settings.model.name
        path = resolve_model_path(spec)
        # A registry name ("smollm2-135m") is what the user knows the model by; for a path the
        # identity uses the file name.
        name = None if looks_like_path(spec) else spec
        return LlamaCppBackend(path, settings.model, name=name, on_progress=on_progress)
    if kind == "openai":
        from chatapp.engine.openai import OpenAIBackend

        return OpenAIBackend.from_settings(settings)
    if kind == "fake":
        from chatapp.engine.fake import FakeBackend

        return FakeBackend()
    raise UsageError(f"backend {kind!r}: unknown (choose one of {', '.join(BACKEND_KINDS)})")
