"""Saving settings over a file that has gone bad keeps what is still good, and says what was not.

A ``config.toml`` with one unreadable line (a typo that is not TOML) or one key chatapp cannot
use (an unknown name, a value of the wrong type) makes every load fail. Saving over it used to
start a fresh file, and the user's other settings (their system prompt) were gone without a
word. Now the lines TOML cannot read and the keys the settings model refuses are dropped, the
rest is written back (0600), the old file is kept beside it (``config.toml.broken``, or
``.broken.1``… when that exists), and a ``SettingsRepair`` names what was dropped and where the
old file went, for the chat UI and the CLI to tell the user.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

MAX_DROPPED_LINES = 50
"""A file needing more unreadable lines dropped than this is not salvaged line by line."""

_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")


@dataclass(frozen=True)
class SettingsRepair:
    """One settings file saved over: what could not be kept, and where the old file is."""

    file: Path
    old_file: Path
    dropped: tuple[str, ...]

    def message(self) -> str:
        """One line for the user."""
        return (
            f"{self.file.name}: dropped {'; '.join(self.dropped)} (not usable); the other "
            f"settings are kept and the old file is {self.old_file}"
        )


def salvage_toml(text: str) -> tuple[dict[str, Any], list[str]]:
    """The tables of ``text`` with every line TOML cannot read left out, and those lines
    (``line 3 `temperature = abc```)."""
    lines = text.splitlines()
    dropped: list[str] = []
    for _ in range(MAX_DROPPED_LINES):
        try:
            return tomllib.loads("\n".join(lines)), dropped
        except tomllib.TOMLDecodeError as exc:
            found = _AT_LINE.search(str(exc))
            index = int(found.group(1)) - 1 if found else _last_line(lines)
            if index is None or not 0 <= index < len(lines):
                break
            dropped.append(f"line {index + 1} `{lines[index].strip()}`")
            lines[index] = ""  # blanked, not removed: the next error's line number stays true
    return {}, [*dropped, "everything else (not TOML)"]


def _last_line(lines: list[str]) -> int | None:
    """An error "at end of document" (an unclosed string or table): the last line with text."""
    return next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip()), None)


def usable_settings(data: dict[str, Any], sections: dict[str, type[BaseModel]]) -> list[str]:
    """Remove from ``data`` (in place) every key the settings model refuses; returns them as
    ``section.name: why``."""
    dropped: list[str] = []
    for section in list(data):
        model = sections.get(section)
        fields = data[section]
        if model is None or not isinstance(fields, dict):
            dropped.append(f"{section}: no such settings section")
            del data[section]
            continue
        for name in list(fields):
            try:
                model.model_validate({name: fields[name]})
            except ValidationError as exc:
                dropped.append(f"{section}.{name}: {exc.errors()[0]['msg']}")
                del fields[name]
        if not fields:
            del data[section]
    return dropped


def repair_file(
    file: Path, sections: dict[str, type[BaseModel]]
) -> tuple[dict[str, Any], SettingsRepair | None]:
    """What ``file`` holds that the settings can use, and a repair when that is not all of it
    (the old file then moved aside and the usable part written in its place)."""
    from chatapp.paths import write_private_text

    if not file.exists():
        return {}, None
    try:
        data, dropped = salvage_toml(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        data, dropped = {}, ["everything (not UTF-8 text)"]
    dropped += usable_settings(data, sections)
    if not dropped:
        return data, None
    old_file = _free_name(file.with_name(file.name + ".broken"))
    file.replace(old_file)
    write_private_text(file, tomli_w.dumps(data))
    return data, SettingsRepair(file, old_file, tuple(dropped))


def _free_name(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2``… : an earlier kept file is never overwritten."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate
