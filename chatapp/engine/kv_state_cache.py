"""Warm resume across processes: the model's KV cache for a conversation, kept on disk.

Reading a conversation back into the model (prefill) is most of the wait before a follow-up
starts in a new process (``chatapp ask --continue``, reopening a chat): 3.9 s at turn 8 with
the 135M model here, tens of seconds with a 3B one. After a reply, the llama.cpp KV state of
what the model has read and written (sequence 0: its prompt tokens and the reply) is saved; the
next process that is about to evaluate a prompt starting with those tokens loads it and
evaluates only what is new.

One file per saved state (the format and the deleting of files: kv_state_files.py).
The header names the model's sha256, the context size, the llama-cpp-python version, the token
count, and the sha256 of the tokens and of the state bytes. A state is used only when all of it
matches and its tokens are a prefix of the new prompt: anything stale, truncated or mismatched
is ignored and deleted, never trusted. The folder is kept under a size bound, least recently
used first out. A state is saved only for a stored conversation and names it, so deleting the
conversation deletes its states (see StateOwner).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chatapp.engine.kv_state_files import (
    MAGIC,
    PARTIAL_SUFFIX,
    SUFFIX,
    SavedState,
    StateOwner,
    cache_size,
    clear,
    evict_to,
    read_header,
    states_dir,
)

__all__ = [
    "KVStateCache",
    "SavedState",
    "StateOwner",
    "WarmResume",
    "cache_size",
    "clear",
    "evict_to",
    "states_dir",
]

log = logging.getLogger(__name__)

MIN_GAIN_TOKENS = 32
"""A saved state is loaded only when it spares at least this many prompt tokens."""


def _llama_version() -> str:
    import llama_cpp

    return str(getattr(llama_cpp, "__version__", "?"))


def _tokens_digest(tokens: np.ndarray) -> str:
    return hashlib.sha256(tokens.astype("<i4").tobytes()).hexdigest()


def common_prefix(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    left, right = np.asarray(a[:n]), np.asarray(b[:n])
    differ = np.flatnonzero(left != right)
    return int(differ[0]) if differ.size else n


class KVStateCache:
    """Saved KV states of one model (sha256) at one context size, bounded to ``max_bytes``."""

    def __init__(
        self, model_sha256: str, n_ctx: int, *, max_bytes: int, root: Path | None = None
    ) -> None:
        self.model_sha256 = model_sha256
        self.n_ctx = n_ctx
        self.max_bytes = max_bytes
        self.root = root or states_dir()
        self.folder = self.root / f"{model_sha256}-{n_ctx}"

    # -- saving --------------------------------------------------------------------------

    def save(self, llm: Any, owner: StateOwner | None = None) -> Path | None:
        """Write the state of ``llm`` now (its tokens and sequence 0 of its KV cache), naming
        ``owner``'s conversation (None: direct use of the backend, no conversation named). A
        state larger than the whole bound is not written; nothing is written, or kept, for a
        conversation that no longer exists."""
        import llama_cpp

        n_tokens = int(llm.n_tokens)
        if n_tokens < MIN_GAIN_TOKENS or self.max_bytes <= 0:
            return None
        if owner is not None and (owner.conversation is None or not owner.exists()):
            return None
        tokens = np.asarray(llm.input_ids[:n_tokens], dtype="<i4")
        ctx = llm._ctx.ctx
        size = int(llama_cpp.llama_state_seq_get_size(ctx, 0))
        if size + 4 * n_tokens > self.max_bytes:
            return None  # it would push out every other state and then itself
        buffer = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0))
        if written <= 0 or written > size:
            return None
        state = ctypes.string_at(buffer, written)
        digest = _tokens_digest(tokens)
        header = json.dumps(
            {
                "model_sha256": self.model_sha256,
                "n_ctx": self.n_ctx,
                "n_tokens": n_tokens,
                "tokens_sha256": digest,
                "state_sha256": hashlib.sha256(state).hexdigest(),
                "state_bytes": len(state),
                "llama_cpp": _llama_version(),
                "conversations": [owner.conversation] if owner is not None else [],
            }
        ).encode()
        # The states hold the conversation's tokens: folders 0700 (mkdir's mode reaches only
        # the last folder of the path), files 0600.
        from chatapp.paths import make_private

        for folder in (self.root, self.folder):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            make_private(folder)
        target = self.folder / f"{digest[:32]}{SUFFIX}"
        partial = target.with_suffix(PARTIAL_SUFFIX)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(MAGIC + struct.pack("<I", len(header)) + header)
                out.write(tokens.tobytes())
                out.write(state)
            os.replace(partial, target)  # a reader sees a whole file or none
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        if owner is not None and not owner.exists():
            # Deleted while this was written: its deleter may have looked before the file was
            # in place, so this writer removes it.
            self._discard(target, "its conversation was deleted")
            return None
        self._drop_superseded(target, tokens)
        self.evict()
        return target

    def _drop_superseded(self, kept: Path, tokens: np.ndarray) -> None:
        """States whose tokens all lead the new one's (earlier turns of the same conversation)
        can only ever spare less: delete them."""
        for entry in self.entries():
            if entry.path == kept or entry.n_tokens > len(tokens):
                continue
            earlier = self._read_tokens(entry)
            if earlier is not None and common_prefix(earlier, tokens) == len(earlier):
                self._discard(entry.path, "superseded by a longer state of the same chat")

    # -- finding and loading -------------------------------------------------------------

    def entries(self) -> list[SavedState]:
        found = []
        for path in self.folder.glob(f"*{SUFFIX}") if self.folder.is_dir() else []:
            entry = self._header(path)
            if entry is not None:
                found.append(entry)
        return found

    def _header(self, path: Path) -> SavedState | None:
        try:
            entry = read_header(path)
        except (OSError, ValueError) as exc:
            self._discard(path, f"unreadable ({exc})")
            return None
        if (
            entry.model_sha256 != self.model_sha256
            or entry.n_ctx != self.n_ctx
            or entry.llama_cpp != _llama_version()
        ):
            self._discard(path, "made for another model, context size or llama.cpp")
            return None
        return entry

    def _read_tokens(self, entry: SavedState) -> np.ndarray | None:
        """Just the entry's tokens (checked), without reading its state."""
        try:
            with entry.path.open("rb") as handle:
                handle.seek(len(MAGIC))
                (length,) = struct.unpack("<I", handle.read(4))
                handle.seek(len(MAGIC) + 4 + length)
                tokens = np.frombuffer(handle.read(4 * entry.n_tokens), dtype="<i4")
        except (OSError, struct.error, ValueError) as exc:
            self._discard(entry.path, f"unreadable ({exc})")
            return None
        if len(tokens) != entry.n_tokens or _tokens_digest(tokens) != entry.tokens_sha256:
            self._discard(entry.path, "damaged (its tokens do not match)")
            return None
        return tokens

    def _read(self, entry: SavedState) -> tuple[np.ndarray, bytes] | None:
        """The entry's tokens and state, checked against its header (None: discarded)."""
        try:
            raw = entry.path.read_bytes()
            (length,) = struct.unpack("<I", raw[len(MAGIC) : len(MAGIC) + 4])
            start = len(MAGIC) + 4 + length
            end = start + 4 * entry.n_tokens
            tokens = np.frombuffer(raw[start:end], dtype="<i4")
            state = raw[end:]
        except (OSError, struct.error, ValueError) as exc:
            self._discard(entry.path, f"unreadable ({exc})")
            return None
        if (
            len(tokens) != entry.n_tokens
            or len(state) != entry.state_bytes
            or _tokens_digest(tokens) != entry.tokens_sha256
            or hashlib.sha256(state).hexdigest() != entry.state_sha256
        ):
            self._discard(entry.path, "damaged (its checksums do not match)")
            return None
        return tokens, state

    def restore_for(self, llm: Any, prompt: Sequence[int]) -> int:
        """Load the saved state that spares the most of ``prompt`` when it beats what the KV
        cache already holds by ``MIN_GAIN_TOKENS``; returns the prompt tokens it covers (0:
        nothing loaded). Only a state whose tokens are a prefix of the prompt up to the point
        used is loaded, so the model never sees a context the prompt does not have."""
        current = common_prefix(np.asarray(llm.input_ids[: llm.n_tokens]), prompt)
        best: tuple[int, SavedState] | None = None
        for entry in self.entries():
            if entry.n_tokens - current < MIN_GAIN_TOKENS:
                continue
            tokens = self._read_tokens(entry)
            if tokens is None:
                continue
            gain = common_prefix(tokens, prompt)
            if gain - current >= MIN_GAIN_TOKENS and (best is None or gain > best[0]):
                best = (gain, entry)
        if best is None:
            return 0
        read = self._read(best[1])
        if read is None or not self._load(llm, *read, keep=best[0]):
            return 0
        with contextlib.suppress(OSError):
            os.utime(best[1].path)  # recently used
        return best[0]

    def _load(self, llm: Any, tokens: np.ndarray, state: bytes, *, keep: int) -> bool:
        import llama_cpp

        ctx = llm._ctx.ctx
        memory = llama_cpp.llama_get_memory(ctx)
        llama_cpp.llama_memory_clear(memory, True)
        buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if int(llama_cpp.llama_state_seq_set_data(ctx, buffer, len(state), 0)) != len(state):
            llama_cpp.llama_memory_clear(memory, True)
            llm.n_tokens = 0
            return False
        # Keep only the part the new prompt shares; llama-cpp-python reuses it from here.
        llama_cpp.llama_memory_seq_rm(memory, 0, keep, -1)
        llm.input_ids[:keep] = tokens[:keep]
        llm.n_tokens = keep
        return True

    # -- size ----------------------------------------------------------------------------

    def evict(self) -> None:
        """Delete least recently used states until every model's together fit ``max_bytes``."""
        evict_to(self.root, self.max_bytes)

    def _discard(self, path: Path, why: str) -> None:
        log.info("KV state %s ignored and deleted: %s", path.name, why)
        with contextlib.suppress(OSError):
            path.unlink()


