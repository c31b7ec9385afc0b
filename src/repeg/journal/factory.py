"""Open a journal from what the user typed: a file path (SQLite) or a `postgresql://` DSN."""

from __future__ import annotations

from pathlib import Path

from repeg.journal.base import Journal

DEFAULT_JOURNAL = "repeg.db"


def is_postgres(spec: str) -> bool:
    return spec.startswith(("postgresql://", "postgres://"))


def open_journal(
    spec: str = DEFAULT_JOURNAL, *, create: bool = True, threaded: bool | None = None
) -> Journal:
    """The journal `spec` names. `create=False` refuses a SQLite path that does not exist yet (for reading)."""
    if is_postgres(spec):
        from repeg.journal.postgres import PostgresJournal

        return PostgresJournal(spec, threaded=threaded)
    from repeg.journal.sqlite import SqliteJournal

    return SqliteJournal(Path(spec), create=create, threaded=threaded)
