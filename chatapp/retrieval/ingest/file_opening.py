"""Opening the files a folder scan found, as the scan found them.

The scan (discovery.py) decides which files may be indexed — regular files, and symlinks only
when they lead inside the folders being indexed — and the read comes later, on another thread
or in another process. Whatever changes in between must not change what is read: a checked file
swapped for a link to ``~/.ssh/id_rsa``, for a FIFO (a plain ``open`` blocks until someone
writes to it) or a folder on its path swapped for a link elsewhere. So a scanned file is opened
from the indexed folder it lies in, one path component at a time, refusing every symlink
(``O_NOFOLLOW``; the links the scan approved are already resolved in its real path), without
blocking (``O_NONBLOCK``), and kept only when ``fstat`` shows a regular file with the device
and inode the scan saw. Every loader then works on the bytes read from that descriptor.
``FoundFile`` is what the scan hands on: the file's path and what the read must find again.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FoundFile:
    """A regular file to consider, with the stat that decides whether it changed and what
    the read must find again (``file_opening.open_found``)."""

    path: Path
    size: int
    mtime_ns: int
    device: int = 0
    inode: int = 0
    """The file the scan checked (its device and inode)."""
    real: Path | None = None
    """Its real path: the links the scan approved on the way resolved (None: a path no scan
    checked, opened as it stands)."""
    beneath: Path | None = None
    """The indexed folder (a real path) that ``real`` lies in: the read opens it from there
    without following any link (None: only its last component is refused as a link)."""

    @property
    def scanned(self) -> bool:
        """Whether a scan checked this file (what the read must find again is known)."""
        return self.real is not None


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | _CLOEXEC
_DIR_FLAGS = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
_READ_CHUNK = 1024 * 1024

SWAPPED_FOR_LINK = "changed into a symlink while indexing (not followed; the next run checks it)"
REPLACED = "replaced by another file while indexing (the next run reads it)"


class SkipFile(Exception):
    """A file that is not indexed; ``reason`` is shown in the summary."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def open_found(found: FoundFile) -> int:
    """A read-only descriptor of the file the scan found (the caller closes it); raises
    SkipFile when it is not there as scanned. A path no scan checked (``real`` None) is opened
    as it stands, its links followed, and must be a regular file."""
    try:
        fd = _open(found)
    except OSError as exc:
        raise SkipFile(_open_failure(exc, scanned=found.scanned)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SkipFile(
                "not a regular file" + (" (changed while indexing)" if found.scanned else "")
            )
        if found.scanned and (info.st_dev, info.st_ino) != (found.device, found.inode):
            raise SkipFile(REPLACED)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_found(found: FoundFile, limit: int) -> tuple[bytes, int]:
    """Up to ``limit + 1`` bytes of the scanned file (one more than allowed shows it is too
    large) and its size when opened; raises SkipFile."""
    fd = open_found(found)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            return b"", size
        parts: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, _READ_CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts), size
    except OSError as exc:
        raise SkipFile(f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def read_head(found: FoundFile, count: int) -> bytes:
    """The first ``count`` bytes of a scanned file (b"" when it cannot be opened as scanned)."""
    try:
        fd = open_found(found)
    except SkipFile:
        return b""
    try:
        return os.read(fd, count)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _open(found: FoundFile) -> int:
    if not found.scanned:
        return os.open(found.path, _FILE_FLAGS)
    target = found.real or found.path
    if found.beneath is None or os.open not in os.supports_dir_fd:  # no openat: Windows
        return os.open(target, _FILE_FLAGS | _NOFOLLOW)
    parts = target.relative_to(found.beneath).parts
    folder = os.open(found.beneath, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR_FLAGS, dir_fd=folder)
            os.close(folder)
            folder = inner
        return os.open(parts[-1], _FILE_FLAGS | _NOFOLLOW, dir_fd=folder)
    finally:
        os.close(folder)


def _open_failure(exc: OSError, scanned: bool) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and scanned:
        return SWAPPED_FOR_LINK
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENXIO:
        return "not a regular file"
    if isinstance(exc, FileNotFoundError):
        return "deleted while indexing"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot be read ({exc.strerror or exc})"


def read_small_file(path: Path, limit: int) -> bytes:
    """A small file read without blocking on a FIFO and without reading a device: its links
    followed (a ``.gitignore`` may be one), refused unless a regular file of at most ``limit``
    bytes. Raises SkipFile with the reason (FileNotFoundError when it is not there)."""
    try:
        fd = os.open(path, _FILE_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SkipFile(_open_failure(exc, scanned=False)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SkipFile("not a regular file")
        data = os.read(fd, limit + 1)
    except OSError as exc:
        raise SkipFile(f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SkipFile(f"too large (over {limit // 1024} KB)")
    return data
