"""SqliteJournal: WAL, append-only storage, sequence numbers, durability of intents, run summaries."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from journal_support import accepted, fill, intent, leg_planned, run_ended, run_started

from repeg.domain.events import QuoteFileSource, RunEvent, RunStarted, SyntheticSource
from repeg.domain.run import fold_run
from repeg.engine.clock import run_virtual
from repeg.errors import ConfigError, JournalError, RunNotFoundError
from repeg.journal.base import UNFINISHED
from repeg.journal.lock import lock_path
from repeg.journal.sqlite import SqliteJournal


async def _write(journal: SqliteJournal, events: list[RunEvent]) -> None:
    for event in events:
        await journal.emit(event)
    await journal.flush()


def _one_run() -> list[RunEvent]:
    return [run_started(), leg_planned(), intent(), accepted(), fill(), run_ended()]


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


async def test_events_read_back_equal_and_in_order(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    await _write(journal, _one_run())
    assert journal.events("r1") == _one_run()
    journal.close()


async def test_each_row_carries_sequence_run_leg_ts_correlation_and_kind(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    await _write(journal, _one_run())
    journal.close()
    rows = (
        _raw(path)
        .execute("SELECT seq, run_id, leg, ts, correlation_id, kind FROM events ORDER BY seq")
        .fetchall()
    )
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[2] == (3, "r1", 0, "2026-01-02T14:30:02+00:00", "r1-L0", "order_intent")


async def test_journal_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    assert _raw(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    "statement", ["UPDATE events SET kind = 'x'", "DELETE FROM events", "DELETE FROM runs"]
)
async def test_stored_rows_cannot_be_changed(tmp_path: Path, statement: str) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    await _write(journal, _one_run())
    journal.close()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        _raw(path).execute(statement)


async def test_sequence_continues_when_a_run_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first = SqliteJournal(path)
    await _write(first, [run_started(), leg_planned()])
    first.close()
    second = SqliteJournal(path)
    await _write(second, [intent()])
    second.close()
    seqs = _raw(path).execute("SELECT seq FROM events ORDER BY seq").fetchall()
    assert seqs == [(1,), (2,), (3,)]


async def test_durable_event_is_visible_to_another_reader_when_emit_returns(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path, threaded=True)
    await journal.emit(run_started())
    await journal.emit(intent())
    kinds = _raw(path).execute("SELECT kind FROM events ORDER BY seq").fetchall()
    assert kinds == [("run_started",), ("order_intent",)]
    journal.close()


async def test_a_durable_event_commits_the_updates_queued_before_it(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path, threaded=True)
    for event in [run_started(), leg_planned(), fill()]:
        await journal.emit(event)
    await journal.emit(intent(attempt=1))
    count = _raw(path).execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert count == 4
    journal.close()


def _counts_while_emitting(journal: SqliteJournal, path: Path) -> list[int]:
    counts: list[int] = []

    async def main() -> None:
        await journal.emit(run_started())
        await journal.emit(leg_planned())
        counts.append(_raw(path).execute("SELECT COUNT(*) FROM events").fetchone()[0])
        await journal.emit(intent())
        counts.append(_raw(path).execute("SELECT COUNT(*) FROM events").fetchone()[0])

    run_virtual(main)
    journal.close()
    return counts


def test_in_strict_simulation_an_intent_commits_what_came_before_it(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    assert _counts_while_emitting(SqliteJournal(path, durability="full"), path) == [1, 3]


def test_against_the_in_process_simulator_events_are_group_committed(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    assert _counts_while_emitting(journal, path) == [0, 0]
    assert len(SqliteJournal(path).events("r1")) == 3


def test_close_commits_buffered_events(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    run_virtual(lambda: _emit_all(journal, [run_started(), leg_planned(), fill()]))
    journal.close()
    assert len(SqliteJournal(path).events("r1")) == 3


async def _emit_all(journal: SqliteJournal, events: list[RunEvent]) -> None:
    for event in events:
        await journal.emit(event)


async def test_emit_after_close_is_refused(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        await journal.emit(run_started())


async def test_concurrent_emitters_share_group_commits_without_losing_events(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db", threaded=True)
    await journal.emit(run_started())
    await asyncio.gather(*(journal.emit(intent(attempt=n)) for n in range(50)))
    events = journal.events("r1")
    journal.close()
    assert sorted(e.attempt for e in events if e.kind == "order_intent") == list(range(50))


async def test_unknown_run_is_reported_as_not_found(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    with pytest.raises(RunNotFoundError, match="'nope'"):
        journal.events("nope")
    journal.close()


async def test_opening_a_missing_journal_for_reading_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal at"):
        SqliteJournal(tmp_path / "absent.db", create=False)


async def test_runs_summarise_plan_broker_status_legs_and_traded_notional(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    await _write(journal, [*_one_run(), run_started("r2"), leg_planned("r2", 0), leg_planned("r2", 1)])
    first, second = journal.runs()
    journal.close()
    assert (first.run_id, first.plan_file, first.broker, first.status, first.legs) == (
        "r1",
        "plan.csv",
        "simulator",
        "completed",
        1,
    )
    assert first.notional == Decimal("400.40")
    assert (second.run_id, second.status, second.legs, second.notional) == ("r2", UNFINISHED, 2, Decimal(0))


async def test_two_journals_writing_the_same_run_collide_instead_of_interleaving(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first, second = SqliteJournal(path), SqliteJournal(path)
    await first.emit(run_started())
    await second.emit(intent())
    with pytest.raises(JournalError, match="UNIQUE"):
        await first.emit(intent())
    second.close()
    with pytest.raises(JournalError):
        first.close()


def _append_unreadable_event(path: Path) -> None:
    raw = _raw(path)
    raw.execute(
        "INSERT INTO events VALUES ('r1', 7, 0, '2026-01-02T14:30:06+00:00', 'r1', 'order_updated', ?)",
        ('{"kind":"order_upd',),
    )
    raw.commit()
    raw.close()


async def test_an_unreadable_event_is_reported_with_the_journal_run_and_sequence(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await _write_and_close(path)
    _append_unreadable_event(path)
    journal = SqliteJournal(path, create=False)
    with pytest.raises(JournalError, match=rf"journal {path}: event 7 of run 'r1' cannot be read"):
        journal.events("r1")
    journal.close()


async def test_an_unreadable_event_fails_the_run_list_with_the_journal_and_run(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await _write_and_close(path)
    _append_unreadable_event(path)
    journal = SqliteJournal(path, create=False)
    with pytest.raises(JournalError, match=rf"journal {path}: an event of run 'r1' cannot be read"):
        journal.runs()
    journal.close()


async def _write_and_close(path: Path) -> None:
    journal = SqliteJournal(path)
    await _write(journal, _one_run())
    journal.close()


@pytest.mark.parametrize("content", [b"x", b"\n", b"my notes\n"])
def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path: Path, content: bytes) -> None:
    # SQLite took a 1-byte file for an empty database and turned it into a journal: the user's file was lost.
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as refused:
        SqliteJournal(path)
    assert (refused.value.key, refused.value.value) == ("--journal", str(path))
    assert refused.value.reason == "not a SQLite database, so not a journal (left as it is)"
    assert path.read_bytes() == content


async def test_a_journal_whose_header_is_damaged_is_a_damaged_journal_not_bad_input(tmp_path: Path) -> None:
    # e1de1b5 made every file without SQLite's 16-byte magic bad input (exit 2, "not a SQLite database, so not a
    # journal"): a journal whose first bytes were overwritten (the rest of SQLite's header, and every run, still
    # there) was reported as a wrong path, hiding the damage. It is a journal that failed (exit 4), left as it is.
    path = tmp_path / "j.db"
    await _write_and_close(path)
    damaged = b"\0" * 16 + path.read_bytes()[16:]
    path.write_bytes(damaged)
    with pytest.raises(JournalError, match=r"its SQLite header is damaged \(left as it is"):
        SqliteJournal(path)
    assert path.read_bytes() == damaged


def test_an_empty_file_becomes_a_journal(tmp_path: Path) -> None:
    # SQLite reads a 0-byte file as an empty database: nothing of the user's is lost.
    path = tmp_path / "j.db"
    path.touch()
    SqliteJournal(path).close()
    assert path.read_bytes().startswith(b"SQLite format 3\x00")


# --- the market data source of a run (RunStarted.market) -------------------------------------------------

#: A run_started payload exactly as repeg wrote it before runs recorded their market data source.
OLD_RUN_STARTED = (
    '{"run_id":"r1","ts":"2026-01-02T14:30:00Z","correlation_id":"r1","leg_index":null,"kind":"run_started",'
    '"plan":{"source":"plan.csv","kind":"trades","trades":[{"symbol":"AAA","side":"buy","qty":"100",'
    '"notional":null}],"weights":[]},"config":{"fill_wait_seconds":"10"},"broker":"simulator",'
    '"code_version":"0.1.0"}'
)
QUOTE_FILE = QuoteFileSource(path="/data/q.csv.gz", size_bytes=1234, sha256="ab" * 32)
SYNTHETIC = SyntheticSource(
    seed=7, symbols=("AAA", "BBB"), settings={"duration_seconds": "3600.0", "symbols": "{}"}
)


@pytest.mark.parametrize("source", [QUOTE_FILE, SYNTHETIC], ids=["quote_file", "synthetic"])
async def test_a_run_started_with_its_market_source_round_trips_through_sqlite(
    tmp_path: Path, source: QuoteFileSource | SyntheticSource
) -> None:
    started = run_started().model_copy(update={"market": source})
    journal = SqliteJournal(tmp_path / "j.db")
    await _write(journal, [started, *_one_run()[1:]])
    journal.close()
    reopened = SqliteJournal(tmp_path / "j.db", create=False)
    read = reopened.events("r1")[0]
    reopened.close()
    assert read == started
    assert isinstance(read, RunStarted)
    assert read.market == source


async def test_a_run_started_without_a_source_is_stored_exactly_as_before(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await _write_and_close(path)
    (payload,) = _raw(path).execute("SELECT payload FROM events WHERE seq = 1").fetchone()
    assert payload == OLD_RUN_STARTED  # no "market": null, which a repeg that predates it would refuse


async def test_an_old_run_started_without_a_source_still_reads_and_folds(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    raw = _raw(path)
    raw.execute("INSERT INTO runs VALUES ('r1', '2026-01-02T14:30:00+00:00')")
    raw.execute(
        "INSERT INTO events VALUES ('r1', 1, NULL, '2026-01-02T14:30:00+00:00', 'r1', 'run_started', ?)",
        (OLD_RUN_STARTED,),
    )
    raw.commit()
    raw.close()
    journal = SqliteJournal(path, create=False)
    await _write(journal, _one_run()[1:])
    events = journal.events("r1")
    journal.close()
    assert isinstance(events[0], RunStarted)
    assert events[0].market is None
    state = fold_run(events)
    assert state.status == "completed"
    assert state.plan == events[0].plan


# --- a damaged journal file ---------------------------------------------------------------------------------


async def _damage_a_page_of_events(path: Path) -> None:
    """A journal whose file lost one page of its events (a bad sector, a truncated copy), its header intact."""
    journal = SqliteJournal(path)
    await _write(journal, [run_started(), *(leg_planned(index=i) for i in range(300))])
    journal.close()
    raw = _raw(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    data = bytearray(path.read_bytes())
    middle = len(data) * 3 // 4 // 4096 * 4096
    data[middle : middle + 4096] = b"\xff" * 4096
    path.write_bytes(bytes(data))


async def test_a_damaged_journal_fails_reading_a_run_with_a_journal_error(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await _damage_a_page_of_events(path)
    journal = SqliteJournal(path, create=False)
    with pytest.raises(JournalError, match=rf"journal {path}: .*malformed"):
        journal.events("r1")
    journal.close()


async def test_a_damaged_journal_fails_the_run_list_with_a_journal_error(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await _damage_a_page_of_events(path)
    journal = SqliteJournal(path, create=False)
    with pytest.raises(JournalError, match=rf"journal {path}: .*malformed"):
        journal.runs()
    journal.close()


def test_a_commit_the_store_refuses_in_simulation_is_a_journal_error(tmp_path: Path) -> None:
    # Two simulated runs under one new id both start it: the second's first commit collides on (run, seq).
    path = tmp_path / "j.db"
    first, second = SqliteJournal(path), SqliteJournal(path)

    async def main() -> None:
        await first.emit(run_started())
        await second.emit(run_started())
        await first.flush()
        await second.flush()

    with pytest.raises(JournalError, match=rf"journal {path}: .*UNIQUE"):
        run_virtual(main)
    first.close()
    with pytest.raises(JournalError):
        second.close()


async def test_a_run_ended_without_orders_then_started_afresh_is_listed_as_the_restart_stands(
    tmp_path: Path,
) -> None:
    # A run that ended sending nothing (every trade skipped, say) may be started afresh under its id; killed
    # with its orders out, `repeg runs` listed it under the first start's end, not as the unfinished run that
    # `show` and `resume` see, and counted the legs of both starts.
    journal = SqliteJournal(tmp_path / "j.db")
    first = [run_started(), leg_planned(index=0), leg_planned(index=1), run_ended(status="failed")]
    again = [run_started(), leg_planned(index=0), intent(), accepted()]
    await _write(journal, [*first, *again])
    (summary,) = journal.runs()
    events = journal.events("r1")
    journal.close()
    assert fold_run(events).status is None
    assert (summary.status, summary.legs) == (UNFINISHED, 1)


# --- one process works a run at a time ----------------------------------------------------------------------


def test_a_run_claimed_through_one_journal_is_refused_to_another_until_it_closes(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first, second = SqliteJournal(path), SqliteJournal(path)
    first.claim("r1")
    first.claim("r1")  # the holder may claim again
    with pytest.raises(
        JournalError, match=rf"run r1 is being worked by another repeg process \(journal {path}\)"
    ):
        second.claim("r1")
    second.claim("r2")  # another run of the same journal is free
    first.close()
    second.claim("r1")
    second.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".lock") == []


def test_a_run_claimed_through_a_symlink_to_the_journal_is_refused_through_the_journal_itself(
    tmp_path: Path,
) -> None:
    # `repeg run --journal link.db` still working the run while `repeg resume --journal real.db` starts: one file,
    # so one lock, whatever path names it.
    real = tmp_path / "data" / "j.db"
    real.parent.mkdir()
    link = tmp_path / "link.db"
    first = SqliteJournal(real)
    link.symlink_to(real)
    second = SqliteJournal(link)
    first.claim("r1")
    try:
        with pytest.raises(JournalError, match="being worked by another repeg process"):
            second.claim("r1")
    finally:
        first.close()
        second.close()


def _read_only(path: Path, monkeypatch: pytest.MonkeyPatch) -> SqliteJournal:
    """The journal at `path` (created), opened as `repeg show` opens an archived one SQLite cannot write."""
    SqliteJournal(path).close()

    def cannot_write(at: Path) -> sqlite3.Connection:
        raise JournalError(f"cannot open journal {at}: attempt to write a readonly database")

    monkeypatch.setattr("repeg.journal.sqlite._connect", cannot_write)
    return SqliteJournal(path, create=False)


async def test_a_read_only_journal_its_owner_writes_meanwhile_is_refused_not_read_garbled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A journal read as immutable (archived: SQLite cannot write it here) takes no lock, so its owner's run, which
    # can write it, checkpoints pages into the file under the read: a query across the checkpoint returned 5,000
    # rows of one run out of order (duplicates and gaps), or "database disk image is malformed". Read silently.
    path = tmp_path / "j.db"
    journal = _read_only(path, monkeypatch)
    try:
        assert journal.runs() == []
        raw = sqlite3.connect(path, isolation_level=None)  # the owner, who may write it, starts a run
        try:
            raw.execute("INSERT INTO runs (run_id, started) VALUES ('r1', '2026-01-02T14:30:00+00:00')")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
        with pytest.raises(JournalError, match=r"changed while it was read .*: read it again"):
            journal.runs()
    finally:
        journal.close()


def test_a_journal_named_by_a_symbolic_link_with_a_write_ahead_log_left_is_not_read_as_an_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite keeps the write-ahead log beside the file a symbolic link names; c813b216 looked for it beside the
    # link, found none, and read the journal as immutable: `repeg show --journal link.db` silently left out the
    # events committed to the log and not yet checkpointed (a refusal, as through the file's own name, is due).
    real = tmp_path / "archive" / "j.db"
    real.parent.mkdir()
    SqliteJournal(real).close()
    link = tmp_path / "link.db"
    link.symlink_to(real)
    holder = sqlite3.connect(real)  # a run's commits still in the log
    try:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("CREATE TABLE held (x INTEGER)")
        holder.commit()
        assert real.with_name("j.db-wal").stat().st_size > 0

        def cannot_write(at: Path) -> sqlite3.Connection:
            raise JournalError(f"cannot open journal {at}: attempt to write a readonly database")

        monkeypatch.setattr("repeg.journal.sqlite._connect", cannot_write)
        for name in (real, link):
            with pytest.raises(JournalError, match="attempt to write a readonly database"):
                SqliteJournal(name, create=False)
    finally:
        holder.close()


def test_a_journal_opened_read_only_refuses_a_claim_though_the_runs_lock_file_was_left_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An archived journal (SQLite cannot write it: `_open` reads it as immutable) beside the lock file a killed run
    # left (`flock` is dropped by the kernel, the file stays): the lock was taken, and a resume reconciled with the
    # broker, then failed its first write. A guard of d74051c3, whose own test's read-only directory refused the
    # lock file's creation already.
    path = tmp_path / "j.db"
    lock_path(path, "r1").touch()
    journal = _read_only(path, monkeypatch)
    try:
        with pytest.raises(
            JournalError, match=r"is read-only: its runs can be listed and shown, not run or resumed"
        ):
            journal.claim("r1")
        assert journal.runs() == []
    finally:
        journal.close()


def test_the_refusal_to_work_a_run_of_a_read_only_journal_says_what_lets_it_be_worked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It said only that runs could be listed and shown: not that the file and its directory must be writable.
    journal = _read_only(tmp_path / "j.db", monkeypatch)
    try:
        with pytest.raises(JournalError, match=r"\(to work one, make the file and its directory writable\)$"):
            journal.claim("r1")
    finally:
        journal.close()


def test_a_run_of_a_journal_with_a_second_hard_link_is_refused_through_either_name(tmp_path: Path) -> None:
    # Two names of one file (`ln repeg.db other.db`) took two run locks, so `run --journal other.db` in one process
    # and `resume --journal repeg.db` in another worked one run at once; SQLite keeps a write-ahead log beside each
    # name too. (One process opening both names meets SQLite's own "disk I/O error": each name is opened alone.)
    real = tmp_path / "j.db"
    SqliteJournal(real).close()
    other = tmp_path / "other.db"
    os.link(real, other)
    for path in (real, other):
        journal = SqliteJournal(path)
        try:
            with pytest.raises(
                ConfigError, match=r"config --journal=.*: the journal file has 2 names \(hard links\)"
            ):
                journal.claim("r1")
        finally:
            journal.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".lock") == []


def _hard_link_refusal(real: Path, named: Path) -> str:
    """The refusal to claim a run of the journal `real`, opened by the name `named`, once it has a second name."""
    SqliteJournal(real).close()
    os.link(real, real.with_name("backup.db"))
    journal = SqliteJournal(named)
    try:
        with pytest.raises(ConfigError) as refused:
            journal.claim("r1")
    finally:
        journal.close()
    return str(refused.value)


def _find_command(refusal: str) -> list[str]:
    """The arguments of the `find` command the refusal prints, as a POSIX shell splits it."""
    hint = re.search(r"`(find .*)` lists them", refusal)
    assert hint is not None
    return shlex.split(hint[1])


def test_the_refusal_of_a_hard_linked_journal_says_to_remove_its_other_names_and_how_to_find_them(
    tmp_path: Path,
) -> None:
    # It said "use it under one name only": the file keeps its other name whichever one is given, so doing so was
    # refused again. What lifts it: removing the other names (`find -samefile` lists them), the one worked kept.
    # Named through a symbolic link, the command names the file (the link's own inode has no other name).
    real = tmp_path / "j.db"
    link = tmp_path / "link.db"
    link.symlink_to(real)
    refusal = _hard_link_refusal(real, link)
    assert "remove its other names, keeping the one its runs were worked under" in refusal
    program, top_name, xdev, samefile, named = _find_command(refusal)
    assert (program, xdev, samefile, named) == ("find", "-xdev", "-samefile", str(real.resolve()))
    # The top of the file system, where its other names are: on the file's device, its parent not.
    top = Path(top_name)
    assert top in real.resolve().parents
    assert top.stat().st_dev == real.stat().st_dev
    assert top == top.parent or top.parent.stat().st_dev != real.stat().st_dev


def test_the_find_command_of_the_hard_link_refusal_is_quoted_for_the_shell(tmp_path: Path) -> None:
    # The journal's path went into the command as it is: in a directory named "my runs", or a file "bob's.db", the
    # command copied into a shell searched "/tmp/.../my" and "runs/..." or waited on an unclosed quote.
    folder = tmp_path / "my runs"
    folder.mkdir()
    real = folder / "bob's j.db"
    argv = _find_command(_hard_link_refusal(real, real))
    assert argv[0::2] == ["find", "-xdev", str(real.resolve())]
    assert argv[1] in [str(p) for p in real.resolve().parents]
    assert argv[3] == "-samefile"


async def test_a_run_whose_start_time_cannot_be_read_fails_the_run_list_with_a_journal_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    await _write_and_close(path)
    raw = _raw(path)
    raw.execute("INSERT INTO runs VALUES ('r2', 'yesterday')")
    raw.commit()
    raw.close()
    journal = SqliteJournal(path, create=False)
    with pytest.raises(
        JournalError, match=rf"journal {path}: run 'r2' has an unreadable start time 'yesterday'"
    ):
        journal.runs()
    journal.close()


async def test_a_plan_journaled_with_symbols_in_another_case_reads_back_as_written(tmp_path: Path) -> None:
    # Before 1524407 a Plan built in Python kept its symbols as written: a weights plan naming "aapl" and "AAPL" ran
    # and was journaled so. Read back through today's Plan (upper case, each symbol once) it failed validation, and
    # the run list and `repeg show` of the whole journal ended in a JournalError. The journal reads what it recorded.
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    await _write(journal, [run_started(), run_ended()])
    journal.close()
    document = json.loads(run_started("old").model_dump_json())
    weights = [{"symbol": "aapl", "weight": "0.3"}, {"symbol": "AAPL", "weight": "0.2"}]
    document["plan"] = {"source": "<api>", "kind": "weights", "trades": [], "weights": weights}
    raw = _raw(path)
    raw.execute("INSERT INTO runs VALUES ('old', '2026-01-02T14:30:00+00:00')")
    raw.execute(
        "INSERT INTO events VALUES ('old', 1, NULL, '2026-01-02T14:30:00+00:00', 'old', 'run_started', ?)",
        (json.dumps(document),),
    )
    raw.commit()
    raw.close()
    journal = SqliteJournal(path)
    assert sorted(summary.run_id for summary in journal.runs()) == ["old", "r1"]
    (started,) = journal.events("old")
    assert isinstance(started, RunStarted)
    assert [target.symbol for target in started.plan.weights] == ["aapl", "AAPL"]
    journal.close()
