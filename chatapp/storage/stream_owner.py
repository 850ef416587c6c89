"""Who is writing a streaming reply, so a reply left ``streaming`` by a dead process can be told
from one that a live chatapp process (another window, another `ask`) is still writing."""

from __future__ import annotations

import os
import socket


def this_process_owner() -> str:
    """Names the process writing a streaming reply: host, pid and the process's start time (a
    pid alone can be reused after a crash)."""
    import psutil

    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.2f}"


def stream_owner_alive(owner: str | None) -> bool:
    """Whether the process named by ``this_process_owner()`` is still running. SQLite's WAL
    needs one host, so a row written under another host name was written by a process that
    is gone (the machine was renamed)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    import psutil

    try:
        return f"{psutil.Process(int(pid_text)).create_time():.2f}" == started
    except (psutil.Error, ValueError):
        return False
