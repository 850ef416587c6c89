"""Saved KV states as files: their header, whose conversation each holds, the folder's size, and
deleting them (a deleted conversation's, the least recently used, all).

A state file holds the token ids of a conversation (and the model's cache computed from them):
detokenized, it is the conversation. So every state names the conversation it was saved for
(``conversations`` in its header), a state is saved only for a conversation that is stored,
and deleting a conversation deletes every state that names it. States that name no conversation
(an older version's, or saved by direct use of the backend) or whose header cannot be read may
hold anyone's tokens: a deletion takes them too.

One file per saved state, under ``cache_dir()/kv-states/<model sha256>-<n_ctx>/``::

    MAGIC | header length (u32) | header JSON | tokens (int32) | state bytes
"""

from __future__ import annotations

import contextlib
import json
import logging
import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)

MAGIC = b"CHATAPP-KV1\n"
SUFFIX = ".kvstate"
PARTIAL_SUFFIX = ".partial"
MAX_HEADER = 65536


def states_dir() -> Path:
    from chatapp import paths

    return paths.cache_dir() / "kv-states"


@dataclass(frozen=True)
class StateOwner:
    """Whose tokens the next saved state holds.

    ``conversation``: the key of a stored conversation; None for a turn that is not stored, for
    which no state is saved (nothing could delete it later). ``exists`` is asked right before
    the file is written and again once it is in place: a state of a conversation deleted
    meanwhile is removed at once, so none outlives its conversation."""

    conversation: str | None
    exists: Callable[[], bool] = field(default=lambda: True, compare=False)


@runtime_checkable
class KeepsStates(Protocol):
    """A backend that saves KV states after a reply (the in-process llama.cpp one)."""

    def keep_state_for(self, owner: StateOwner) -> None:
        """Whose conversation the state saved after the next reply belongs to."""
        ...


@dataclass(frozen=True)
class SavedState:
    """One state file's header (its tokens are read only when it may be used)."""

    path: Path
    model_sha256: str
    n_ctx: int
    n_tokens: int
    tokens_sha256: str
    state_sha256: str
    state_bytes: int
    llama_cpp: str
    conversations: tuple[str, ...] = ()


def read_header(path: Path) -> SavedState:
    """The header of the state file at ``path``; raises OSError or ValueError."""
    try:
        with path.open("rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                raise ValueError("not a chatapp KV state")
            (length,) = struct.unpack("<I", handle.read(4))
            if length > MAX_HEADER:
                raise ValueError("header too long")
            data = json.loads(handle.read(length))
        return SavedState(
            path=path,
            model_sha256=str(data["model_sha256"]),
            n_ctx=int(data["n_ctx"]),
            n_tokens=int(data["n_tokens"]),
            tokens_sha256=str(data["tokens_sha256"]),
            state_sha256=str(data["state_sha256"]),
            state_bytes=int(data["state_bytes"]),
            llama_cpp=str(data["llama_cpp"]),
            conversations=tuple(str(c) for c in data.get("conversations") or ()),
        )
    except (KeyError, TypeError, AttributeError, struct.error) as exc:
        raise ValueError(str(exc)) from None


def state_files(root: Path, pattern: str = f"*{SUFFIX}") -> list[Path]:
    return sorted(root.glob(f"*/{pattern}")) if root.is_dir() else []


def cache_size(root: Path | None = None) -> tuple[int, int]:
    """(files, bytes) of saved states of every model."""
    files = state_files(root or states_dir())
    total = 0
    for path in files:
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return len(files), total


def evict_to(root: Path, max_bytes: int) -> int:
    """Delete least recently used states until they fit ``max_bytes``; returns files deleted."""
    stats = []
    for path in state_files(root):
        with contextlib.suppress(OSError):
            info = path.stat()
            stats.append((info.st_mtime, info.st_size, path))
    total = sum(size for _, size, _ in stats)
    removed = 0
    for _, size, path in sorted(stats):
        if total <= max_bytes:
            break
        with contextlib.suppress(OSError):
            path.unlink()
            total -= size
            removed += 1
    return removed


def clear(root: Path | None = None) -> tuple[int, int]:
    """Delete every saved state (and any being written); returns (files, bytes) freed."""
    base = root or states_dir()
    count, size = cache_size(base)
    for path in state_files(base) + state_files(base, f"*{PARTIAL_SUFFIX}"):
        with contextlib.suppress(OSError):
            path.unlink()
    for folder in base.glob("*") if base.is_dir() else []:
        with contextlib.suppress(OSError):
            folder.rmdir()
    return count, size


def forget_conversations(
    keys: Collection[str],
    *,
    alive: Callable[[str], bool] | None = None,
    root: Path | None = None,
) -> int:
    """Delete every state that may hold tokens of the conversations ``keys``: those naming one
    of them, those naming a conversation ``alive`` says is gone, those naming none, unreadable
    ones, and any being written (its writer checks its conversation again once it is in place).
    Returns the files deleted."""
    base = root or states_dir()
    deleted = 0
    for path in state_files(base, f"*{PARTIAL_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            deleted += 1
    for path in state_files(base):
        try:
            owners = read_header(path).conversations
        except (OSError, ValueError):
            owners = ()
        others = bool(owners) and not any(key in keys for key in owners)
        if others and (alive is None or all(alive(key) for key in owners)):
            continue  # another conversation's, still stored
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            deleted += 1
            log.info("KV state %s deleted with its conversation", path.name)
    return deleted
