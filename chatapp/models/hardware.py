"""How much memory this machine has, and whether a model of a given size will fit in it.

``fit_hint`` turns a model's RAM need into "fits" / "tight" / "too big" for lists and the model
picker; ``memory_warning`` is what the CLI and UI call before loading a model file, so a model
that would push the machine into swap is announced instead of discovered.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

FitHint = Literal["fits", "tight", "too big"]
GB = 1e9
# Runtime overhead of llama.cpp beyond the weights and KV cache (compute buffers, tokenizer).
_RUNTIME_OVERHEAD_BYTES = 300_000_000
# Loose KV-cache estimate per token of context for the small models chatapp targets (f16 cache,
# grouped-query attention); the GGUF's own shapes would be exact, but this only feeds a warning.
_KV_BYTES_PER_TOKEN = 100_000


@dataclass(frozen=True)
class GpuInfo:
    name: str
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class MachineMemory:
    """RAM (and NVIDIA VRAM, when ``nvidia-smi`` answers) of this machine, in bytes."""

    total_ram: int
    available_ram: int
    gpus: tuple[GpuInfo, ...] = ()

    @property
    def total_vram(self) -> int:
        return sum(g.total_bytes for g in self.gpus)

    def describe(self) -> str:
        text = f"RAM {self.available_ram / GB:.1f} of {self.total_ram / GB:.1f} GB free"
        for gpu in self.gpus:
            text += f"; {gpu.name} {gpu.free_bytes / GB:.1f} of {gpu.total_bytes / GB:.1f} GB free"
        return text


def _nvidia_gpus() -> tuple[GpuInfo, ...]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    try:
        out = subprocess.run(
            [
                exe,
                "--query-gpu=name,memory.total,memory.free",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            mib = 1024 * 1024
            gpus.append(GpuInfo(parts[0], int(parts[1]) * mib, int(parts[2]) * mib))
    return tuple(gpus)


@lru_cache(maxsize=1)
def _cached_gpus() -> tuple[GpuInfo, ...]:
    # nvidia-smi takes ~0.1-1 s; GPUs do not come and go while chatapp runs.
    return _nvidia_gpus()


def machine_memory() -> MachineMemory:
    """Current RAM figures (fresh each call) and the GPUs found at first call."""
    import psutil

    vm = psutil.virtual_memory()
    return MachineMemory(total_ram=vm.total, available_ram=vm.available, gpus=_cached_gpus())


def fit_hint(ram_needed: int, memory: MachineMemory | None = None) -> FitHint:
    """Whether a model needing ``ram_needed`` bytes runs comfortably here.

    "fits": it fits in a GPU's VRAM, or in 80% of the RAM free right now. "tight": it fits in
    90% of total RAM, so closing other programs would make room. "too big": it does not.
    """
    mem = memory or machine_memory()
    if any(ram_needed <= 0.9 * g.total_bytes for g in mem.gpus):
        return "fits"
    if ram_needed <= 0.8 * mem.available_ram:
        return "fits"
    if ram_needed <= 0.9 * mem.total_ram:
        return "tight"
    return "too big"


@dataclass(frozen=True)
class EmbedderSpec:
    """What an embedder needs (RAM while indexing, fp32 on CPU) and whether it reads Korean."""

    ram_bytes: int
    korean: bool
    note: str = ""


EMBEDDERS: dict[str, EmbedderSpec] = {
    "auto": EmbedderSpec(700_000_000, True, "MiniLM for English + USE multilingual (default)"),
    "bundled": EmbedderSpec(400_000_000, False, "all-MiniLM-L6-v2, English only"),
    "fast": EmbedderSpec(200_000_000, False, "static, distilled from MiniLM"),
    "use-multilingual": EmbedderSpec(400_000_000, True, "USE multilingual v3, 16 languages"),
    "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2": EmbedderSpec(
        1_000_000_000, True, "50+ languages"
    ),
    "intfloat/multilingual-e5-small": EmbedderSpec(1_000_000_000, True),
    "intfloat/multilingual-e5-base": EmbedderSpec(2_000_000_000, True),
    "intfloat/multilingual-e5-large": EmbedderSpec(4_000_000_000, True),
    "BAAI/bge-m3": EmbedderSpec(4_000_000_000, True, "8k tokens, strong on Korean"),
    "nlpai-lab/KURE-v1": EmbedderSpec(4_000_000_000, True, "bge-m3 tuned for Korean retrieval"),
    "jhgan/ko-sroberta-multitask": EmbedderSpec(1_000_000_000, True, "Korean only"),
    "sentence-transformers/LaBSE": EmbedderSpec(3_000_000_000, True),
}
"""Embedders chatapp knows the needs of (others: any sentence-transformers model by name, whose
needs it cannot tell before downloading it with sentence-transformers yourself)."""


def embedder_fit(
    name: str, memory: MachineMemory | None = None
) -> tuple[FitHint, EmbedderSpec] | None:
    """The fit hint and spec of a known embedder setting (None for one chatapp does not know)."""
    spec = EMBEDDERS.get(name)
    if spec is None:
        return None
    return fit_hint(spec.ram_bytes, memory), spec


def estimated_ram(file_size: int, n_ctx: int = 4096) -> int:
    """Rough bytes needed to run a GGUF of ``file_size`` bytes with ``n_ctx`` context on CPU."""
    return file_size + n_ctx * _KV_BYTES_PER_TOKEN + _RUNTIME_OVERHEAD_BYTES


def memory_warning(
    model_path: str | Path, n_ctx: int = 4096, memory: MachineMemory | None = None
) -> str | None:
    """A one-line warning when loading this model would need more RAM than is free, else None.

    Call it before loading: the load itself would succeed (llama.cpp memory-maps the file) and
    then every reply would crawl while the machine swaps.
    """
    path = Path(model_path)
    try:
        size = path.stat().st_size
    except OSError:
        return None  # the loader reports a missing file with its own clear error
    mem = memory or machine_memory()
    needed = estimated_ram(size, n_ctx)
    if any(needed <= g.free_bytes for g in mem.gpus):
        return None
    if needed <= mem.available_ram:
        return None
    return (
        f"model {path.name} needs about {needed / GB:.1f} GB of RAM but only "
        f"{mem.available_ram / GB:.1f} GB is free; replies may be very slow (close other "
        f"programs or pick a smaller model: chatapp models list)"
    )


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the filesystem holding ``path`` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free
