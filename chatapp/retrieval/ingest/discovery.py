"""Finding the files to index under the paths a user gives.

Rules: hidden files and folders (name starts with ".") and paths matched by a ``.gitignore`` (in
the folder or any parent up to the given root) are left out unless ``include_hidden`` /
``respect_gitignore`` say otherwise; ``--include``/``--exclude`` globs (gitignore syntax,
relative to the given root) narrow the set further; both are matched in linear time
(ignore_rules.py).

Symlinks are followed only while they stay inside the folders being indexed: a link whose
target lies outside them (``~/.ssh``, ``~``, ``/etc``) is skipped with the reason, so a link
left in a project folder cannot pull private files into the store, into prompts or to a remote
server; ``follow_symlinks`` (``--follow-symlinks``) follows them anyway. A symlink loop or a
dangling link is reported as skipped with its reason, never followed twice. A file whose name
is not valid UTF-8 is skipped with the reason (the manifest stores names as text).

The scan is a decision, not the read: each file found carries its device, inode and real path,
and the read (file_opening.py) opens exactly that file or skips it, whatever was swapped in
between.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from chatapp.errors import UsageError
from chatapp.retrieval.ingest.file_opening import FoundFile
from chatapp.retrieval.ingest.ignore_rules import option_rules, read_gitignore


@dataclass
class Discovery:
    files: list[FoundFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) for things that could not even be listed."""
    ignored: int = 0
    """Hidden, .gitignore'd or excluded paths left out on purpose."""
    roots: list[Path] = field(default_factory=list)


def _ignored_by(specs: list[tuple[Path, pathspec.PathSpec]], path: Path, is_dir: bool) -> bool:
    for base, spec in specs:
        try:
            rel = path.relative_to(base).as_posix()
        except ValueError:
            continue
        if spec.match_file(rel + "/" if is_dir else rel):
            return True
    return False


def _parent_gitignores(root: Path, result: Discovery) -> list[tuple[Path, pathspec.PathSpec]]:
    """.gitignore files in the root's parents, up to the enclosing git checkout."""
    specs: list[tuple[Path, pathspec.PathSpec]] = []
    for parent in root.parents:
        spec = _gitignore(parent, result)
        if spec is not None:
            specs.append((parent, spec))
        if (parent / ".git").exists():
            break
    return specs


def _gitignore(folder: Path, result: Discovery) -> pathspec.PathSpec | None:
    """The rules of the folder's .gitignore; lines left out are reported as skipped."""
    spec, problems = read_gitignore(folder)
    result.skipped.extend((str(folder / ".gitignore"), problem) for problem in problems)
    return spec


