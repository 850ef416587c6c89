"""The model catalog: chat models chatapp knows how to download, read from ``catalog.toml``.

The file ships inside the package; ``load_catalog`` validates it into typed entries (unknown keys
are an error naming the file and the field) so a typo in the data never reaches a user as a
confusing download failure.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chatapp.errors import ConfigError, ModelNotFoundError

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
