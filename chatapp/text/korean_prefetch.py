"""A query's Korean keyword terms, analysed by Kiwi in a child process while a cold search does
everything else.

Kiwi takes over a second of CPU to load its model and holds the GIL while it does, so a thread
cannot overlap it with the rest of a search (settings, the query's vectors, the indexes). A
child process can: ``start(text)`` launches one that runs ``korean.korean_terms`` on the text
(the same analysis, so the same terms) and prints them as JSON, and ``korean_terms`` takes its
answer instead of loading Kiwi in this process. Where the machine has a free core the load
costs no wall-clock time; where it has none it costs a process start (tens of ms) more than
loading Kiwi here. A child that fails or is not done within ``WAIT_S`` is abandoned and Kiwi
loads here as before. Only ``chatapp search`` starts one: a chat or ``ask`` needs Kiwi in
process anyway (the citation check).
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import threading
from pathlib import Path

WAIT_S = 60.0
_ROOT = str(Path(__file__).resolve().parents[2])
_CHILD = (  # the terms of the text on stdin, as a JSON list on stdout
    "import json, sys\n"
    f"sys.path.insert(0, {_ROOT!r})\n"
    "from chatapp.text.korean import korean_terms\n"
    "text = sys.stdin.buffer.read().decode('utf-8')\n"
    "sys.stdout.write(json.dumps(korean_terms(text), ensure_ascii=False))\n"
)
_PENDING: dict[str, subprocess.Popen[bytes]] = {}
_DONE: dict[str, list[str]] = {}
_LOCK = threading.Lock()


def start(text: str) -> None:
    """Begin analysing ``text`` in a child process (once per text)."""
    with _LOCK:
        if text in _PENDING or text in _DONE:
            return
        try:
            child = subprocess.Popen(
                [sys.executable, "-c", _CHILD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            assert child.stdin is not None
            child.stdin.write(text.encode("utf-8"))
            child.stdin.close()
            child.stdin = None  # written: communicate() reads only
        except OSError:
            return  # no child: Kiwi loads in this process when the terms are needed
        _PENDING[text] = child
        if len(_PENDING) == 1:
            atexit.register(_stop_all)


def take(text: str) -> list[str] | None:
    """The child's terms for ``text`` (waiting for them), or None when none was started for
    it or it failed."""
    with _LOCK:
        if text in _DONE:
            return list(_DONE[text])
        child = _PENDING.pop(text, None)
    if child is None:
        return None
    try:
        out, _ = child.communicate(timeout=WAIT_S)
        terms = json.loads(out) if child.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError):
        child.kill()
        child.wait()
        return None
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        return None
    with _LOCK:
        _DONE[text] = terms
    return list(terms)


def _stop_all() -> None:
    """A search that ended early (an error, Ctrl+C) leaves no child behind."""
    with _LOCK:
        children = list(_PENDING.values())
        _PENDING.clear()
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()
