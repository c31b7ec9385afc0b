"""`SqliteJournal`: the default journal, one SQLite file in WAL mode.

WAL lets `repeg show` read while a run writes. Group commits holding a durable event (`DURABLE_KINDS`: intents
and the broker's answers) use `synchronous=FULL`: the WAL is fsync'd before the commit returns, so the journal
survives a power cut as well as a crash. Batches of updates alone use `synchronous=NORMAL`.

Under a `VirtualTimeLoop` the broker is the in-process simulator, which lives and dies with the process: no
failure can lose the journal's tail yet keep an order at the broker, so per-intent commits buy nothing there.
`durability="auto"` (the default) then group-commits every `MAX_BATCH` events and on `flush`/`close`, with
`synchronous=NORMAL`; `durability="full"` keeps the real-time contract (each intent fsync'd before its broker
call) in simulation too. Under a real-time loop (remote simulator, Alpaca) both mean the full contract; commits
then run on a writer thread (see `repeg.journal.writer`).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Literal

import structlog

from repeg.errors import ConfigError, JournalError
from repeg.journal.lock import RunLock, lock_path, refuse_hard_links
from repeg.journal.schema import SCHEMA_VERSION, VERSION_TABLE_SQLITE, not_a_journal, pending_migrations
from repeg.journal.store import SqlJournal
from repeg.journal.writer import Record

log = structlog.get_logger(__name__)

_INSERT_EVENT = "INSERT INTO events (run_id, seq, leg, ts, correlation_id, kind, payload) VALUES "
_EVENT_ROW = "(?, ?, ?, ?, ?, ?, ?)"
#: Rows per INSERT: SQLite before 3.32 takes at most 999 parameters in one statement.
_ROWS_PER_INSERT = 999 // len(Record._fields)
_SUMMARY_QUERY = (
    "SELECT r.run_id, r.started, e.payload FROM runs r LEFT JOIN events e ON e.run_id = r.run_id "
    "AND e.kind IN ('run_started', 'run_ended', 'leg_planned', 'order_accepted', 'order_updated') "
    "ORDER BY r.started, r.run_id, e.seq"
)


#: The first bytes of every SQLite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"
#: The length of SQLite's database header (its fixed fields are checked when its first 16 bytes are not that text).
_HEADER_SIZE = 100


def _refuse_foreign_file(path: Path) -> None:
    """Raise `ConfigError` naming `--journal` when `path` holds something other than a SQLite database: the path
    given is wrong (bad input, exit 2), no journal failed. A database whose header lost only its first 16 bytes is
    a damaged journal (`JournalError`, exit 4), not a wrong path.

    SQLite takes some non-empty files (e.g. one byte) for an empty database and overwrites them with a journal;
    a user's file must never be destroyed. An empty file holds nothing to lose and becomes a journal.
    """
    try:
        with path.open("rb") as file:
            head = file.read(_HEADER_SIZE)
    except OSError:
        return  # absent (created next) or unreadable: sqlite3 reports the latter
    if head and not head.startswith(_SQLITE_HEADER):
        if _rest_of_a_sqlite_header(head):  # a database whose first bytes were overwritten: not a wrong path
            raise JournalError(
                f"journal {path}: its SQLite header is damaged (left as it is; restore it from a backup)"
            )
        raise ConfigError("--journal", str(path), "not a SQLite database, so not a journal (left as it is)")


def _rest_of_a_sqlite_header(head: bytes) -> bool:
    """Whether `head` holds the fixed fields of SQLite's header after its 16-byte text: a power-of-two page size
    (512 to 65536, stored as 1), file format versions 1 or 2, and the payload fractions 64, 32, 32."""
    if len(head) < _HEADER_SIZE:
        return False
    page_size = int.from_bytes(head[16:18], "big")
    sized = page_size == 1 or (512 <= page_size <= 32768 and page_size & (page_size - 1) == 0)
    return sized and head[18] in (1, 2) and head[19] in (1, 2) and head[21:24] == b"\x40\x20\x20"


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"cannot open journal {path}: {exc}") from exc
    try:
        # A database that is no journal is refused before WAL mode changes its header for good.
        schema_version_of(conn, str(path))
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise JournalError(f"cannot open journal {path}: {exc}") from exc
    except (JournalError, ConfigError):  # a database too new, or not a journal (`not_a_journal`)
        conn.close()
        raise
    if str(mode).lower() != "wal":
        raise JournalError(f"journal {path} cannot use WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _open(path: Path, *, create: bool) -> tuple[sqlite3.Connection, bool]:
    """A connection to the journal at `path`, and whether it is read-only: a journal opened only to read
    (`create=False`) that SQLite cannot open for writing, as an archive (a read-only file in a read-only directory,
    where its shared-memory file cannot be created), is read as it is (`_connect_read_only`)."""
    try:
        return _connect(path), False
    except JournalError as exc:
        _refuse_a_log_without_its_index(path, exc)
        if create or not _archived(path, exc):
            raise
    log.info("journal_read_only", journal=str(path))
    return _connect_read_only(path), True


def _archived(path: Path, refused: JournalError) -> bool:
    """Whether `refused` is SQLite finding the journal read-only, with no write-ahead log left beside it to read
    (beside the file a symbolic link names, where SQLite keeps it)."""
    real = path.resolve()
    wal = real.with_name(f"{real.name}-wal")
    return "readonly database" in str(refused) and not (wal.exists() and wal.stat().st_size > 0)


def _refuse_a_log_without_its_index(path: Path, refused: JournalError) -> None:
    """Say what to do, rather than SQLite's bare refusal, when the journal cannot be opened because its write-ahead
    log (commits not yet in the file) lies beside it without the index SQLite needs to read it, and that index cannot
    be created there: an archive copied with its `-wal` but not its `-shm` into a read-only directory."""
    real = path.resolve()
    wal, shm = (real.with_name(f"{real.name}-{suffix}") for suffix in ("wal", "shm"))
    cannot = any(reason in str(refused) for reason in ("unable to open database file", "readonly database"))
    try:  # a directory that may not be searched: SQLite's refusal stands
        stranded = cannot and wal.exists() and wal.stat().st_size > 0 and not shm.exists()
    except OSError:
        return
    if stranded:
        raise JournalError(
            f"journal {path} cannot be read: its write-ahead log {wal} holds commits not yet in it, and SQLite "
            f"cannot create the index {shm.name} it needs beside them: make the journal and its directory writable "
            f"once (opening it then folds the log into it), or copy {real.name} and {wal.name} together to one that is"
        ) from refused


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """The journal at `path` opened to read only, as immutable (SQLite then needs no file beside it). One that is
    not at this repeg's schema version cannot be migrated read-only: refused, saying to make it writable."""
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?immutable=1", uri=True, isolation_level=None, check_same_thread=False
        )
        found = schema_version_of(conn, str(path))
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"cannot open journal {path}: {exc}") from exc
    if pending_migrations(found, str(path)):
        conn.close()
        raise JournalError(
            f"journal {path} is read-only and at schema version {found}, older than the {SCHEMA_VERSION} this "
            "repeg reads: make it writable once, so that it can be migrated"
        )
    return conn


