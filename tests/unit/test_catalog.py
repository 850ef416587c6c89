"""The shipped model catalog validates, covers the promised models, and bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.errors import ConfigError, ModelNotFoundError
from chatapp.models.catalog import catalog_file, load_catalog, parse_catalog
from chatapp.models.hardware import GpuInfo, MachineMemory, fit_hint, memory_warning
from tests.support.tiny_gguf import write_tiny_gguf

GB = 10**9

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
# Current small models (issue 12), with whether they think before answering.
CURRENT = {
    "qwen3-0.6b": True,
    "qwen3-1.7b": True,
    "qwen3-4b": True,
    "qwen3-8b": True,
    "qwen3-4b-instruct-2507": False,
    "smollm3-3b": True,
    "granite-3.3-2b-instruct": True,
    "deepseek-r1-distill-qwen-1.5b": True,
    "exaone-4.0-1.2b": True,
    "exaone-deep-2.4b": True,
    "lfm2-1.2b": False,
    "gemma-4-e2b-it": True,
    "hyperclovax-seed-1.5b": False,
    "kanana-1.5-2.1b-instruct": False,
}


def _parameters(label: str) -> float:
    number, unit = float(label.split("B")[0].split("M")[0]), label.split(" ")[0][-1]
    return number * (1e9 if unit == "B" else 1e6)


def test_shipped_catalog_validates_and_covers_the_promised_models() -> None:
    # Parse the file afresh (load_catalog caches) so this checks what ships.
    catalog = parse_catalog(catalog_file())
    assert set(PROMISED) | set(CURRENT) <= set(catalog.names)
    for model in catalog.models:
        assert model.quants, model.name
        q4, q8 = model.quants.get("Q4_K_M"), model.quants.get("Q8_0")
        if q4 and q8:
            assert q4.size_gb < q8.size_gb, model.name
        for quant in model.quants.values():
            assert quant.ram_gb >= quant.size_gb * 0.9, model.name  # RAM covers the weights
        assert model.context >= 4096 and model.languages
        assert model.korean == ("ko" in model.languages), model.name
        assert _parameters(model.parameters) <= 8.3e9, model.name  # laptop-sized
    for name, thinks in CURRENT.items():
        entry = catalog.get(name)
        assert entry is not None and entry.thinking is thinks, name
        assert entry.quant(None, catalog.default_quant)[1].verified, name  # checked, and says how
    assert catalog.get("exaone-3.5-2.4b-instruct").korean
    assert catalog.get("EXAONE-3.5-2.4B-Instruct") is catalog.get("exaone-3.5-2.4b-instruct")


def test_korean_models_name_size_fit_and_the_pull_command() -> None:
    from chatapp.models.catalog import korean_models

    small = MachineMemory(total_ram=4 * GB, available_ram=2 * GB)
    options = korean_models(small)
    catalog = load_catalog()
    assert {o.name for o in options} == {m.name for m in catalog.models if m.korean}
    assert "smollm3-3b" not in {o.name for o in options}  # no Korean listed
    fits = [o for o in options if o.fit == "fits"]
    assert fits and options[: len(fits)] == fits  # what fits comes first, smallest first
    assert [o.size_bytes for o in fits] == sorted(o.size_bytes for o in fits)
    assert {o.fit for o in options} >= {"fits", "too big"}
    first = fits[0]
    assert first.pull_command == f"chatapp models pull {first.name}"
    assert first.title in first.describe() and "fits" in first.describe()
    roomy = korean_models(MachineMemory(total_ram=64 * GB, available_ram=48 * GB))
    assert {o.fit for o in roomy} == {"fits"}


def test_speaks_korean_from_the_catalog_or_the_file(bundled_gguf: Path, tmp_path: Path) -> None:
    from chatapp.domain import ModelIdentity
    from chatapp.models.catalog import speaks_korean

    assert speaks_korean("exaone-3.5-2.4b-instruct") is True
    assert speaks_korean("smollm3-3b") is False
    assert speaks_korean("qwen3-4b:Q8_0") is True
    assert speaks_korean(tmp_path / "models" / "EXAONE-Deep-2.4B-Q8_0.gguf") is True
    # The bundled SmolLM2 is not in the catalog; its GGUF says it speaks English only.
    assert speaks_korean(bundled_gguf) is False
    assert speaks_korean(ModelIdentity(name="smollm2-135m", path=str(bundled_gguf))) is False
    unknown = write_tiny_gguf(tmp_path / "mine.gguf", name="mine")
    assert speaks_korean(unknown) is None and speaks_korean("no-such-model") is None


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


def test_models_info_says_whether_the_template_thinks(
    bundled_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from tests.support.tiny_gguf import write_thinking_gguf
    from tests.unit.test_registry import run_cli

    thinker = write_thinking_gguf(tmp_path / "thinker.gguf", tokenizer_from=bundled_gguf)
    code, out, _ = run_cli(["models", "info", str(thinker), "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["thinking"] == {
        "thinks": True,
        "format": "think",
        "switch": "enable_thinking",
        "default_on": True,
        "efforts": [],
    }
    assert data["korean"] is None
    code, out, _ = run_cli(["models", "info", str(thinker)], capsys)
    assert "thinks  yes (<think>…</think>); switch: enable_thinking, on by default" in out
    assert "Korean  unknown" in out
    code, out, _ = run_cli(["models", "info", str(bundled_gguf)], capsys)
    assert code == 0 and "thinks  no" in out and "Korean  not listed as supported" in out
