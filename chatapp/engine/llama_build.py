"""What the installed llama.cpp can do on this machine: version, CPU features, GPU backends and
devices. Used by ``chatapp doctor``; a helper of ``engine/llama_cpp.py`` (imports llama_cpp)."""

from __future__ import annotations

import ctypes
import os
from dataclasses import asdict, dataclass, field
from typing import Any

DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel", 4: "meta"}
GPU_BACKENDS = ("CUDA", "Metal", "Vulkan", "SYCL", "HIP", "ROCm", "MUSA", "CANN", "OpenCL")


@dataclass
class Device:
    name: str
    description: str
    kind: str
    memory_total_bytes: int | None = None


@dataclass
class LlamaBuild:
    """The llama.cpp that llama-cpp-python was built with."""

    llama_cpp_python: str
    system_info: str
    cpu_features: list[str]
    gpu_offload: bool
    backends: list[str] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    mmap: bool = True

    @property
    def gpu_backend(self) -> str | None:
        """``CUDA``, ``Metal``, ``Vulkan``… or None for a CPU-only build."""
        found = [b for b in self.backends if b in GPU_BACKENDS]
        if not found:
            found = [b for b in GPU_BACKENDS if f"{b} :" in self.system_info]
        return ", ".join(found) if found else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gpu_backend"] = self.gpu_backend
        return data


def _ggml_library() -> Any:
    import llama_cpp

    lib_dir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    for name in ("libggml.so", "libggml.dylib", "ggml.dll"):
        candidate = os.path.join(lib_dir, name)
        if os.path.exists(candidate):
            return ctypes.CDLL(candidate)
    return None


def _backends_and_devices() -> tuple[list[str], list[Device]]:
    lib = _ggml_library()
    if lib is None:
        return [], []
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_get.restype = ctypes.c_void_p
    lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    for fn in (lib.ggml_backend_dev_name, lib.ggml_backend_dev_description):
        fn.restype = ctypes.c_char_p
        fn.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_memory.restype = None
    lib.ggml_backend_dev_memory.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]

    backends = [
        lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)).decode()
        for i in range(lib.ggml_backend_reg_count())
    ]
    devices = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        kind = DEVICE_TYPES.get(lib.ggml_backend_dev_type(dev), "other")
        total: int | None = None
        if kind in ("gpu", "igpu"):
            free_b, total_b = ctypes.c_size_t(0), ctypes.c_size_t(0)
            lib.ggml_backend_dev_memory(dev, ctypes.byref(free_b), ctypes.byref(total_b))
            total = total_b.value or None
        devices.append(
            Device(
                name=lib.ggml_backend_dev_name(dev).decode(),
                description=lib.ggml_backend_dev_description(dev).decode(),
                kind=kind,
                memory_total_bytes=total,
            )
        )
    return backends, devices


def llama_build() -> LlamaBuild:
    """Probe the installed llama.cpp (imports llama_cpp; loads no model)."""
    import llama_cpp

    from chatapp.engine.llama_loading import route_llama_logs

    route_llama_logs()
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    features = [
        part.split("=")[0].split(":")[-1].strip()
        for part in info.replace("|", "\n").splitlines()
        if part.strip().endswith("= 1")
    ]
    try:
        backends, devices = _backends_and_devices()
    except (OSError, AttributeError):
        backends, devices = [], []
    return LlamaBuild(
        llama_cpp_python=llama_cpp.__version__,
        system_info=info,
        cpu_features=features,
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        backends=backends,
        devices=devices,
        mmap=bool(llama_cpp.llama_supports_mmap()),
    )
