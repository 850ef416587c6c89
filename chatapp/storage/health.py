"""What ``chatapp doctor`` checks on disk: files readable by others, the history database.

Read-only: nothing here changes a file (``chatapp doctor --repair`` is storage/damage.py).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from chatapp import paths
from chatapp.sqlite_connection import find_damage, is_damage, open_read_only
from chatapp.storage.damage import SEARCH_INDEX, damage_hint


def _kept_folders() -> list[Path]:
    home = os.environ.get(paths.HOME_ENV)
    if home:
        return [Path(home).expanduser()]
    import platformdirs

    return [
        Path(platformdirs.user_config_dir(paths.APP_NAME)),
        Path(platformdirs.user_data_dir(paths.APP_NAME)),
        Path(platformdirs.user_cache_dir(paths.APP_NAME)),
    ]


def too_open() -> list[tuple[Path, int]]:
    """Every folder and file under chatapp's folders that group or others can read, write or
    enter, with its mode (links are not followed)."""
    found: list[tuple[Path, int]] = []
    for top in _kept_folders():
        if not top.is_dir():
            continue
        for folder, dirs, files in os.walk(top, followlinks=False):
            # Each folder is met once, in its parent's list; CHATAPP_HOME itself is the
            # user's choice, what chatapp makes in it is checked.
            own = ["."] if Path(folder) == top and not os.environ.get(paths.HOME_ENV) else []
            for name in [*own, *dirs, *files]:
                path = Path(folder) if name == "." else Path(folder) / name
                with contextlib.suppress(OSError):
                    info = path.lstat()
                    if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o077:
                        found.append((path, stat.S_IMODE(info.st_mode)))
    return found


@dataclass
class DatabaseHealth:
    path: str
    state: str
    advice: str = ""


def database_health() -> DatabaseHealth:
    """The history database checked read-only: every table's pages and the search index."""
    path = paths.database_path()
    if not path.exists():
        return DatabaseHealth(str(path), "not made yet")
    try:
        db = open_read_only(path)  # a read-only home is checked too
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return DatabaseHealth(str(path), "damaged", damage_hint(["schema"]))
        return DatabaseHealth(str(path), f"cannot be opened ({exc})")
    except sqlite3.Error as exc:
        return DatabaseHealth(str(path), f"cannot be opened ({exc})")
    try:
        damaged = find_damage(db)
        if not damaged:
            try:
                db.execute(f"INSERT INTO {SEARCH_INDEX}({SEARCH_INDEX}) VALUES('integrity-check')")
            except sqlite3.OperationalError:
                pass  # read-only connection: FTS5 checks by writing; the pages checked out
            except sqlite3.DatabaseError:
                damaged = [SEARCH_INDEX]
    finally:
        db.close()
    if not damaged:
        return DatabaseHealth(str(path), "ok")
    return DatabaseHealth(str(path), "damaged", damage_hint(damaged))
