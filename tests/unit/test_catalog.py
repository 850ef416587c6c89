"""The shipped model catalog validates, covers the promised models, and bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.errors import ConfigError, ModelNotFoundError
from chatapp.models.catalog import catalog_file, load_catalog, parse_catalog
from chatapp.models.hardware import GpuInfo, MachineMemory, fit_hint, memory_warning

PROMISED = [
    "smollm2-360m-instruct",
    "smollm2-1.7b-instruct",
    "qwen2.5-0.5b-instruct",
    "qwen2.5-1.5b-instruct",
    "qwen2.5-3b-instruct",
    "qwen2.5-7b-instruct",
    "llama-3.2-1b-instruct",
    "llama-3.2-3b-instruct",
    "gemma-3-1b-it",
    "gemma-3-4b-it",
    "phi-3.5-mini-instruct",
    "phi-4-mini-instruct",
    "mistral-7b-instruct",
    "exaone-3.5-2.4b-instruct",
]


def test_shipped_catalog_validates_and_covers_the_promised_models() -> None:
    # Parse the file afresh (load_catalog caches) so this checks what ships.
    catalog = parse_catalog(catalog_file())
    assert set(PROMISED) <= set(catalog.names)
    for model in catalog.models:
        assert {"Q4_K_M", "Q8_0"} <= set(model.quants), model.name
        q4, q8 = model.quants["Q4_K_M"], model.quants["Q8_0"]
        assert q4.size_gb < q8.size_gb, model.name
        assert q4.ram_gb >= q4.size_gb * 0.9, model.name  # RAM covers at least the weights
        assert model.context >= 4096 and model.languages
        assert model.korean == ("ko" in model.languages), model.name
    assert catalog.get("exaone-3.5-2.4b-instruct").korean
    assert catalog.get("EXAONE-3.5-2.4B-Instruct") is catalog.get("exaone-3.5-2.4b-instruct")


def test_quant_lookup_is_case_insensitive_and_unknown_quant_names_the_choices() -> None:
    entry = load_catalog().get("qwen2.5-1.5b-instruct")
    assert entry.quant("q8_0", "Q4_K_M")[0] == "Q8_0"
    assert entry.quant(None, "Q4_K_M")[1].file.lower().endswith("q4_k_m.gguf")
    with pytest.raises(ModelNotFoundError) as caught:
        entry.quant("Q3_K_S", "Q4_K_M")
    assert "Q3_K_S" in str(caught.value) and "Q4_K_M" in str(caught.value)


def _catalog_text(extra: str = "", file: str = "x-Q4_K_M.gguf") -> str:
    return f"""
[[model]]
name = "x"
title = "X"
repo = "org/x-GGUF"
family = "chatml"
parameters = "1B"
context = 4096
license = "mit"
languages = ["en"]
korean = false
{extra}
[model.quants.Q4_K_M]
file = "{file}"
size_gb = 1.0
ram_gb = 1.5
"""


def test_unknown_key_is_rejected_naming_the_file_model_and_field(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(_catalog_text('homepage = "https://example.org"'), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        parse_catalog(path)
    message = str(caught.value)
    assert str(path) in message and "'x'" in message and "homepage" in message
    assert "\n" not in message


def test_non_gguf_file_name_and_bad_toml_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(_catalog_text(file="x.safetensors"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"quants\.Q4_K_M\.file"):
        parse_catalog(path)
    path.write_text("[[model]\nname=", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_catalog(path)


GB = 10**9


def test_fit_hint_uses_free_ram_then_total_then_vram() -> None:
    mem = MachineMemory(total_ram=16 * GB, available_ram=8 * GB)
    assert fit_hint(4 * GB, mem) == "fits"
    assert fit_hint(10 * GB, mem) == "tight"  # fits once other programs close
    assert fit_hint(20 * GB, mem) == "too big"
    with_gpu = MachineMemory(16 * GB, 8 * GB, (GpuInfo("RTX", 24 * GB, 20 * GB),))
    assert fit_hint(20 * GB, with_gpu) == "fits"


def test_memory_warning_before_loading_a_model_bigger_than_free_ram(tmp_path: Path) -> None:
    model = tmp_path / "big.gguf"
    with model.open("wb") as handle:  # sparse: 3 GB on paper, nothing on disk
        handle.truncate(3 * GB)
    low = MachineMemory(total_ram=4 * GB, available_ram=1 * GB)
    warning = memory_warning(model, n_ctx=4096, memory=low)
    assert warning is not None and "big.gguf" in warning and "1.0 GB" in warning
    assert "\n" not in warning
    assert memory_warning(model, memory=MachineMemory(64 * GB, 32 * GB)) is None
