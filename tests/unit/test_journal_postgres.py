"""PostgresJournal: the journal contract on PostgreSQL. Runs when a server is reachable, skips otherwise.

Set `REPEG_TEST_POSTGRES_DSN` (e.g. postgresql://postgres@127.0.0.1:5432/postgres); without it a server on
127.0.0.1:5432 is tried. Each test works in a fresh schema of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from journal_support import accepted, fill, intent, leg_planned, run_ended, run_started
from postgres_support import fresh_schema, reading_role

from repeg.engine.clock import run_virtual
from repeg.errors import JournalError, RunNotFoundError
from repeg.journal.factory import open_journal
from repeg.journal.postgres import PostgresJournal, safe_dsn
from repeg.journal.schema import SCHEMA_VERSION

psycopg = pytest.importorskip("psycopg")

DSN = os.environ.get("REPEG_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _server_reachable() -> bool:
    try:
        psycopg.connect(DSN, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


pytestmark = pytest.mark.skipif(not _server_reachable(), reason=f"no PostgreSQL at {safe_dsn(DSN)}")


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_schema(DSN) as schema_dsn:
        yield schema_dsn


async def test_events_read_back_equal_and_in_order(dsn: str) -> None:
    journal = open_journal(dsn)
    assert isinstance(journal, PostgresJournal)
    events = [run_started(), leg_planned(), intent(), accepted(), fill(), run_ended()]
    for event in events:
        await journal.emit(event)
    await journal.flush()
    assert journal.events("r1") == events
    assert journal.schema_version == SCHEMA_VERSION
    journal.close()


async def test_runs_summary_matches_sqlite_semantics(dsn: str) -> None:
    journal = open_journal(dsn)
    for event in [run_started(), leg_planned(), intent(), fill(), run_ended()]:
        await journal.emit(event)
    await journal.flush()
    (summary,) = journal.runs()
    journal.close()
    assert (summary.run_id, summary.status, summary.legs, summary.notional) == (
        "r1",
        "completed",
        1,
        Decimal("400.40"),
    )


async def test_stored_rows_cannot_be_changed(dsn: str) -> None:
    journal = open_journal(dsn)
    await journal.emit(run_started())
    journal.close()
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.Error, match="append-only"):
        conn.execute("DELETE FROM events")


async def test_sequence_continues_when_reopened(dsn: str) -> None:
    first = open_journal(dsn)
    await first.emit(run_started())
    first.close()
    second = open_journal(dsn)
    await second.emit(intent())
    second.close()
    third = open_journal(dsn)
    assert [e.kind for e in third.events("r1")] == ["run_started", "order_intent"]
    with pytest.raises(RunNotFoundError):
        third.events("other")
    third.close()


def test_a_database_from_a_newer_repeg_is_refused(dsn: str) -> None:
    open_journal(dsn).close()
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s, now())", (SCHEMA_VERSION + 1,))
    with pytest.raises(JournalError, match="newer than"):
        open_journal(dsn)


def test_a_commit_the_database_refuses_in_simulation_is_a_journal_error(dsn: str) -> None:
    # As on SQLite: two simulated runs under one new id both start it, the second's commit collides on (run, seq).
    first, second = PostgresJournal(dsn), PostgresJournal(dsn)

    async def main() -> None:
        await first.emit(run_started())
        await second.emit(run_started())
        await first.flush()
        await second.flush()

    with pytest.raises(
        JournalError, match=r"journal postgresql://.*: cannot commit 1 events .*duplicate key"
    ):
        run_virtual(main)
    first.close()
    with pytest.raises(JournalError):
        second.close()


async def test_a_read_over_a_lost_connection_is_a_journal_error(dsn: str) -> None:
    open_journal(dsn).close()
    with reading_role(DSN, dsn) as (role, as_reader):
        journal = PostgresJournal(as_reader)
        sessions = [journal._reader.info.backend_pid, journal._conn.info.backend_pid]
        with psycopg.connect(
            DSN, autocommit=True
        ) as conn:  # the server drops the journal's sessions, lets none in
            conn.execute(f"ALTER ROLE {role} NOLOGIN")
            conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (sessions,))
        with pytest.raises(
            JournalError, match=r"journal postgresql://.*: cannot read the events of run 'r1'"
        ):
            journal.events("r1")
        journal.close()


def test_a_run_claimed_through_one_journal_is_refused_to_another_until_it_closes(dsn: str) -> None:
    first, second = PostgresJournal(dsn), PostgresJournal(dsn)
    first.claim("r1")
    first.claim("r1")
    with pytest.raises(JournalError, match="run r1 is being worked by another repeg process"):
        second.claim("r1")
    second.claim("r2")
    first.close()
    second.claim("r1")
    second.close()


async def test_a_run_stays_claimed_while_its_journal_can_still_write_it(dsn: str) -> None:
    # The claim was held by the reader's session, idle through a whole run: when the server (idle_session_timeout)
    # or a NAT dropped that session alone, the lock went with it while the writer kept committing, so a second
    # process could resume the run being worked.
    first, second = PostgresJournal(dsn), PostgresJournal(dsn)
    first.claim("r1")
    await first.emit(run_started())
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (first._reader.info.backend_pid,))
    await first.emit(intent())
    await first.flush()
    with pytest.raises(JournalError, match="run r1 is being worked by another repeg process"):
        second.claim("r1")
    first.close()
    second.claim("r1")
    second.close()


async def test_a_role_that_may_only_read_the_journal_lists_and_reads_its_runs(dsn: str) -> None:
    # Opening a journal at this repeg's schema version still ran `CREATE TABLE IF NOT EXISTS schema_version`, so a
    # role granted SELECT alone (an analyst, a read replica) could not even `repeg runs`: "cannot bring its schema up
    # to date (permission denied for schema ...)". SQLite reads a journal it cannot write; PostgreSQL now does too.
    journal = open_journal(dsn)
    for event in [run_started(), leg_planned(), intent(), run_ended()]:
        await journal.emit(event)
    journal.close()
    with reading_role(DSN, dsn) as (_, as_reader):
        reader = open_journal(as_reader)
        assert [run.run_id for run in reader.runs()] == ["r1"]
        assert [event.kind for event in reader.events("r1")][-1] == "run_ended"
        reader.close()


class _CommitSetting:
    """The journal's writing session, recording the `synchronous_commit` each batch is inserted under."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self._conn = conn
        self.seen: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)

    def cursor(self) -> psycopg.Cursor[tuple[object, ...]]:
        row = self._conn.execute("SHOW synchronous_commit").fetchone()
        self.seen.append(str(row[0]) if row else "")
        return self._conn.cursor()


