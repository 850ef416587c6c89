"""A home chatapp cannot write: a read-only bind mount and a full tmpfs, each in a private mount
namespace (``unshare -m``, as root), with the real ``chatapp``. What only reads works (history
list/show/search/export, document search); what must write says in one line which folder and
what to do (exit 2, no traceback), never "move the database aside"; nothing stored changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.security.conftest import Run, chatapp_env, run_chatapp, stored_state

MOUNT_FAILED = 99


def _namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", "/mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _namespaces_work(), reason="needs root and unshare -m (a private mount namespace)"
)


def in_namespace(setup: str, home: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """``chatapp ARGS`` after the shell lines ``setup`` ran in a private mount namespace."""
    script = f'{setup} || exit {MOUNT_FAILED}\nexec "$CHATAPP_PY" -m chatapp "$@"'
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *args],
        input=b"",
        capture_output=True,
        env={**(env or chatapp_env(home)), "CHATAPP_PY": sys.executable, "TARGET": str(home)},
        timeout=120,
    )
    assert done.returncode != MOUNT_FAILED, done.stderr
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


READ_ONLY = 'mount --bind "$TARGET" "$TARGET" && mount -o remount,bind,ro "$TARGET"'


def read_only(home: Path, *args: str) -> Run:
    return in_namespace(READ_ONLY, home, *args)


def refused_as_unwritable(run: Run, folder: Path, reason: str) -> None:
    run.assert_refused(2, str(folder), reason, "CHATAPP_HOME")
    assert "move it aside" not in run.err


def test_a_read_only_home_still_reads_history(home: Path, tmp_path: Path) -> None:
    before = stored_state(home)
    listed = read_only(home, "history", "list")
    assert listed.code == 0 and "What is kept?" in listed.out, listed.err
    shown = read_only(home, "history", "show", "1")
    assert shown.code == 0 and "What is kept?" in shown.out, shown.err
    found = read_only(home, "history", "search", "kept")
    assert found.code == 0 and "kept" in found.out, found.err
    target = tmp_path / "export.md"  # outside the read-only home
    exported = read_only(home, "history", "export", "1", "-o", str(target))
    assert exported.code == 0, exported.err
    assert "What is kept?" in target.read_text(encoding="utf-8")
    doctor = read_only(home, "doctor", "--json")
    assert doctor.code == 0, doctor.err
    assert json.loads(doctor.out)["database"]["state"] == "ok"
    assert stored_state(home) == before


def test_a_read_only_home_refuses_writes_in_one_line(home: Path) -> None:
    before = stored_state(home)
    data = home / "data"
    refused_as_unwritable(read_only(home, "ask", "a new question"), data, "read-only file system")
    refused_as_unwritable(read_only(home, "history", "rm", "1"), data, "read-only file system")
    refused_as_unwritable(
        read_only(home, "config", "set", "ui.theme", "nord"),
        home / "config",
        "read-only file system",
    )
    assert stored_state(home) == before


def test_a_read_only_home_searches_documents_but_does_not_index(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zebra.txt").write_text("The zebra lives on the savanna of Africa.\n")
    indexed = run_chatapp(home, "index", str(docs))
    assert indexed.code == 0, indexed.err
    found = read_only(home, "search", "zebra savanna")
    assert found.code == 0 and "zebra.txt" in found.out, found.err
    (docs / "more.txt").write_text("Another file.\n")
    again = read_only(home, "index", str(docs))
    again.assert_refused(2, "read-only file system", "CHATAPP_HOME")


def test_a_fresh_home_on_a_read_only_mount_is_one_line(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    home = mount / "chatapp-home"
    setup = f'mount --bind "{mount}" "{mount}" && mount -o remount,bind,ro "{mount}"'
    run = in_namespace(setup, home, "ask", "hello")
    refused_as_unwritable(run, home, "read-only file system")
    run = in_namespace(setup, home, "history", "list")
    refused_as_unwritable(run, home, "read-only file system")


def test_a_full_home_reads_history_and_refuses_writes_in_one_line(tmp_path: Path) -> None:
    mount = tmp_path / "full"
    mount.mkdir()
    home = mount / "home"
    fill = (
        f'mount -t tmpfs -o size=8m tmpfs "{mount}" && "$CHATAPP_PY" -m chatapp ask "first words"'
        f' >/dev/null && (dd if=/dev/zero of="{mount}/fill" bs=4k 2>/dev/null; true)'
    )

    def full(*args: str) -> Run:
        return in_namespace(fill, home, *args)

    listed = full("history", "list")
    assert listed.code == 0 and "first words" in listed.out, listed.err
    refused_as_unwritable(full("ask", "second words"), home / "data", "no space left")
    refused_as_unwritable(
        full("config", "set", "ui.theme", "nord"), home / "config", "no space left"
    )


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_home_whose_folders_are_0500_for_a_non_root_user() -> None:
    """Without a mount: the folders' own modes (0500, as a user might set them to keep a
    history safe) stop writes for a user who is not root."""
    base = Path(tempfile.mkdtemp(prefix="chatapp-readonly-"))
    try:
        base.chmod(0o755)
        os.chown(base, NOBODY, NOBODY)
        home = base / "home"
        env = {**chatapp_env(home), "HOME": str(base)}

        def as_nobody(*args: str) -> Run:
            done = subprocess.run(
                ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
                 sys.executable, "-m", "chatapp", *args],
                input=b"", capture_output=True, env=env, cwd=base, timeout=120,
            )  # fmt: skip
            return Run(done.returncode, done.stdout.decode(), done.stderr.decode())

        first = as_nobody("ask", "What is kept?")
        assert first.code == 0, first.err
        for folder in (home / "data", home / "config", home):
            folder.chmod(0o500)
        listed = as_nobody("history", "list")
        assert listed.code == 0 and "What is kept?" in listed.out, listed.err
        refused_as_unwritable(as_nobody("ask", "more"), home / "data", "no permission")
        refused_as_unwritable(
            as_nobody("config", "set", "ui.theme", "nord"), home / "config", "no permission"
        )
    finally:
        for folder in base.rglob("*"):
            if folder.is_dir():
                folder.chmod(0o700)
        shutil.rmtree(base)


def test_history_rm_with_a_read_only_cache_says_the_states_were_not_deleted(home: Path) -> None:
    """The conversation goes, but a saved model state of it could not: said in one line, so
    the user knows to run `chatapp cache clear`, never silently left."""
    state = home / "cache" / "kv-states" / ("f" * 64 + "-2048") / f"{'1' * 32}.kvstate"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"a state naming no conversation")
    cache = home / "cache"
    setup = f'mount --bind "{cache}" "{cache}" && mount -o remount,bind,ro "{cache}"'
    run = in_namespace(setup, home, "history", "rm", "1")
    run.assert_refused(2, "conversation 1 was deleted", str(cache), "chatapp cache clear")
    assert state.exists()
    listed = run_chatapp(home, "history", "list", "--json")
    assert listed.code == 0 and listed.out.strip() == "[]"


def test_a_read_only_history_from_an_older_version_is_one_line(home: Path) -> None:
    """A read-only home whose database an older chatapp wrote (a migration not applied yet):
    it cannot be read without the upgrade, and the one line says so instead of 'move it
    aside' or a traceback."""
    import sqlite3

    with sqlite3.connect(home / "data" / "chatapp.db") as conn:
        last = conn.execute("SELECT max(rowid) FROM _migrations").fetchone()[0]
        conn.execute("DELETE FROM _migrations WHERE rowid = ?", (last,))
    conn.close()
    run = read_only(home, "history", "list")
    refused_as_unwritable(run, home / "data", "upgrade the history")