class WarmResume:
    """The backend's use of the cache: before a reply, load the saved state that spares the
    most prompt; after it, save the new state in a background thread that waits for the model
    (the reply is done by then: nothing on its path waits for the write).

    Whose conversation a reply belongs to is told before it starts (``keep_state_for``); a
    reply nobody claimed is saved naming no conversation (direct use of the backend), which
    any conversation's deletion also deletes."""

    def __init__(self, llm: Any, lock: Any, n_ctx: int, model_sha256: Any, max_bytes: int) -> None:
        self._llm = llm
        self._lock = lock
        self._n_ctx = n_ctx
        self._model_sha256 = model_sha256
        """Returns the model's sha256 (blocking=False: None while it is still being hashed)."""
        self._max_bytes = max_bytes
        self._saver: Any = None
        self.restored_tokens = 0
        self._next_owner: StateOwner | None = None
        self._reply_owner: StateOwner | None = None
        self._owner_of_tokens: StateOwner | None = None
        """Whose tokens the model holds now (set with the model's lock held)."""

    def keep_state_for(self, owner: StateOwner) -> None:
        """The next reply belongs to ``owner``'s conversation (None in it: save no state)."""
        self._next_owner = owner

    def _cache(self, *, wait: bool, root: Path | None = None) -> KVStateCache | None:
        sha = self._model_sha256(wait)
        if not sha or self._max_bytes <= 0:
            return None
        return KVStateCache(sha, self._n_ctx, max_bytes=self._max_bytes, root=root)

    def before(self, tokens: Sequence[int]) -> int:
        """Called with the model's lock held, before it evaluates ``tokens``."""
        self._reply_owner, self._next_owner = self._next_owner, None
        self._owner_of_tokens = None  # the model's tokens change from here
        cache = self._cache(wait=False)
        self.restored_tokens = 0
        if cache is None:
            return 0
        try:
            self.restored_tokens = cache.restore_for(self._llm, tokens)
        except Exception:  # a state that cannot be loaded is only a missed shortcut
            log.exception("KV state not loaded")
        return self.restored_tokens

    def after(self) -> None:
        """Called when a reply ends (the model's lock held): save the state off the reply's
        path."""
        import threading

        self._owner_of_tokens = self._reply_owner
        if self._max_bytes <= 0:
            return
        if self._reply_owner is not None and self._reply_owner.conversation is None:
            return  # a turn that is not stored leaves no state behind
        if self._saver is not None and self._saver.is_alive():
            return  # still waiting for the model: it will save the newest state
        # The folder is decided now, by the settings of the reply that just ended.
        root = states_dir()
        self._saver = threading.Thread(
            target=self._save, args=(root,), name="kv-state-save", daemon=True
        )
        self._saver.start()

    def _save(self, root: Path) -> None:
        cache = self._cache(wait=True, root=root)
        if cache is None:
            return
        with self._lock:
            if self._llm is None or getattr(self._llm, "_ctx", None) is None:
                return
            owner = self._owner_of_tokens  # the newest reply's, whose tokens the model holds
            try:
                cache.save(self._llm, owner)
            except Exception:  # a full disk loses the shortcut, never the reply
                log.exception("KV state not saved")

    def wait(self) -> None:
        """Let a save in progress finish (before closing the model)."""
        saver = self._saver
        if saver is not None and saver.is_alive():
            saver.join()

    def closed(self) -> None:
        self._llm = None