async def test_an_intent_is_committed_synchronously_where_the_database_defaults_to_asynchronous_commits(
    dsn: str,
) -> None:
    # A DBA's `synchronous_commit = off` (a common speed setting, per database or role) was inherited by the
    # write-ahead intents: the server answered before its log was flushed, so a server crash could lose an intent
    # whose order had reached the broker.
    journal = PostgresJournal(f"{dsn}%20-csynchronous_commit%3Doff")
    session = _CommitSetting(journal._conn)
    journal._conn = session  # type: ignore[assignment]
    await journal.emit(run_started())
    await journal.emit(intent())
    journal.close()
    assert session.seen == ["on", "on"]


def test_a_run_id_claimed_in_one_journal_leaves_the_same_id_free_in_a_journal_of_another_schema(
    dsn: str,
) -> None:
    # The claim's advisory lock was keyed on the run id alone, and such locks are database-wide: a team's journal
    # in its own schema could not work `--run-id rebalance` while another schema's journal worked its own.
    other_schema = f"repeg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {other_schema}")
    try:
        first, second = PostgresJournal(dsn), PostgresJournal(f"{dsn.rsplit('%3D', 1)[0]}%3D{other_schema}")
        first.claim("r1")
        second.claim("r1")
        first.close()
        second.close()
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {other_schema} CASCADE")


async def test_runs_lists_start_times_in_utc_whatever_the_server_time_zone(dsn: str) -> None:
    # `started` came back in the session's TimeZone (a server in New York listed 09:30-05:00) while SQLite and
    # every event of `show` say UTC.
    journal = open_journal(f"{dsn}%20-ctimezone%3DAmerica/New_York")
    await journal.emit(run_started())
    await journal.flush()
    (summary,) = journal.runs()
    journal.close()
    assert summary.started.isoformat() == "2026-01-02T14:30:00+00:00"
