"""Guards (tests only, no defect behind them): the rows `RecordEncoder` builds are exactly the plain conversion of
each event (its UTC ISO timestamp, its model JSON), whatever timestamps it meets and in whatever order, and SQLite
stores them as they are, in order, however its batches are cut into statements (each within the 999 parameters
SQLite took before 3.32): the cuts made to the journal's per-event cost never change a byte of what it stores."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from journal_support import T0, accepted, fill, intent, leg_planned, run_ended, run_started

from repeg.domain.events import RunEvent
from repeg.engine.clock import run_virtual
from repeg.journal.sqlite import SqliteJournal
from repeg.journal.store import RecordEncoder
from repeg.journal.writer import Record


def _plain(event: RunEvent, seq: int) -> Record:
    """The conversion spelled out: what every journal stored before the encoder kept anything."""
    return Record(
        run_id=event.run_id,
        seq=seq,
        leg=event.leg_index,
        ts=event.ts.astimezone(UTC).isoformat(),
        correlation_id=event.correlation_id,
        kind=event.kind,
        payload=event.model_dump_json(),
    )


def _stamped(event: RunEvent, ts: datetime) -> RunEvent:
    return event.model_copy(update={"ts": ts})


def _timestamps() -> list[datetime]:
    """One instant as one object (the clock's), as equal objects, in other zones, naive, and to the microsecond."""
    same = T0 + timedelta(seconds=7)
    return [
        same,
        same,
        T0 + timedelta(seconds=7),
        same.astimezone(timezone(timedelta(hours=-5))),
        same,
        same.astimezone(ZoneInfo("America/New_York")),
        same.replace(tzinfo=None),
        same,
        T0 + timedelta(seconds=8, microseconds=250),
        same,
        datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),
        datetime(2026, 11, 1, 1, 30, fold=0, tzinfo=ZoneInfo("America/New_York")),
    ]


def test_rows_equal_the_plain_conversion_for_every_kind_of_timestamp() -> None:
    kinds = [run_started(), leg_planned(), intent(), accepted(), fill(), run_ended()]
    events = [_stamped(kinds[n % len(kinds)], ts) for n, ts in enumerate(_timestamps())]
    encoder = RecordEncoder()
    assert [encoder.record(event, seq) for seq, event in enumerate(events, 1)] == [
        _plain(event, seq) for seq, event in enumerate(events, 1)
    ]


def test_a_reused_timestamp_reads_the_same_after_others_came_between() -> None:
    encoder = RecordEncoder()
    first, other = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    texts = [encoder.record(_stamped(fill(), ts), 1).ts for ts in (first, other, first, first)]
    assert texts == [
        "2026-01-02T14:30:01+00:00",
        "2026-01-02T14:30:02+00:00",
        "2026-01-02T14:30:01+00:00",
        "2026-01-02T14:30:01+00:00",
    ]


def test_a_timestamp_made_where_a_freed_one_lay_reads_its_own_value() -> None:
    """The encoder holds the object it compares against, so no other datetime can take its address while it is
    cached; one keyed on `id()` alone would read a freed timestamp's text for a datetime CPython then builds at the
    same address (it reuses a freed block at once)."""
    encoder = RecordEncoder()
    freed = _stamped(fill(), T0 + timedelta(seconds=1))
    address = id(freed.ts)
    encoder.record(freed, 1)
    del freed
    built: list[datetime] = []
    while len(built) < 1000 and (not built or id(built[-1]) != address):
        built.append(T0 + timedelta(hours=len(built) + 1))
    assert encoder.record(_stamped(fill(), built[-1]), 2).ts == built[-1].isoformat()


def test_a_statement_binds_no_more_than_the_999_parameters_sqlite_took_before_3_32(tmp_path: Path) -> None:
    """A group commit of 300 updates, on a connection held to SQLite's old limit of 999 bound parameters."""
    events = [run_started(), *(_stamped(fill(), T0 + timedelta(seconds=n)) for n in range(300))]
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    journal._conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    async def emit_all() -> None:
        for event in events:
            await journal.emit(event)

    run_virtual(emit_all)
    journal.close()
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("SELECT COUNT(*) FROM events").fetchone() == (len(events),)


@pytest.mark.parametrize("updates", [1, 141, 142, 143, 300])
def test_a_batch_is_stored_row_for_row_in_order_however_many_statements_it_takes(
    tmp_path: Path, updates: int
) -> None:
    """One group commit of `updates` + 1 events (statements hold up to 142 rows)."""
    events = [run_started(), *(_stamped(fill(), T0 + timedelta(seconds=n // 3)) for n in range(updates))]
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)

    async def emit_all() -> None:
        for event in events:
            await journal.emit(event)

    run_virtual(emit_all)
    journal.close()
    with closing(sqlite3.connect(path)) as raw:
        rows = raw.execute("SELECT rowid, * FROM events ORDER BY rowid").fetchall()
    assert rows == [(seq, *_plain(event, seq)) for seq, event in enumerate(events, 1)]
