"""Run llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``) on
loopback, for the OpenAI backend's tests and benchmark.

On CPUs where llama.cpp would use Intel AMX buffers (which crash in the first decode on the
virtual machines we measured; see chatapp.engine.llama_loading), the server module is started
through a two-line launcher that turns llama.cpp's extra buffer types off, the same workaround
chatapp's in-process engine applies. Everything else is the unmodified server.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

_LAUNCHER = """
import runpy, sys
import llama_cpp.llama_cpp as low
_default = low.llama_model_default_params
def _params():
    params = _default()
    params.use_extra_bufts = False
    return params
low.llama_model_default_params = _params
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
runpy.run_module("llama_cpp.server", run_name="__main__")
"""


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LlamaServer:
    """A ``llama_cpp.server`` subprocess serving one GGUF on 127.0.0.1."""

    def __init__(
        self, model: Path, *, n_ctx: int = 2048, n_threads: int = 2, alias: str = "bundled"
    ) -> None:
        from chatapp.engine.llama_loading import cpu_has_amx

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        args = [
            "--model",
            str(model),
            "--model_alias",
            alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(n_ctx),
            "--n_threads",
            str(n_threads),
            "--n_threads_batch",
            str(n_threads),
        ]
        head = [sys.executable, "-c", _LAUNCHER] if cpu_has_amx() else [sys.executable, "-m"]
        if head[-1] == "-m":
            head.append("llama_cpp.server")
        self.command = [*head, *args]
        self.process: subprocess.Popen[bytes] | None = None
        # A file, not a pipe: llama.cpp logs ~200 KB while loading and would fill a pipe.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server

    def start(self, timeout_s: float = 120.0) -> LlamaServer:
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"llama_cpp.server not ready after {timeout_s:.0f} s")

    def log_tail(self, size: int = 2000) -> str:
        self._log.seek(0)
        return self._log.read()[-size:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
