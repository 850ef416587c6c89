"""Gitignore-style rules (``.gitignore`` files, ``--include`` / ``--exclude``), matched in time
linear in a path's length whatever the pattern.

pathspec turns each pattern into a regular expression; Python's ``re`` backtracks, and
``*a*a*a*a*a*a*a*a*a*a*a*a*z`` beside a 40-character name never finished. RE2 (google-re2,
pathspec's ``re2`` backend) has no backtracking, so every pattern keeps its meaning and costs
the same as any other. Without RE2 (an install that lacks it), a pattern with so many
wildcards that backtracking could explode is left out with a warning instead.

A ``.gitignore`` is read without blocking (a FIFO) or reading a device, up to 1 MB; a line git
would reject (a lone ``!``, a trailing backslash) is left out with a warning, the rest apply.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pathspec
from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

from chatapp.errors import UsageError
from chatapp.retrieval.ingest.file_opening import SkipFile, read_small_file

MAX_GITIGNORE_BYTES = 1024 * 1024
MAX_WILDCARDS_WITHOUT_RE2 = 3
"""``*`` runs in one path segment (and ``**`` segments in a pattern) that ``re`` can take
without RE2: polynomial of this degree in the length of a name, which stays fast."""

try:
    import re2  # noqa: F401  (pathspec's linear-time backend)

    BACKEND = "re2"
except ImportError:  # pragma: no cover - google-re2 is a dependency
    BACKEND = "simple"

_STAR_RUNS = re.compile(r"(?<!\\)\*+")


def compile_rules(lines: Sequence[str]) -> tuple[pathspec.PathSpec | None, list[str]]:
    """The rules of ``lines`` (None when there are none) and a warning per line left out
    ("line N: …")."""
    kept: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        problem = _problem(line)
        if problem is None:
            kept.append(line)
        else:
            problems.append(f"line {number}: pattern {line.strip()!r} left out ({problem})")
    if not any(line.strip() and not line.lstrip().startswith("#") for line in kept):
        return None, problems
    return pathspec.GitIgnoreSpec.from_lines(kept, backend=BACKEND), problems


def option_rules(patterns: Sequence[str], option: str) -> pathspec.PathSpec | None:
    """The rules of ``--include`` / ``--exclude`` globs; a pattern that cannot be used is a
    UsageError naming it."""
    cleaned = [p for p in patterns if p.strip()]
    spec, problems = compile_rules(cleaned)
    if problems:
        first = problems[0].split(": ", 1)[1]
        raise UsageError(f"{option} {first}")
    return spec


def read_gitignore(folder: Path) -> tuple[pathspec.PathSpec | None, list[str]]:
    """The rules of ``folder/.gitignore`` (None when there is none) and its warnings."""
    try:
        data = read_small_file(folder / ".gitignore", MAX_GITIGNORE_BYTES)
    except FileNotFoundError:
        return None, []
    except NotADirectoryError:
        return None, []
    except SkipFile as exc:
        return None, [exc.reason]
    text = data.decode("utf-8", errors="replace")
    return compile_rules(text.splitlines())


def _problem(line: str) -> str | None:
    """Why a pattern line cannot be used (None: it can)."""
    try:
        GitIgnoreSpecPattern(line)
    except ValueError as exc:
        return f"not a valid pattern: {str(exc).splitlines()[0][:80]}"
    if BACKEND != "re2" and _wildcards(line) > MAX_WILDCARDS_WITHOUT_RE2:
        return "too many wildcards to match safely without google-re2"
    return None


def _wildcards(line: str) -> int:
    """The most ``*`` runs in one segment of a pattern, or its ``**`` segments if more."""
    segments = line.strip().split("/")
    globstars = sum(1 for s in segments if s == "**")
    return max([globstars, *(len(_STAR_RUNS.findall(s)) for s in segments if s != "**")])
