"""Finding and loading templates: the bundled ones (inside the wheel, or the repo's ``prompts/``
for editable installs) and the user's own in ``templates_dir()``, which override bundled ones of
the same name.

Every problem names the file, the line and the field: YAML syntax errors carry their mark, and
a field path from validation is walked through the composed YAML nodes to find its line.

A template file is data from wherever the user got it, so it is read only when it is a regular
file under ``MAX_TEMPLATE_BYTES``, and YAML anchors and aliases (``&a`` / ``*a``) are refused:
a "billion laughs" file of nested aliases would otherwise expand without end.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from chatapp import paths
from chatapp.errors import NotFoundError, TemplateError
from chatapp.prompting.schema import Template, check_template

SUFFIXES = (".yaml", ".yml")
MAX_TEMPLATE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a template file."""

    path: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class TemplateFileError(TemplateError):
    """A template file with problems; the message is the first, ``problems`` holds them all."""

    def __init__(self, problems: list[Problem]) -> None:
        extra = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"template {problems[0]}{extra}")
        self.problems = problems


@dataclass
class TemplateEntry:
    name: str
    path: Path
    origin: str
    overrides: Path | None = None


@dataclass
class ValidationReport:
    path: Path
    template: Template | None = None
    problems: list[Problem] = field(default_factory=list)


def bundled_dir() -> Path | None:
    """The folder of bundled templates: in the wheel first, else the source checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_bundled_prompts", package.parent / "prompts"):
        if candidate.is_dir():
            return candidate
    return None


def field_path(loc: tuple[Any, ...]) -> str:
    """('examples', 2, 'output') → 'examples[2].output'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the node at ``loc`` (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return line
            key, node = match
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _duplicate_keys(node: yaml.Node | None, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Keys given twice (YAML would silently keep the last one)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                found.append((*loc, key.value))
            seen.add(key.value)
            found += _duplicate_keys(value, (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found += _duplicate_keys(item, (*loc, index))
    return found


def _first_alias(text: str) -> int | None:
    """The 0-based line where the text first uses an anchor or an alias (None: it uses none)."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            return int(event.start_mark.line) if event.start_mark is not None else 0
    return None


def parse_template_text(text: str, path: Path, stem: str | None = None) -> ValidationReport:
    """Parse and check one template's YAML text; problems are collected, not raised."""
    report = ValidationReport(path)
    try:
        alias = _first_alias(text)
        if alias is not None:
            report.problems.append(
                Problem(
                    path,
                    alias + 1,
                    "",
                    "YAML anchors and aliases (&name, *name) are not allowed in templates",
                )
            )
            return report
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except RecursionError:
        report.problems.append(Problem(path, None, "", "not valid YAML (nested too deeply)"))
        return report
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start is not None and mark is not None and start.line != mark.line:
            problem = f"{problem} {context} that started on line {start.line + 1}"
        report.problems.append(
            Problem(path, mark.line + 1 if mark else None, "", f"not valid YAML ({problem})")
        )
        return report
    if not isinstance(data, dict):
        report.problems.append(Problem(path, 1, "", "expected a mapping of fields (name, title…)"))
        return report
    for loc in _duplicate_keys(root):
        report.problems.append(Problem(path, _line_of(root, loc), field_path(loc), "given twice"))
    data.setdefault("name", stem or path.stem)
    try:
        template = Template.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = error["msg"]
            if error["type"] == "extra_forbidden":
                message = "unknown field"
            elif error["type"] == "missing":
                message = "required field is missing"
            report.problems.append(Problem(path, _line_of(root, loc), field_path(loc), message))
        return report
    for loc, message in check_template(template, stem):
        report.problems.append(Problem(path, _line_of(root, loc), field_path(loc), message))
    if not report.problems:
        report.template = template
    return report


def load_template_file(path: Path, origin: str = "user") -> Template:
    """Load one template file; TemplateFileError names the file, line and field of a problem."""
    report = validate_file(path)
    if report.template is None:
        raise TemplateFileError(report.problems)
    report.template._origin = origin
    return report.template


def _read_template_bytes(path: Path) -> bytes:
    """A regular file's bytes, opened without blocking; ValueError for anything else or for
    more than ``MAX_TEMPLATE_BYTES``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        data = handle.read(MAX_TEMPLATE_BYTES + 1)
    if len(data) > MAX_TEMPLATE_BYTES:
        raise ValueError(f"larger than {MAX_TEMPLATE_BYTES // 1024} KiB")
    return data


def validate_file(path: Path) -> ValidationReport:
    try:
        text = _read_template_bytes(path).decode("utf-8")
    except ValueError as exc:  # UnicodeDecodeError included
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        return ValidationReport(path, problems=[Problem(path, None, "", f"cannot read ({reason})")])
    except FileNotFoundError:
        return ValidationReport(path, problems=[Problem(path, None, "", "no such file")])
    except OSError as exc:
        reason = "is a folder" if isinstance(exc, IsADirectoryError) else str(exc.strerror)
        return ValidationReport(path, problems=[Problem(path, None, "", f"cannot read ({reason})")])
    report = parse_template_text(text, path, path.stem)
    if report.template is not None:
        report.template._path = path
    return report


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def discover() -> dict[str, TemplateEntry]:
    """Every template name → its file; a user file wins over a bundled one of the same name."""
    entries: dict[str, TemplateEntry] = {}
    bundled = bundled_dir()
    if bundled is not None:
        for path in _yaml_files(bundled):
            entries[path.stem] = TemplateEntry(path.stem, path, "bundled")
    for path in _yaml_files(paths.templates_dir()):
        previous = entries.get(path.stem)
        entries[path.stem] = TemplateEntry(
            path.stem, path, "user", overrides=previous.path if previous else None
        )
    return dict(sorted(entries.items()))


def get_template(name: str) -> Template:
    """The template called ``name`` (user's first, then bundled)."""
    entry = discover().get(name)
    if entry is None:
        candidate = Path(name)
        if candidate.suffix in SUFFIXES and candidate.exists():
            return load_template_file(candidate, "file")
        known = ", ".join(discover()) or "none"
        raise NotFoundError(f"template {name!r}: not found (known: {known})")
    return load_template_file(entry.path, entry.origin)


def load_all() -> tuple[list[Template], list[Problem]]:
    """All templates that load, and the problems of those that do not."""
    templates: list[Template] = []
    problems: list[Problem] = []
    for entry in discover().values():
        try:
            templates.append(load_template_file(entry.path, entry.origin))
        except TemplateFileError as exc:
            problems += exc.problems
    return templates, problems


def validate_path(path: Path | None) -> list[ValidationReport]:
    """Check every template (no path), one file, or every YAML file in a folder."""
    if path is None:
        return [validate_file(entry.path) for entry in discover().values()]
    if path.is_dir():
        files = _yaml_files(path)
        if not files:
            raise TemplateError(f"folder {path}: no .yaml template files in it")
        return [validate_file(p) for p in files]
    if not path.exists():
        raise NotFoundError(f"template file {path}: no such file or folder")
    return [validate_file(path)]
