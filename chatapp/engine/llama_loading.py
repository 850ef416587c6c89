"""Loading a GGUF through llama-cpp-python the way chatapp needs it (helpers of llama_cpp.py).

llama.cpp's own log lines go to Python logging (never to the terminal, where they would scribble
on the Textual screen), recent errors are kept to explain load failures in one line, and the
model params that ``llama_cpp.Llama`` builds internally get a progress callback and, on CPUs with
AMX, llama.cpp's extra CPU buffer types switched off.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

from chatapp.engine.base import LoadProgress

_llama_log = logging.getLogger("chatapp.llama_cpp")

# ggml_log_level (ggml.h): 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line.
# Kept below WARNING: llama.cpp warns about harmless things ("n_ctx_seq < n_ctx_train"), and
# its errors reach the user as our own one-line messages (see recent_errors).
_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.INFO}
_ERROR, _CONT = 4, 5
_last_level = [1]
recent_errors: deque[str] = deque(maxlen=8)
_log_callback: Any = None
load_lock = threading.Lock()


def route_llama_logs() -> None:
    """Send llama.cpp's own log lines to Python logging instead of the terminal (the Textual
    screen must not be scribbled on) and remember recent errors for load-failure messages."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", "replace").rstrip()
        if level == _CONT:
            level = _last_level[0]
        _last_level[0] = level
        if not line:
            return
        if level == _ERROR:
            recent_errors.append(line)
        _llama_log.log(_LEVELS.get(level, logging.DEBUG), "%s", line)

    _log_callback = on_log  # keep a reference: llama.cpp holds only the C pointer
    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))


def usable_cores() -> int:
    """CPU cores this process may run on: taskset and cpusets, and a container's CPU quota
    (``docker --cpus=2`` on a 64-core host is 2: more threads would only be throttled)."""
    from chatapp.engine.thread_fit import cgroup_cpu_limit, usable_cpus

    cores = len(usable_cpus())
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, math.ceil(limit - 0.01))  # 1.5 CPUs: two threads
    return max(1, cores)


def default_gpu_layers() -> int:
    """All layers (-1) when llama.cpp was built with a GPU backend, else 0."""
    import llama_cpp

    return -1 if llama_cpp.llama_supports_gpu_offload() else 0


@functools.cache
def cpu_has_amx() -> bool:
    """Whether llama.cpp's CPU backend would use Intel AMX tiles."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    return "AMX_INT8 = 1" in info


@contextlib.contextmanager
def without_library_chat_templates() -> Iterator[None]:
    """Keep ``llama_cpp.Llama`` from compiling the model file's chat templates while it loads.

    llama-cpp-python builds a Jinja2 chat handler for every template in the GGUF's metadata as
    it loads. chatapp never uses them (chat_formats renders the chat, within limits), and Jinja
    evaluates a template's constant expressions when it compiles: a template holding
    ``{{ 'A' * 3000000000 }}`` would take gigabytes before the first token."""
    import llama_cpp.llama_chat_format as library

    class NotCompiled:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def to_chat_handler(self) -> Any:
            def refuse(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("chatapp renders chat templates itself (chat_formats)")

            return refuse

    original = library.Jinja2ChatFormatter
    library.Jinja2ChatFormatter = NotCompiled  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        library.Jinja2ChatFormatter = original  # type: ignore[misc]


@contextlib.contextmanager
def model_params_hook(progress: LoadProgress, *, use_extra_buffers: bool) -> Iterator[None]:
    """Adjust the model params that ``llama_cpp.Llama`` builds internally (it has no arguments
    for these): a load-progress callback, and the switch for llama.cpp's extra CPU buffer types.

    Extra buffer types are turned off on CPUs with AMX: on the virtual machines we measured, the
    AMX buffer type crashes llama.cpp (segfault in the first decode); the plain CPU path works.
    """
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params

    @low.llama_progress_callback
    def on_progress(fraction: float, user_data: ctypes.c_void_p) -> bool:
        with contextlib.suppress(Exception):
            progress(0.1 + 0.85 * float(fraction), "loading weights")
        return True

    def patched() -> Any:
        params = original()
        params.progress_callback = on_progress
        if not use_extra_buffers:
            params.use_extra_bufts = False
        return params

    low.llama_model_default_params = patched
    try:
        yield
    finally:
        low.llama_model_default_params = original