def _as_found(path: Path) -> tuple[int, int, int] | None:
    """What changes when a journal file is written: its inode, size and modification time (None once it is gone)."""
    try:
        found = path.resolve().stat()
    except OSError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns


@functools.cache
def _insert_statement(rows: int) -> str:
    return _INSERT_EVENT + ", ".join([_EVENT_ROW] * rows)


def _insert_events(conn: sqlite3.Connection, records: Sequence[Record]) -> None:
    """Insert `records` in order, up to `_ROWS_PER_INSERT` rows per statement: the same rows as one INSERT per
    record (`executemany`), without SQLite starting, checking and ending a statement, and sqlite3 resetting it,
    for every row."""
    for start in range(0, len(records), _ROWS_PER_INSERT):
        rows = records[start : start + _ROWS_PER_INSERT]
        conn.execute(_insert_statement(len(rows)), tuple(chain.from_iterable(rows)))


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


class SqliteJournal(SqlJournal):
    """A journal in one SQLite file, created (unless `create=False`) and migrated on open; one opened with
    `create=False` that SQLite cannot write (an archive) is opened read-only (`_open`)."""

    def __init__(
        self,
        path: Path,
        *,
        create: bool = True,
        threaded: bool | None = None,
        durability: Literal["auto", "full"] = "auto",
    ) -> None:
        if not create and not path.exists():
            raise JournalError(f"no journal at {path}")
        _refuse_foreign_file(path)
        super().__init__(str(path), threaded)
        self._path = path
        self._locks: list[RunLock] = []
        self._always_full = durability == "full"
        self._strict_in_simulation = self._always_full
        self._conn, self._read_only = _open(path, create=create)
        if not self._read_only:
            self._migrate()
        self._reader = _connect_read_only(path) if self._read_only else _connect(path)
        #: The file as the read-only (immutable) reader found it: SQLite does not notice a change under it.
        self._read_as = _as_found(path) if self._read_only else None
        self._synchronous = "FULL"

    def _migrate(self) -> None:
        try:
            with self._store_errors("bring its schema up to date"):
                found = migrate(self._conn, self._location)
        except BaseException:
            self._conn.close()
            raise
        if found != SCHEMA_VERSION:
            log.info(
                "journal_migrated", journal=self._location, from_version=found, to_version=SCHEMA_VERSION
            )

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """A read of the store. One read as immutable (`_connect_read_only`) takes no lock, so the journal's owner,
        who may write it, can checkpoint pages into the file under it and garble it: refused once the file changed."""
        try:
            with self._store_errors(what):
                yield
        except JournalError as exc:  # "database disk image is malformed": a page read as it was rewritten
            self._refuse_a_changed_file(exc)
            raise
        self._refuse_a_changed_file(None)

    def _refuse_a_changed_file(self, failed: JournalError | None) -> None:
        if self._read_as is not None and _as_found(self._path) != self._read_as:
            raise JournalError(
                f"journal {self._location} changed while it was read (a run is writing it; it was opened read-only, "
                "without the lock a writable journal's readers take): read it again"
            ) from failed

    @property
    def schema_version(self) -> int:
        with self._reading("read its schema version"):
            return schema_version_of(self._reader, self._location)

    def has_run(self, run_id: str) -> bool:
        with self._reading(f"look up run {run_id!r}"):
            row = self._reader.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row is not None

    def _payloads(self, run_id: str) -> list[str]:
        with self._reading(f"read the events of run {run_id!r}"):
            rows = self._reader.execute("SELECT payload FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
            return [str(row[0]) for row in rows.fetchall()]

    def _summary_rows(self) -> list[tuple[str, datetime, str | None]]:
        with self._reading("list its runs"):
            rows = self._reader.execute(_SUMMARY_QUERY).fetchall()
        return [(str(run_id), self._started(run_id, started), payload) for run_id, started, payload in rows]

    def _started(self, run_id: str, text: str) -> datetime:
        try:
            return datetime.fromisoformat(text)
        except (TypeError, ValueError) as exc:
            raise JournalError(
                f"journal {self._location}: run {run_id!r} has an unreadable start time {text!r}"
            ) from exc

    def _max_seq(self, run_id: str) -> int:
        with self._reading(f"read the last sequence number of run {run_id!r}"):
            row = self._reader.execute("SELECT MAX(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def _lock_run(self, run_id: str) -> bool:
        if self._read_only:  # opened to be read (`_open`): no run of it is worked, nothing written to it
            raise JournalError(
                f"journal {self._location} is read-only: its runs can be listed and shown, not run or resumed "
                "(to work one, make the file and its directory writable)"
            )
        path = lock_path(self._path, run_id)
        try:
            refuse_hard_links(self._path)
            lock = RunLock.acquire(path)
        except OSError as exc:
            raise JournalError(
                f"journal {self._location}: cannot lock run {run_id!r} ({path}: {exc})"
            ) from exc
        if lock is not None:
            self._locks.append(lock)
        return lock is not None

    def _close_store(self) -> None:
        self._conn.close()
        self._reader.close()
        for lock in self._locks:
            lock.release()

    def _driver_error(self) -> type[Exception]:
        return sqlite3.DatabaseError

    def _commit_batch(self, records: Sequence[Record], durable: bool) -> None:
        full = durable and (self._always_full or not self._simulated)
        self._set_synchronous("FULL" if full else "NORMAL")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            starts = [(r.run_id, r.ts) for r in records if r.seq == 1]
            if starts:
                conn.executemany("INSERT OR IGNORE INTO runs (run_id, started) VALUES (?, ?)", starts)
            _insert_events(conn, records)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _set_synchronous(self, level: str) -> None:
        if level != self._synchronous:
            self._conn.execute(f"PRAGMA synchronous={level}")
            self._synchronous = level
