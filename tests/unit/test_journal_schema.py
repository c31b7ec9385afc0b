"""Journal schema versions: fresh journals, migrations of old ones, clear refusals of what cannot be read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from journal_support import intent, run_started

from repeg.errors import ConfigError, JournalError
from repeg.journal.schema import MIGRATIONS, SCHEMA_VERSION, VERSION_TABLE_SQLITE, pending_migrations
from repeg.journal.sqlite import SqliteJournal


def _make_v1(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(VERSION_TABLE_SQLITE)
    for statement in MIGRATIONS[0].statements("sqlite"):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, '2026-01-01T00:00:00+00:00')")
    conn.execute("INSERT INTO runs VALUES ('old', '2026-01-01T00:00:00+00:00')")
    conn.commit()
    conn.close()


def test_migrations_are_numbered_in_order_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def test_a_new_journal_starts_at_the_current_version(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    assert journal.schema_version == SCHEMA_VERSION
    journal.close()


def test_an_old_journal_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _make_v1(path)
    journal = SqliteJournal(path)
    assert journal.schema_version == SCHEMA_VERSION
    assert journal.has_run("old")
    journal.close()
    indexes = sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    assert ("events_by_kind",) in indexes


async def test_a_migrated_journal_accepts_new_events(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _make_v1(path)
    journal = SqliteJournal(path)
    await journal.emit(run_started("new"))
    await journal.emit(intent("new"))
    assert len(journal.events("new")) == 2
    journal.close()


def test_a_journal_from_a_newer_repeg_is_refused_with_the_versions(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SqliteJournal(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?, '2030-01-01T00:00:00+00:00')", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(
        JournalError, match=rf"schema version {SCHEMA_VERSION + 1}, newer than the {SCHEMA_VERSION}"
    ):
        SqliteJournal(path)


def test_a_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match=r"not a repeg journal .*customers"):
        SqliteJournal(path)
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == [("customers",)]


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text("symbol,side,qty\n" * 200)
    with pytest.raises(ConfigError, match="not a SQLite database"):  # the path given is wrong: bad input
        SqliteJournal(path)


def test_a_negative_version_is_reported_as_invalid() -> None:
    with pytest.raises(JournalError, match="invalid schema version -1"):
        pending_migrations(-1, "j.db")


def test_a_foreign_sqlite_database_keeps_its_journal_mode(tmp_path: Path) -> None:
    # The journal switched the user's database to WAL (a lasting change of its header) before refusing it.
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="not a repeg journal"):
        SqliteJournal(path)
    assert path.read_bytes() == before
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_journal_that_lost_its_schema_version_is_a_damaged_journal_not_bad_input(tmp_path: Path) -> None:
    # A repeg journal (its runs and events tables) without schema_version was refused as "not a repeg journal;
    # choose another --journal path" (bad input, exit 2): its recorded runs would be walked away from as a wrong
    # path, though it is the journal and it is damaged (a journal failure, exit 4).
    path = tmp_path / "journal.db"
    SqliteJournal(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE schema_version")
    conn.commit()
    conn.close()
    with pytest.raises(
        JournalError, match=r"has a repeg journal's tables \(events, runs\) but no schema_version"
    ):
        SqliteJournal(path)


def test_another_database_with_runs_and_events_among_its_tables_stays_bad_input(tmp_path: Path) -> None:
    # Only a database holding exactly a journal's tables is taken for a journal that lost its schema_version.
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    for table in ("runs", "events", "customers"):
        conn.execute(f"CREATE TABLE {table} (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match=r"not a repeg journal \(it has tables customers, events, runs"):
        SqliteJournal(path)
