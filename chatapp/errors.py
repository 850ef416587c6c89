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


class ConversationDeletedError(ChatappError):
    """A conversation deleted (another window, ``chatapp history rm``) while its reply was
    still being written: the reply stops and nothing more of it is stored."""

    exit_code = 1

    def __init__(self, conversation_id: int) -> None:
        super().__init__(
            f"conversation {conversation_id} was deleted while its reply was being written;"
            " the reply was not saved"
        )
        self.conversation_id = conversation_id


class DatabaseDamagedError(StoreError):
    """Pages inside a database file are damaged (a disk fault, a bad copy): ``parts`` names
    what is damaged, the message says how to get back what is readable."""

    def __init__(self, message: str, parts: list[str]) -> None:
        super().__init__(message)
        self.parts = parts


class NotWritableError(ChatappError):
    """A folder chatapp must write to is read-only (a read-only mount, no permission) or full.
    What only reads still works; the message names the folder and what to do."""

    exit_code = 2


class NotWritableFileError(OSError, NotWritableError):
    """A file that cannot be written for the same reasons: still an OSError to code that
    handles those (an export names its own --output), one line for everything else."""

    def __init__(self, errno: int, strerror: str, filename: object, message: str) -> None:
        OSError.__init__(self, errno, strerror, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message
