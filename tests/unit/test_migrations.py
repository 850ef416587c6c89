"""Named migrations apply once, in order, each in one transaction."""

from __future__ import annotations

import sqlite3

import pytest

from chatapp.storage import migrations


def test_migrations_apply_in_order_once() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    ran = migrations.migrate(db)
    assert ran == [m.__name__ for m in migrations.MIGRATIONS]
    assert migrations.migrate(db) == []
    assert migrations.applied_migrations(db) == ran


def test_migration_names_are_ordered_and_unique() -> None:
    names = [m.__name__ for m in migrations.MIGRATIONS]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert all(n.startswith("m") and n[1:4].isdigit() for n in names)


def test_failed_migration_rolls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def m999_broken(db: sqlite3.Connection) -> None:
        migrations.run_script(db, "CREATE TABLE half (x);\nCREATE TABLE half (x);\n")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, m999_broken])
    db = sqlite3.connect(":memory:", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrations.migrate(db)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half" not in tables and "conversations" in tables
    assert "m999_broken" not in migrations.applied_migrations(db)
