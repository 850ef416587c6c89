"""The models installed on this machine, and turning what the user typed into a GGUF file.

Installed = the bundled ``smollm2-135m`` (always there) + models downloaded by ``chatapp models
pull`` (files under ``paths.models_dir()``) + local files registered with ``chatapp models add``.
Downloads and registrations are recorded in ``models.json`` in the data dir, written atomically.
A download in progress lives under ``models_dir()/.partial`` and is never listed. A registered
file deleted behind chatapp's back is listed as missing, and resolving it says so in one line.

Specs: a name (``qwen2.5-1.5b-instruct``), a name with a quantization (``...:Q8_0``), a Hugging
Face repo with an optional file or quantization (``owner/repo[:FILE|QUANT]``), or a path.
"""

from __future__ import annotations

import difflib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from chatapp import paths
from chatapp.errors import ConfigError, ModelLoadError, ModelNotFoundError, UsageError
from chatapp.models.bundled import BUNDLED_CHAT_NAME, bundled_chat_model

Source = Literal["bundled", "downloaded", "added"]
PARTIAL_DIR = ".partial"


class RegistryEntry(BaseModel):
    """One downloaded or added model as recorded in ``models.json``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    path: str
    source: Literal["downloaded", "added"]
    repo: str | None = None
    file: str | None = None
    revision: str | None = None
    quant: str | None = None
    catalog: str | None = None
    """Catalog name this download came from, if any."""
    sha256: str | None = None
    size_bytes: int | None = None
    added_at: str = ""


@dataclass(frozen=True)
class InstalledModel:
    """A model the user can chat with (or could, if ``missing`` is False)."""

    name: str
    path: Path
    source: Source
    missing: bool = False
    repo: str | None = None
    file: str | None = None
    quant: str | None = None
    catalog: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None


def looks_like_path(spec: str) -> bool:
    """A spec that names a file rather than a model: ``./x``, ``/x``, ``~/x``, ``dir/x.gguf``."""
    if "\\" in spec or spec.startswith((".", "/", "~")):
        return True
    base, selector = split_spec(spec)
    if selector is None and spec.lower().endswith(".gguf"):
        return True
    return base.count("/") > 1


_KINDS = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def require_regular_file(path: Path) -> Path:
    """``path`` when it is a regular file (or a link to one); ModelLoadError naming what it is
    otherwise. Opened without blocking, so a named pipe is refused at once instead of hanging
    until something writes to it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ModelLoadError(path, "no such file") from None
    except IsADirectoryError:
        raise ModelLoadError(path, "is a folder, not a GGUF file") from None
    except OSError as exc:
        raise ModelLoadError(path, f"unreadable ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise ModelLoadError(path, f"is {kind}, not a GGUF file (give a regular file)")
    return path


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"base:SELECTOR"`` -> (base, selector); no colon -> (spec, None)."""
    base, sep, selector = spec.partition(":")
    return (base, selector or None) if sep else (spec, None)


def registry_file() -> Path:
    return paths.data_dir() / "models.json"


def load_entries() -> list[RegistryEntry]:
    """Entries of ``models.json``; ConfigError (naming the file) when it is corrupt."""
    file = registry_file()
    if not file.exists():
        return []
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return [RegistryEntry.model_validate(item) for item in data.get("models", [])]
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, ValidationError) as exc:
        problem = str(exc).splitlines()[0]
        raise ConfigError(f"model registry {file}: corrupt ({problem})") from None


def save_entries(entries: list[RegistryEntry]) -> None:
    """Write ``models.json`` atomically (a crash leaves the old file, never half a file)."""
    file = registry_file()
    payload = {"models": [e.model_dump(exclude_none=True) for e in entries]}
    fd, tmp = tempfile.mkstemp(prefix=".models.", suffix=".json", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_entry(entry: RegistryEntry) -> None:
    """Add ``entry`` to the registry, replacing one with the same name."""
    if not entry.added_at:
        entry.added_at = datetime.now(UTC).isoformat(timespec="seconds")
    entries = [e for e in load_entries() if e.name.lower() != entry.name.lower()]
    save_entries([*entries, entry])


def _from_entry(entry: RegistryEntry) -> InstalledModel:
    path = Path(entry.path)
    return InstalledModel(
        name=entry.name,
        path=path,
        source=entry.source,
        missing=not path.is_file(),
        repo=entry.repo,
        file=entry.file,
        quant=entry.quant,
        catalog=entry.catalog,
        sha256=entry.sha256,
        size_bytes=entry.size_bytes,
    )


def _unrecorded_downloads(known: set[Path]) -> list[InstalledModel]:
    """GGUF files placed under the models dir without a registry entry (e.g. copied by hand)."""
    root = paths.models_dir()
    found = []
    for file in sorted(root.rglob("*.gguf")):
        relative = file.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or file.resolve() in known:
            continue
        found.append(
            InstalledModel(
                name=file.stem.lower(),
                path=file,
                source="downloaded",
                size_bytes=file.stat().st_size,
            )
        )
    return found


def bundled_model() -> InstalledModel:
    path = bundled_chat_model()
    return InstalledModel(
        name=BUNDLED_CHAT_NAME,
        path=path,
        source="bundled",
        repo="HuggingFaceTB/SmolLM2-135M-Instruct",
        quant="Q4_1",
        size_bytes=path.stat().st_size,
    )


def installed_models() -> list[InstalledModel]:
    """Every installed model: the bundled one first, then the registry, then stray files."""
    models = [bundled_model()]
    recorded = [_from_entry(e) for e in load_entries()]
    models.extend(recorded)
    known = {m.path.resolve() for m in recorded}
    models.extend(_unrecorded_downloads(known))
    return models


def find_installed(spec: str) -> InstalledModel | None:
    """The installed model ``spec`` names (exact name first, then catalog/repo + quant)."""
    models = installed_models()
    lowered = spec.lower()
    exact = next((m for m in models if m.name.lower() == lowered), None)
    if exact is not None:
        return exact
    return next((m for m in models if _spec_matches(m, spec)), None)


def _spec_matches(model: InstalledModel, spec: str) -> bool:
    base, selector = split_spec(spec.lower())
    bases = {b.lower() for b in (model.catalog, model.repo) if b}
    if base not in bases:
        return False
    if selector is None:
        return True
    return selector in {(model.quant or "").lower(), (model.file or "").lower()}


def suggest_names(spec: str, limit: int = 3) -> list[str]:
    """Installed and catalog names close to ``spec`` (for "did you mean" messages)."""
    from chatapp.models.catalog import load_catalog

    candidates = [m.name for m in installed_models()] + load_catalog().names
    unique = list(dict.fromkeys(candidates))
    lowered = {c.lower(): c for c in unique}
    base = split_spec(spec.lower())[0]
    close = difflib.get_close_matches(base, list(lowered), n=limit, cutoff=0.5)
    contains = [c for c in lowered if base and base in c and c not in close]
    return [lowered[c] for c in (close + contains)[:limit]]


def unknown_model_error(spec: str) -> ModelNotFoundError:
    """ "unknown name" with close matches, or a pointer to the list when there are none."""
    close = suggest_names(spec)
    hint = (
        f"did you mean {', '.join(close)}?"
        if close
        else "see `chatapp models list`, or give a path to a .gguf"
    )
    return ModelNotFoundError(f"model {spec!r}: unknown name ({hint})")


def resolve_model_path(spec: str) -> Path:
    """A GGUF path for ``spec``; raises ModelNotFoundError / ModelLoadError with one line."""
    if spec == BUNDLED_CHAT_NAME:
        return bundled_chat_model()
    if looks_like_path(spec):
        return require_regular_file(Path(spec).expanduser())
    model = find_installed(spec)
    if model is not None:
        if model.missing:
            raise ModelLoadError(
                model.path,
                f"file is gone (registered as {model.name!r}; deleted outside chatapp?); "
                f"run `chatapp models rm {model.name}` or pull it again",
            )
        return require_regular_file(model.path)
    path = Path(spec).expanduser()
    if path.exists() and not path.is_dir():  # a file name without a .gguf suffix or ./ prefix
        return require_regular_file(path)
    from chatapp.models.catalog import load_catalog

    catalog = load_catalog()
    base = split_spec(spec)[0]
    if catalog.get(base) is not None or catalog.by_repo(base) is not None:
        raise ModelNotFoundError(
            f"model {spec!r}: not downloaded yet (run `chatapp models pull {spec}`)"
        )
    raise unknown_model_error(spec)


def add_local_model(path: Path, name: str | None = None) -> InstalledModel:
    """Register a GGUF file that stays where it is, after checking its header and size."""
    from chatapp.models.gguf import validate_gguf

    file = require_regular_file(path.expanduser().resolve())
    info = validate_gguf(file)
    chosen = (name or file.stem).strip().lower()
    if not chosen or any(c in chosen for c in "/\\ ") or ":" in chosen:
        raise UsageError(f"model name {chosen!r}: use letters, digits, '.', '-' or '_' only")
    if chosen == BUNDLED_CHAT_NAME:
        raise UsageError(f"model name {chosen!r}: taken by the bundled model (pick --name)")
    for existing in installed_models():
        if existing.name.lower() == chosen and existing.path.resolve() != file:
            raise UsageError(
                f"model name {chosen!r}: already used by {existing.path} (pick another with --name)"
            )
    entry = RegistryEntry(
        name=chosen,
        path=str(file),
        source="added",
        quant=info.quant,
        size_bytes=info.file_size,
    )
    record_entry(entry)
    return _from_entry(entry)


def remove_model(spec: str) -> InstalledModel:
    """Forget an installed model; a downloaded file is deleted, an added file is left alone."""
    if spec.lower() == BUNDLED_CHAT_NAME:
        raise UsageError(f"model {spec!r}: the bundled model cannot be removed")
    model = find_installed(spec)
    if model is None:
        raise unknown_model_error(spec)
    if model.source == "downloaded":
        model.path.unlink(missing_ok=True)
        _prune_empty_dirs(model.path.parent)
    entries = load_entries()
    kept = [e for e in entries if e.name != model.name]
    if len(kept) != len(entries):
        save_entries(kept)
    return model


def _prune_empty_dirs(folder: Path) -> None:
    root = paths.models_dir().resolve()
    current = folder.resolve()
    while current != root and root in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
