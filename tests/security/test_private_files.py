"""What chatapp keeps on disk is readable by the user who runs it and nobody else: folders
0700, the database with its -wal/-shm 0600, config, keys and exports 0600; files an older
version left readable are tightened; as root, the suite also shows that another user really
cannot read them. Deleted conversations leave nothing behind in the database files."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from chatapp import paths
from tests.security.conftest import run_chatapp, stored_state

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_fresh_home_is_private(home: Path) -> None:
    run = run_chatapp(home, "config", "set", "ui.theme", "nord")
    assert run.code == 0, run.err
    assert mode(home / "config") == 0o700 and mode(home / "data") == 0o700
    for folder in paths.all_dirs().values():  # every folder chatapp makes
        assert mode(folder) == 0o700, folder
    assert mode(home / "data" / "chatapp.db") == 0o600
    assert mode(home / "config" / "config.toml") == 0o600


def test_wal_and_shm_files_are_private_while_open(home: Path) -> None:
    from chatapp.storage import ConversationStore

    with ConversationStore(home / "data" / "chatapp.db") as store:
        store.create_conversation(title="open")
        wal = home / "data" / "chatapp.db-wal"
        shm = home / "data" / "chatapp.db-shm"
        assert wal.exists() and shm.exists()
        assert mode(wal) == 0o600 and mode(shm) == 0o600


def test_files_left_readable_by_an_older_version_are_tightened(home: Path) -> None:
    db = home / "data" / "chatapp.db"
    db.chmod(0o644)
    (home / "data").chmod(0o755)
    paths.config_file().write_text('[ui]\ntheme = "nord"\n')
    paths.config_file().chmod(0o644)
    before = stored_state(home)
    run = run_chatapp(home, "history", "list")
    assert run.code == 0, run.err
    assert mode(db) == 0o600 and mode(home / "data") == 0o700
    run = run_chatapp(home, "config", "set", "ui.theme", "gruvbox")
    assert mode(paths.config_file()) == 0o600
    assert stored_state(home)[0] == before[0]


def test_export_to_a_file_is_private_and_exact(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "chat.md"
    target.parent.mkdir()
    run = run_chatapp(home, "history", "export", "1", "-o", str(target))
    assert run.code == 0, run.err
    assert mode(target) == 0o600
    assert "What is kept?" in target.read_text(encoding="utf-8")


def test_export_over_a_folder_is_refused(home: Path, tmp_path: Path) -> None:
    run = run_chatapp(home, "history", "export", "1", "-o", str(tmp_path))
    run.assert_refused(2, f"--output {tmp_path}", "is a directory")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_read_history_or_settings() -> None:
    # A home that other users can reach (tmp_path's parents are 0700): only chatapp's own
    # folder and file modes keep them out. A public file beside it shows the way is open.
    base = Path(tempfile.mkdtemp(prefix="chatapp-shared-"))
    try:
        base.chmod(0o755)
        home = base / "home"
        home.mkdir(mode=0o755)
        assert run_chatapp(home, "ask", "private words").code == 0
        assert run_chatapp(home, "config", "set", "backend.api_key", "sk-other-user").code == 0
        public = base / "public.txt"
        public.write_text("anyone may read this")
        public.chmod(0o644)

        def read_as_nobody(target: Path) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["cat", str(target)],
                preexec_fn=lambda: (os.setgid(NOBODY), os.setuid(NOBODY)),  # type: ignore[func-returns-value]
                capture_output=True,
                text=True,
            )

        assert read_as_nobody(public).returncode == 0
        for target in (
            home / "data" / "chatapp.db",
            home / "config" / "config.toml",
            home / "config" / "keys.toml",
        ):
            assert target.exists()
            attempt = read_as_nobody(target)
            assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, target
    finally:
        shutil.rmtree(base)


def test_deleted_conversation_leaves_no_trace_in_the_database_files(home: Path) -> None:
    marker = "Zebraquartz"
    run = run_chatapp(home, "ask", f"my diary: {marker} password 4417")
    assert run.code == 0, run.err
    from chatapp.storage import ConversationStore

    with ConversationStore(home / "data" / "chatapp.db") as store:
        doomed = store.list_conversations()[0]
        assert marker in store.thread(doomed.id)[0].content

    def traces() -> int:
        data = home / "data"
        return sum(f.read_bytes().lower().count(marker.lower().encode()) for f in data.iterdir())

    assert traces() > 0
    run = run_chatapp(home, "history", "rm", str(doomed.id))
    assert run.code == 0, run.err
    assert traces() == 0, "the deleted text is still readable in the database files"
    with ConversationStore(home / "data" / "chatapp.db") as store:
        [kept] = store.list_conversations()
        assert store.search("kept")  # the other conversation is still found
        assert kept.title


def test_a_chatapp_home_that_chatapp_creates_is_private(tmp_path, monkeypatch) -> None:
    """CHATAPP_HOME pointing at a folder that does not exist yet: chatapp makes it 0700, not
    with the umask's 0755 (its contents were private, the folder's listing was not)."""
    from chatapp import paths

    home = tmp_path / "new-home"
    monkeypatch.setenv("CHATAPP_HOME", str(home))
    paths.config_dir()
    assert home.stat().st_mode & 0o777 == 0o700
