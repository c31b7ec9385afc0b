"""`SqliteJournal`: the default journal, one SQLite file in WAL mode.

WAL lets `repeg show` read while a run writes. Durable events (`DURABLE_KINDS`) are committed with
`synchronous=FULL` (the WAL is fsync'd before `emit` returns); the rest with `synchronous=NORMAL` in the same
group commits. Commits run on a writer thread under a real-time loop and inline under a `VirtualTimeLoop`
(see `repeg.journal.writer`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog

from repeg.domain.events import RUN_EVENT_ADAPTER, RunEvent
from repeg.engine.clock import VirtualTimeLoop
from repeg.errors import JournalError, RunNotFoundError
from repeg.journal.base import RunSummary, is_durable, redact, summarize
from repeg.journal.schema import (
    SCHEMA_VERSION,
    VERSION_TABLE_SQLITE,
    not_a_journal,
    pending_migrations,
)
from repeg.journal.writer import InlineWriter, Record, ThreadedWriter, Writer

log = structlog.get_logger(__name__)

_INSERT_EVENT = (
    "INSERT INTO events (run_id, seq, leg, ts, correlation_id, kind, payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SUMMARY_QUERY = (
    "SELECT r.run_id, r.started, e.payload FROM runs r LEFT JOIN events e ON e.run_id = r.run_id "
    "AND e.kind IN ('run_started', 'run_ended', 'leg_planned', 'order_updated') "
    "ORDER BY r.started, r.run_id, e.seq"
)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"cannot open journal {path}: {exc}") from exc
    if str(mode).lower() != "wal":
        raise JournalError(f"journal {path} cannot use WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(row[0]) for row in rows}


def schema_version_of(conn: sqlite3.Connection, location: str) -> int:
    """The applied schema version (0 for an empty database)."""
    tables = _tables(conn)
    if "schema_version" not in tables:
        if tables:
            raise not_a_journal(location, tables)
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def migrate(conn: sqlite3.Connection, location: str) -> int:
    """Bring the journal to `SCHEMA_VERSION` in one transaction; returns the version found before."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version_of(conn, location)
        conn.execute(VERSION_TABLE_SQLITE)
        for migration in pending_migrations(found, location):
            for statement in migration.statements("sqlite"):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (migration.version, datetime.now(UTC).isoformat()),
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return found


def to_record(event: RunEvent, seq: int) -> Record:
    return Record(
        run_id=event.run_id,
        seq=seq,
        leg=event.leg_index,
        ts=event.ts.astimezone(UTC).isoformat(),
        correlation_id=event.correlation_id,
        kind=event.kind,
        payload=RUN_EVENT_ADAPTER.dump_json(event).decode(),
    )


class SqliteJournal:
    """A journal in one SQLite file (created and migrated on open unless `create=False`)."""

    def __init__(self, path: Path, *, create: bool = True, threaded: bool | None = None) -> None:
        if not create and not path.exists():
            raise JournalError(f"no journal at {path}")
        self._path = path
        self._threaded = threaded
        self._conn = _connect(path)
        found = migrate(self._conn, str(path))
        if found != SCHEMA_VERSION:
            log.info("journal_migrated", journal=str(path), from_version=found, to_version=SCHEMA_VERSION)
        self._reader = _connect(path)
        self._writer: Writer | None = None
        self._seq: dict[str, int] = {}
        self._synchronous = "FULL"
        self._closed = False

    @property
    def schema_version(self) -> int:
        return schema_version_of(self._reader, str(self._path))

    @property
    def location(self) -> str:
        return str(self._path)

    async def emit(self, event: RunEvent) -> None:
        if self._closed:
            raise JournalError(f"journal {self._path} is closed")
        stored = redact(event)
        record = to_record(stored, self._next_seq(stored.run_id))
        await self._writer_for_loop().write((record,), is_durable(stored))

    async def flush(self) -> None:
        if self._writer is not None:
            await self._writer.write((), True)

    def has_run(self, run_id: str) -> bool:
        row = self._reader.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row is not None

    def events(self, run_id: str) -> list[RunEvent]:
        rows = self._reader.execute(
            "SELECT payload FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        if not rows and not self.has_run(run_id):
            raise RunNotFoundError(run_id)
        return [RUN_EVENT_ADAPTER.validate_json(row[0]) for row in rows]

    def runs(self) -> list[RunSummary]:
        rows = self._reader.execute(_SUMMARY_QUERY).fetchall()
        grouped: dict[str, tuple[str, list[RunEvent]]] = {}
        for run_id, started, payload in rows:
            _, events = grouped.setdefault(run_id, (started, []))
            if payload is not None:
                events.append(RUN_EVENT_ADAPTER.validate_json(payload))
        return [
            summarize(run_id, datetime.fromisoformat(started), events)
            for run_id, (started, events) in grouped.items()
        ]

    def close(self) -> None:
        """Commit everything emitted and release the file. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            self._conn.close()
            self._reader.close()

    # --- internals ------------------------------------------------------------------------------------

    def _next_seq(self, run_id: str) -> int:
        if run_id not in self._seq:
            row = self._reader.execute("SELECT MAX(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()
            self._seq[run_id] = 0 if row is None or row[0] is None else int(row[0])
        self._seq[run_id] += 1
        return self._seq[run_id]

    def _writer_for_loop(self) -> Writer:
        if self._writer is None:
            threaded = self._threaded
            if threaded is None:
                threaded = not isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
            self._writer = (
                ThreadedWriter(self._commit, f"journal-{self._path.name}")
                if threaded
                else InlineWriter(self._commit)
            )
        return self._writer

    def _commit(self, records: Sequence[Record], durable: bool) -> None:
        if not records:
            return
        self._set_synchronous("FULL" if durable else "NORMAL")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO runs (run_id, started) VALUES (?, ?)",
                [(r.run_id, r.ts) for r in records if r.seq == 1],
            )
            conn.executemany(_INSERT_EVENT, records)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _set_synchronous(self, level: str) -> None:
        if level != self._synchronous:
            self._conn.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level
