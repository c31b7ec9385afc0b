"""Open a journal from what the user typed: a file path (SQLite) or a `postgresql://` DSN."""

from __future__ import annotations

import re
from pathlib import Path

from repeg.errors import ConfigError
from repeg.journal.base import Journal

DEFAULT_JOURNAL = "repeg.db"


def is_postgres(spec: str) -> bool:
    return spec.startswith(("postgresql://", "postgres://"))


#: A URL's scheme (two characters at least: `C://x` is a Windows path).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")


def refuse_a_url_of_no_journal(spec: str) -> None:
    """Refuse (`ConfigError` naming `--journal`, its password masked) a URL that is no `postgresql://` DSN, as a
    SQLAlchemy one (`postgresql+psycopg://`): read as a SQLite path, every refusal printed its password."""
    if _URL.match(spec) and not is_postgres(spec):
        from repeg.journal.postgres import safe_dsn

        reason = (
            "a PostgreSQL journal is named by a postgresql:// (or postgres://) DSN, with no driver suffix"
        )
        raise ConfigError("--journal", safe_dsn(spec), f"a URL, not a SQLite file; {reason}")


def open_journal(
    spec: str = DEFAULT_JOURNAL, *, create: bool = True, threaded: bool | None = None
) -> Journal:
    """The journal `spec` names. `create=False` refuses a SQLite path that does not exist yet (for reading)."""
    if is_postgres(spec):
        from repeg.journal.postgres import PostgresJournal

        return PostgresJournal(spec, threaded=threaded)
    refuse_a_url_of_no_journal(spec)
    from repeg.journal.sqlite import SqliteJournal

    return SqliteJournal(Path(spec), create=create, threaded=threaded)
