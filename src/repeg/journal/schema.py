"""Journal schema: one version number and an ordered list of migrations, per SQL dialect.

A journal records its schema version in `schema_version` (one row per applied migration, never updated).
Opening a journal applies the migrations it lacks, in order, inside one transaction; a journal written by a
newer repeg, or one that lost its `schema_version`, fails with a `JournalError` that says what to do; a database
that is not a repeg journal is refused as bad input naming `--journal` (`ConfigError`).

Both tables are append-only: triggers refuse UPDATE and DELETE, so the history of a run cannot be rewritten
by repeg or by a stray tool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from repeg.errors import ConfigError, JournalError

Dialect = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgres


def _sqlite_append_only(table: str) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'repeg journal: {table} is append-only'); END"
        for op in ("UPDATE", "DELETE")
    )


def _postgres_append_only(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION repeg_append_only()"
    )


_V1_SQLITE: Final = (
    "CREATE TABLE runs (run_id TEXT PRIMARY KEY, started TEXT NOT NULL)",
    "CREATE TABLE events ("
    " run_id TEXT NOT NULL REFERENCES runs(run_id),"
    " seq INTEGER NOT NULL,"
    " leg INTEGER,"
    " ts TEXT NOT NULL,"
    " correlation_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " payload TEXT NOT NULL,"
    " PRIMARY KEY (run_id, seq))",
    *_sqlite_append_only("runs"),
    *_sqlite_append_only("events"),
)

_V1_POSTGRES: Final = (
    "CREATE TABLE runs (run_id TEXT PRIMARY KEY, started TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE events ("
    " run_id TEXT NOT NULL REFERENCES runs(run_id),"
    " seq BIGINT NOT NULL,"
    " leg INTEGER,"
    " ts TIMESTAMPTZ NOT NULL,"
    " correlation_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " payload TEXT NOT NULL,"
    " PRIMARY KEY (run_id, seq))",
    "CREATE OR REPLACE FUNCTION repeg_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'repeg journal: % is append-only', TG_TABLE_NAME; END $$",
    _postgres_append_only("runs"),
    _postgres_append_only("events"),
)

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "runs and append-only events", _V1_SQLITE, _V1_POSTGRES),
    Migration(
        2,
        "index events by kind for run summaries",
        ("CREATE INDEX events_by_kind ON events (kind, run_id)",),
        ("CREATE INDEX events_by_kind ON events (kind, run_id)",),
    ),
)

#: The schema version this repeg writes and reads.
SCHEMA_VERSION: Final = MIGRATIONS[-1].version

VERSION_TABLE_SQLITE: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
)
VERSION_TABLE_POSTGRES: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
)


def pending_migrations(current: int, location: str) -> tuple[Migration, ...]:
    """Migrations to apply to a journal at `current` (0 = empty), in order.

    Raises `JournalError` for a journal newer than this code: it could hold events this version cannot read,
    and writing into it could corrupt what a newer repeg expects.
    """
    if current > SCHEMA_VERSION:
        raise JournalError(
            f"journal {location} has schema version {current}, newer than the {SCHEMA_VERSION} this repeg "
            "supports; upgrade repeg to read it"
        )
    if current < 0:
        raise JournalError(f"journal {location} has an invalid schema version {current}")
    return tuple(m for m in MIGRATIONS if m.version > current)


#: A repeg journal's tables besides schema_version (migration 1): a database holding these and no other is a
#: journal that lost its schema_version (another application's database with more tables stays bad input).
_JOURNAL_TABLES: Final = frozenset({"runs", "events"})


def not_a_journal(location: str, tables: set[str]) -> ConfigError | JournalError:
    """A database with tables but no schema_version, given as `--journal`. Without a journal's tables the path
    given is wrong (`ConfigError`: bad input, exit 2), no journal failed; with those tables only, it is a repeg
    journal that lost its schema_version, a damaged journal (`JournalError`: exit 4), not a path to walk away
    from. `location` is the path or the DSN with its password masked."""
    shown = ", ".join(sorted(tables))
    if tables == _JOURNAL_TABLES:
        return JournalError(
            f"journal {location} has a repeg journal's tables ({shown}) but no schema_version: it is damaged "
            "(left as it is; restore it from a backup)"
        )
    reason = (
        f"not a repeg journal (it has tables {shown} but no schema_version); choose another --journal path"
    )
    return ConfigError("--journal", location, reason)
