"""Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX): there the embedders
run their matrix products in bf16 (faster: README) when that reproduces
their fp32 vectors (each checks at load); elsewhere bf16 is emulated and slower than fp32.
``CHATAPP_EMBED_BF16=0`` keeps every embedder in fp32."""

from __future__ import annotations

import os


def cpu_has_bf16() -> bool:
    """Native bf16 matrix instructions, and bf16 not switched off by the environment."""
    if os.environ.get("CHATAPP_EMBED_BF16") == "0":
        return False
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