def discover(
    roots: Sequence[str | Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    include_hidden: bool = False,
    respect_gitignore: bool = True,
    follow_symlinks: bool = False,
) -> Discovery:
    """Walk the given files and folders and return the files to index, sorted by path."""
    result = Discovery()
    include_spec = option_rules(include, "--include")
    exclude_spec = option_rules(exclude, "--exclude")
    seen_files: set[Path] = set()
    for raw in roots:
        if _undecodable(str(raw)):
            raise UsageError(f"path {raw!r}: its name is not valid UTF-8 (rename it to index it)")
        root = Path(raw).expanduser()
        if not root.exists() and not root.is_symlink():
            raise UsageError(f"path {raw}: no such file or folder")
        result.roots.append(Path(os.path.abspath(root)))
    # A root named through a symlink is what the user asked for: its target counts as inside.
    real_roots = [Path(os.path.realpath(r)) for r in result.roots]
    inside = None if follow_symlinks else real_roots
    for root in result.roots:
        walker = _Walker(
            root, result, include_spec, exclude_spec, include_hidden, respect_gitignore, inside
        )
        walker.real_roots = real_roots
        for found in walker.walk():
            if found.path not in seen_files:
                seen_files.add(found.path)
                result.files.append(found)
    result.files.sort(key=lambda f: str(f.path))
    return result


class _Walker:
    def __init__(
        self,
        root: Path,
        result: Discovery,
        include_spec: pathspec.PathSpec | None,
        exclude_spec: pathspec.PathSpec | None,
        include_hidden: bool,
        respect_gitignore: bool,
        inside: list[Path] | None = None,
    ) -> None:
        self.root = root
        self.inside = inside
        """Real paths links may lead into (None: follow every link)."""
        self.result = result
        self.include_spec = include_spec
        self.exclude_spec = exclude_spec
        self.include_hidden = include_hidden
        self.respect_gitignore = respect_gitignore
        self.visited_dirs: set[tuple[int, int]] = set()
        self.real_roots: list[Path] = inside or []
        """Real paths of every root: a file's ``beneath`` is the one it lies in."""

    def _skip(self, path: Path, reason: str) -> None:
        self.result.skipped.append((str(path), reason))

    def _filtered_out(self, path: Path, is_dir: bool) -> bool:
        rel = path.relative_to(self.root).as_posix() if path != self.root else ""
        if (
            rel
            and self.exclude_spec is not None
            and self.exclude_spec.match_file(rel + "/" if is_dir else rel)
        ):
            return True
        return (
            not is_dir
            and self.include_spec is not None
            and not self.include_spec.match_file(rel or path.name)
        )

    def walk(self) -> Iterator[FoundFile]:
        root = self.root
        try:
            info = root.stat()
        except OSError as exc:
            self._skip(root, _os_reason(exc))
            return
        real = Path(os.path.realpath(root))
        if not stat.S_ISDIR(info.st_mode):
            # A file named explicitly is indexed even when hidden or ignored: the user asked.
            if stat.S_ISREG(info.st_mode):
                yield FoundFile(
                    root, info.st_size, info.st_mtime_ns, info.st_dev, info.st_ino, real
                )
            else:
                self._skip(root, "not a regular file")
            return
        specs = _parent_gitignores(root, self.result) if self.respect_gitignore else []
        yield from self._walk_dir(root, info, specs, real, real)

    def _beneath(self, real: Path) -> Path | None:
        """The root (real path) that ``real`` lies in, if any."""
        for top in self.real_roots:
            if real == top or real.is_relative_to(top):
                return top
        return None

    def _walk_dir(
        self,
        folder: Path,
        info: os.stat_result,
        specs: list[tuple[Path, pathspec.PathSpec]],
        real_folder: Path,
        beneath: Path | None,
    ) -> Iterator[FoundFile]:
        """``real_folder``: the folder's real path; ``beneath``: the root it lies in."""
        key = (info.st_dev, info.st_ino)
        if key in self.visited_dirs:
            self._skip(folder, "symlink loop (folder already visited)")
            return
        self.visited_dirs.add(key)
        if self.respect_gitignore:
            own = _gitignore(folder, self.result)
            if own is not None:
                specs = [*specs, (folder, own)]
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            self._skip(folder, _os_reason(exc))
            return
        for entry in entries:
            path = Path(entry.path)
            if not self.include_hidden and entry.name.startswith("."):
                self.result.ignored += 1
                continue
            if _undecodable(entry.name):
                shown = os.fsencode(entry.path).decode("utf-8", "backslashreplace")
                self.result.skipped.append(
                    (shown, "file name is not valid UTF-8 (rename it to index it)")
                )
                continue
            linked = entry.is_symlink()
            # What is kept is what this stat saw: a link by its resolved target, anything
            # else without following (the read must find the same file, file_opening.py).
            real = Path(os.path.realpath(entry.path)) if linked else real_folder / entry.name
            try:
                entry_info = os.stat(real) if linked else os.lstat(entry.path)
            except OSError as exc:
                self._skip(path, _os_reason(exc))
                continue
            outside = self.inside is not None and not any(
                real == r or real.is_relative_to(r) for r in self.inside
            )
            if linked and outside:
                self._skip(
                    path,
                    f"symlink to {real}, outside the folders being indexed "
                    "(--follow-symlinks to index it)",
                )
                continue
            is_dir = stat.S_ISDIR(entry_info.st_mode)
            if self.respect_gitignore and _ignored_by(specs, path, is_dir):
                self.result.ignored += 1
                continue
            if self._filtered_out(path, is_dir):
                self.result.ignored += 1
                continue
            under = self._beneath(real) if linked else beneath
            if is_dir:
                yield from self._walk_dir(path, entry_info, specs, real, under)
            elif stat.S_ISREG(entry_info.st_mode):
                yield FoundFile(
                    path,
                    entry_info.st_size,
                    entry_info.st_mtime_ns,
                    entry_info.st_dev,
                    entry_info.st_ino,
                    real,
                    under,
                )
            else:
                self._skip(path, "not a regular file")


def _undecodable(name: str) -> bool:
    """Python keeps bytes that are not UTF-8 in a name as lone surrogates."""
    return any(0xD800 <= ord(c) <= 0xDFFF for c in name)


def _os_reason(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "dangling symlink or deleted while indexing"
    return exc.strerror or type(exc).__name__
