"""The model catalog: chat models chatapp knows how to download, read from ``catalog.toml``.

The file ships inside the package; ``load_catalog`` validates it into typed entries (unknown keys
are an error naming the file and the field) so a typo in the data never reaches a user as a
confusing download failure. ``korean_models`` lists the catalog models that speak Korean with
their size, fit on this machine and the command that pulls one; ``speaks_korean`` tells whether a
loaded model has the Korean flag (for the notice shown when Korean goes to a model without it).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chatapp.errors import ChatappError, ConfigError, ModelNotFoundError

if TYPE_CHECKING:
    from chatapp.domain import ModelIdentity
    from chatapp.models.hardware import FitHint, MachineMemory

ChatFamily = Literal["chatml", "llama3", "gemma", "phi", "mistral", "exaone"]
GIB = 1024**3


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuantFile(_Strict):
    """One downloadable quantization of a catalog model."""

    file: str
    """File name inside the repo."""
    size_gb: float = Field(gt=0)
    """Approximate download size in GB (the hub's own size is used when downloading)."""
    ram_gb: float = Field(gt=0)
    """Approximate RAM needed on CPU with a 4096-token context."""
    verified: str | None = None
    """How repo + file name were checked against the Hub (see catalog.toml); None: not checked."""

    @field_validator("file")
    @classmethod
    def _is_gguf(cls, value: str) -> str:
        if not value.lower().endswith(".gguf"):
            raise ValueError(f"{value!r} is not a .gguf file name")
        return value

    @property
    def size_bytes(self) -> int:
        return int(self.size_gb * 1e9)

    @property
    def ram_bytes(self) -> int:
        return int(self.ram_gb * 1e9)


class CatalogModel(_Strict):
    """A chat model in the catalog, with the GGUF file of each quantization."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    title: str
    repo: str = Field(pattern=r"^[\w.\-]+/[\w.\-]+$")
    family: ChatFamily
    parameters: str
    context: int = Field(gt=0)
    license: str
    languages: list[str]
    korean: bool
    thinking: bool = False
    """The model reasons before it answers (its chat template says whether that can be off)."""
    quants: dict[str, QuantFile]

    @field_validator("quants")
    @classmethod
    def _has_quants(cls, value: dict[str, QuantFile]) -> dict[str, QuantFile]:
        if not value:
            raise ValueError("at least one quantization is needed")
        return value

    def quant(self, label: str | None, default: str) -> tuple[str, QuantFile]:
        """The (label, file) for ``label`` (case-insensitive), or the catalog default."""
        wanted = (label or default).upper()
        for key, value in self.quants.items():
            if key.upper() == wanted:
                return key, value
        if label is None:  # the default is missing for this model: take the first listed
            key = next(iter(self.quants))
            return key, self.quants[key]
        raise ModelNotFoundError(
            f"model {self.name!r}: no {label} quantization in the catalog "
            f"(has {', '.join(self.quants)})"
        )


class Catalog(_Strict):
    """Every catalog model, in file order."""

    default_quant: str = "Q4_K_M"
    model: list[CatalogModel]

    @field_validator("model")
    @classmethod
    def _unique_names(cls, value: list[CatalogModel]) -> list[CatalogModel]:
        seen: set[str] = set()
        for entry in value:
            if entry.name in seen:
                raise ValueError(f"model name {entry.name!r} appears twice")
            seen.add(entry.name)
        return value

    @property
    def models(self) -> list[CatalogModel]:
        return self.model

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.model]

    def get(self, name: str) -> CatalogModel | None:
        """The entry called ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        return next((m for m in self.model if m.name == lowered), None)

    def by_repo(self, repo: str) -> CatalogModel | None:
        lowered = repo.lower()
        return next((m for m in self.model if m.repo.lower() == lowered), None)


def catalog_file() -> Path:
    """The catalog shipped inside the package."""
    return Path(str(resources.files("chatapp.models").joinpath("catalog.toml")))


def parse_catalog(path: Path) -> Catalog:
    """Validate a catalog file; ConfigError names the file and the first bad field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"model catalog {path}: unreadable ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"model catalog {path}: not valid TOML ({exc})") from None
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        model_index = first["loc"][1] if first["loc"][:1] == ("model",) else None
        if isinstance(model_index, int) and model_index < len(data.get("model", [])):
            name = data["model"][model_index].get("name", f"#{model_index + 1}")
            where = f"model {name!r}: " + ".".join(str(p) for p in first["loc"][2:])
        raise ConfigError(f"model catalog {path}: {where}: {first['msg']}") from None


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The shipped catalog (parsed once per process)."""
    return parse_catalog(catalog_file())


@dataclass(frozen=True)
class KoreanOption:
    """A catalog model that speaks Korean, as the Korean notice names it."""

    name: str
    title: str
    parameters: str
    quant: str
    size_bytes: int
    ram_bytes: int
    fit: FitHint
    thinking: bool

    @property
    def pull_command(self) -> str:
        return f"chatapp models pull {self.name}"

    def describe(self) -> str:
        """``EXAONE 3.5 2.4B Instruct (1.6 GB, fits): chatapp models pull exaone-3.5-2.4b-instruct``"""
        return f"{self.title} ({self.size_bytes / 1e9:.1f} GB, {self.fit}): {self.pull_command}"


_FIT_ORDER = {"fits": 0, "tight": 1, "too big": 2}


def korean_models(memory: MachineMemory | None = None) -> list[KoreanOption]:
    """Catalog models that speak Korean, with the size and fit of their default quantization on
    this machine: the ones that fit first, smallest first within each fit."""
    from chatapp.models.hardware import fit_hint, machine_memory

    catalog = load_catalog()
    mem = memory or machine_memory()
    options = []
    for entry in catalog.models:
        if not entry.korean:
            continue
        quant, file = entry.quant(None, catalog.default_quant)
        options.append(
            KoreanOption(
                name=entry.name,
                title=entry.title,
                parameters=entry.parameters,
                quant=quant,
                size_bytes=file.size_bytes,
                ram_bytes=file.ram_bytes,
                fit=fit_hint(file.ram_bytes, mem),
                thinking=entry.thinking,
            )
        )
    return sorted(options, key=lambda o: (_FIT_ORDER[o.fit], o.size_bytes))


def catalog_entry_for(model: str | os.PathLike[str] | ModelIdentity) -> CatalogModel | None:
    """The catalog entry a model name, GGUF path or ModelIdentity belongs to (by catalog name,
    installed name, or the file name of one of its quantizations), or None."""
    catalog = load_catalog()
    names: list[str] = []
    if isinstance(model, (str, os.PathLike)):
        names.append(os.fspath(model))
    else:
        names += [n for n in (model.name, model.path) if n]
    for name in names:
        entry = catalog.get(name) or catalog.get(name.split(":")[0])
        if entry is not None:
            return entry
        base = Path(name).name.lower()
        for entry in catalog.models:
            if any(q.file.lower() == base for q in entry.quants.values()):
                return entry
    return None


def speaks_korean(model: str | os.PathLike[str] | ModelIdentity) -> bool | None:
    """Whether a model has the Korean flag: from the catalog; else, for a GGUF file, from the
    languages it names itself (``general.languages``; the bundled SmolLM2 says English only);
    None when nothing says."""
    entry = catalog_entry_for(model)
    if entry is not None:
        return entry.korean
    path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else model.path
    if path and path.lower().endswith(".gguf") and Path(path).is_file():
        from chatapp.models.gguf import read_gguf_info

        try:
            languages = read_gguf_info(path).languages
        except ChatappError:
            return None
        if languages:
            return "ko" in {lang.lower().split("-")[0] for lang in languages}
    return None
