"""One list of every model a user can pick: installed ones and catalog ones, with a fit hint.

``model_rows`` is what ``chatapp models list`` prints and what the UI's model picker shows, so
both say the same thing about the same model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal

from chatapp.models.catalog import CatalogModel, load_catalog
from chatapp.models.hardware import FitHint, MachineMemory, estimated_ram, fit_hint, machine_memory
from chatapp.models.registry import InstalledModel, installed_models

Status = Literal["installed", "missing", "available"]


@dataclass(frozen=True)
class ModelRow:
    """A model as the lists show it."""

    name: str
    title: str
    status: Status
    source: str
    """bundled, downloaded, added, or catalog (not downloaded)."""
    quant: str | None
    size_bytes: int | None
    ram_bytes: int | None
    fit: FitHint | None
    context: int | None
    korean: bool | None
    license: str | None
    repo: str | None
    path: str | None
    default: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=8)
def _trained_context(path: str) -> int | None:
    from chatapp.errors import ChatappError
    from chatapp.models.gguf import read_gguf_info

    try:
        return read_gguf_info(path).context_length
    except ChatappError:
        return None


def _catalog_ram(entry: CatalogModel, quant: str | None) -> int | None:
    for key, value in entry.quants.items():
        if quant and key.upper() == quant.upper():
            return value.ram_bytes
    return None


def _installed_row(
    model: InstalledModel, default: str, memory: MachineMemory, catalog_entry: CatalogModel | None
) -> ModelRow:
    ram = _catalog_ram(catalog_entry, model.quant) if catalog_entry else None
    if ram is None and model.size_bytes:
        ram = estimated_ram(model.size_bytes)
    is_bundled = model.source == "bundled"
    return ModelRow(
        name=model.name,
        title=catalog_entry.title if catalog_entry else model.name,
        status="missing" if model.missing else "installed",
        source=model.source,
        quant=model.quant,
        size_bytes=model.size_bytes,
        ram_bytes=ram,
        fit=fit_hint(ram, memory) if ram else None,
        context=catalog_entry.context
        if catalog_entry
        else (None if model.missing else _trained_context(str(model.path))),
        korean=catalog_entry.korean if catalog_entry else (False if is_bundled else None),
        license=catalog_entry.license if catalog_entry else ("apache-2.0" if is_bundled else None),
        repo=model.repo,
        path=str(model.path),
        default=model.name.lower() == default.lower(),
    )


def model_rows(default: str, memory: MachineMemory | None = None) -> list[ModelRow]:
    """Installed models (bundled first), then catalog models not yet downloaded.

    ``default`` is ``settings.model.name``; the matching row has ``default=True``.
    """
    catalog = load_catalog()
    memory = memory or machine_memory()
    rows: list[ModelRow] = []
    downloaded_catalog: set[str] = set()
    for model in installed_models():
        entry = catalog.get(model.catalog) if model.catalog else None
        if entry is not None and not model.missing:
            downloaded_catalog.add(entry.name)
        rows.append(_installed_row(model, default, memory, entry))
    for entry in catalog.models:
        if entry.name in downloaded_catalog:
            continue
        quant, file = entry.quant(None, catalog.default_quant)
        rows.append(
            ModelRow(
                name=entry.name,
                title=entry.title,
                status="available",
                source="catalog",
                quant=quant,
                size_bytes=file.size_bytes,
                ram_bytes=file.ram_bytes,
                fit=fit_hint(file.ram_bytes, memory),
                context=entry.context,
                korean=entry.korean,
                license=entry.license,
                repo=entry.repo,
                path=None,
                default=entry.name == default.lower(),
            )
        )
    return rows
