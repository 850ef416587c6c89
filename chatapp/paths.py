"""Every place chatapp reads or writes on disk, in one module.

Directories come from platformdirs. ``CHATAPP_HOME=/some/dir`` relocates all of them under one
folder (tests and portable installs use it). Each function creates its directory on first use.

Everything chatapp keeps is private to the user who runs it: its directories are 0700 and the
files that hold conversations, settings, keys and exports are 0600 (a directory or file an
older version left readable by others is tightened when it is next used). On systems without
POSIX permissions (Windows) the modes are left to the system.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

import platformdirs

from chatapp.errors import ChatappError, NotWritableError

APP_NAME = "chatapp"
HOME_ENV = "CHATAPP_HOME"


def _home_override() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else None


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_POSIX = os.name == "posix"


def _ensure(path: Path) -> Path:
    """Create ``path`` (0700) if needed; tighten it when group or others can get in. A folder
    that cannot be made (a read-only mount, no permission, a full disk) is a NotWritableError."""
    home = _home_override()
    try:
        if home is not None and not home.exists():  # a CHATAPP_HOME chatapp makes is private too
            home.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    except OSError as exc:
        raise not_writable(path, exc) from None
    make_private(path)
    return path


_WRITE_FAILURES = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "no permission to write there",
    errno.EPERM: "no permission to write there",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
}


def write_failure(exc: OSError) -> str | None:
    """What an OSError says about a place that cannot be written (None: something else)."""
    return _WRITE_FAILURES.get(exc.errno or 0)


def unwritable_reason(folder: Path, *, after_failure: bool = False) -> str | None:
    """Why chatapp cannot write in ``folder`` (None: it can, as far as can be told): a
    read-only mount or no permission. ``after_failure``: a write there has just failed, so a
    file system with no free blocks counts too (some report none all the time)."""
    try:
        info = os.statvfs(folder)
        if info.f_flag & os.ST_RDONLY:
            return _WRITE_FAILURES[errno.EROFS]
        free = info.f_bfree if os.geteuid() == 0 else info.f_bavail  # root has reserved blocks
        if after_failure and free == 0:
            return _WRITE_FAILURES[errno.ENOSPC]
    except (OSError, AttributeError):
        pass
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return _WRITE_FAILURES[errno.EACCES]
    return None


def not_writable(
    path: Path, problem: OSError | str, *, reading_works: bool = False
) -> NotWritableError:
    """The one-line error for a place chatapp must write to and cannot."""
    reason = problem if isinstance(problem, str) else write_failure(problem) or str(problem)
    still = " (what is stored can still be read)" if reading_works else ""
    full = "free some space" if "space" in reason or "quota" in reason else "make it writable"
    return NotWritableError(
        f"{path}: {reason}; chatapp cannot save there{still} — {full}, or set {HOME_ENV} to a"
        " writable folder"
    )


def make_private(path: Path) -> None:
    """Take group and other permissions off ``path`` (0700 for a folder, 0600 for a file) when
    it is ours and has any; a path that is gone or not ours is left alone."""
    if not _POSIX:
        return
    try:
        info = path.stat()
    except OSError:
        return
    if info.st_uid != os.getuid() or not info.st_mode & 0o077:
        return
    wanted = PRIVATE_DIR if stat.S_ISDIR(info.st_mode) else PRIVATE_FILE
    with contextlib.suppress(OSError):
        path.chmod(wanted)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist; tighten it if it does."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        if path.is_file():
            make_private(path)
        return
    os.close(fd)


def write_private_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary file beside it, then a rename), the
    file readable and writable by its owner only. Raises OSError (NotWritableFileError, also
    a one-line ChatappError, for a read-only, forbidden or full folder)."""
    try:
        return _write_private_text(path, text)
    except OSError as exc:
        reason = write_failure(exc)
        if reason is None or isinstance(exc, ChatappError):
            raise
        from chatapp.errors import NotWritableFileError

        message = str(not_writable(path.parent, reason))
        raise NotWritableFileError(exc.errno or 0, exc.strerror or reason, path, message) from None


def _write_private_text(path: Path, text: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if _POSIX:
            os.chmod(tmp, PRIVATE_FILE)  # mkstemp makes 0600 already; keep it explicit
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def config_dir() -> Path:
    """Where ``config.toml`` and the user's own templates live."""
    home = _home_override()
    return _ensure(home / "config" if home else Path(platformdirs.user_config_dir(APP_NAME)))


def data_dir() -> Path:
    """Conversations database, document collections, the model registry."""
    home = _home_override()
    return _ensure(home / "data" if home else Path(platformdirs.user_data_dir(APP_NAME)))


def cache_dir() -> Path:
    """Things that can be rebuilt: model hashes, static embedders, logs."""
    home = _home_override()
    return _ensure(home / "cache" if home else Path(platformdirs.user_cache_dir(APP_NAME)))


def models_dir() -> Path:
    """Downloaded GGUF models."""
    return _ensure(data_dir() / "models")


def config_file() -> Path:
    return config_dir() / "config.toml"


def keys_file() -> Path:
    """Secrets (``backend.api_key``), kept apart from ``config.toml`` in a 0600 file."""
    return config_dir() / "keys.toml"


def templates_dir() -> Path:
    """The user's own prompt templates; a file here overrides a bundled one of the same name."""
    return _ensure(config_dir() / "templates")


def database_path() -> Path:
    return data_dir() / "chatapp.db"


def collections_dir() -> Path:
    """The embedded Chroma store and per-collection manifests."""
    return _ensure(data_dir() / "collections")


def log_file() -> Path:
    return cache_dir() / "chatapp.log"


def all_dirs() -> dict[str, Path]:
    return {
        "config": config_dir(),
        "data": data_dir(),
        "cache": cache_dir(),
        "models": models_dir(),
        "templates": templates_dir(),
        "collections": collections_dir(),
    }
