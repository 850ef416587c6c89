"""Errors a user can cause, each carrying a one-line message that names the thing and the problem.

The CLI prints ``error: <message>`` and exits with ``exit_code``; the UI shows the message.
"""

from __future__ import annotations


class ChatappError(Exception):
    """Base for errors caused by user input or the user's environment (never a bug)."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ChatappError):
    """A bad flag or argument."""

    exit_code = 2


class ConfigError(ChatappError):
    exit_code = 2


class ModelLoadError(ChatappError):
    """A model file that is missing, not a GGUF, truncated, or that llama.cpp refused."""

    exit_code = 2

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"model {path}: {problem}")
        self.path = path
        self.problem = problem


class ModelNotFoundError(ChatappError):
    exit_code = 2


class BackendUnavailableError(ChatappError):
    """A remote server that cannot be reached; the message names its URL."""

    exit_code = 3


class ContextOverflowError(ChatappError):
    """Even the prompt alone does not fit in the model's context."""

    exit_code = 2


class StoreError(ChatappError):
    """The conversation database cannot be opened or is corrupt."""

    exit_code = 2


class NotFoundError(ChatappError):
    """An unknown conversation, message, template, collection…"""

    exit_code = 2


class TemplateError(ChatappError):
    exit_code = 2


class RetrievalError(ChatappError):
    exit_code = 2
