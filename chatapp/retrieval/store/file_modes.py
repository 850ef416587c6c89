"""A collection's files are private like the rest of chatapp's data: folders 0700, files 0600.

chromadb and bm25s create their files with the process's umask (0644 / 0755 under the usual
022), so every write to the local store or the keyword index runs under ``private_writes``
(umask 077); a tree an older version left open is tightened when it is next opened
(``tighten_tree``). The umask is process-wide: while it is set, anything else chatapp writes is
private too, which is what it wants anyway.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

from chatapp.paths import make_private

_PRIVATE_UMASK = 0o077
_lock = threading.Lock()
_depth = 0
_saved_umask = 0


@contextlib.contextmanager
def private_writes() -> Iterator[None]:
    """Files and folders created meanwhile get no group or other permissions (nests, and
    threads may overlap: the umask the outermost one found is restored by the last out)."""
    global _depth, _saved_umask
    if os.name != "posix":
        yield
        return
    with _lock:
        if _depth == 0:
            old = os.umask(_PRIVATE_UMASK)
            os.umask(old | _PRIVATE_UMASK)
            _saved_umask = old
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                os.umask(_saved_umask)


P = ParamSpec("P")
R = TypeVar("R")


def writes_privately(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` run under ``private_writes``."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with private_writes():
            return function(*args, **kwargs)

    return wrapper


def tighten_tree(root: Path) -> None:
    """Take group and other permissions off ``root`` and everything under it that is ours
    (symlinks are not followed; a path that vanishes meanwhile is left alone)."""
    if os.name != "posix":
        return
    try:
        top = os.lstat(root)
    except OSError:
        return
    if not stat.S_ISDIR(top.st_mode):
        make_private(root)
        return
    make_private(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            with contextlib.suppress(OSError):
                if not stat.S_ISLNK(os.lstat(path).st_mode):
                    make_private(path)
