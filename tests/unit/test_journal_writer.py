"""The journal writers: what is committed when, and with which synchronous level."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from tests.fakes.log_capture import every_level_captured

from repeg.errors import JournalError
from repeg.journal.writer import InlineWriter, Record, ThreadedWriter


def _record(seq: int) -> Record:
    return Record("r1", seq, 0, "2026-01-02T14:30:00+00:00", "r1", "order_updated", "{}")


class Spy:
    def __init__(self, fail: bool = False) -> None:
        self.commits: list[tuple[list[int], bool]] = []
        self.fail = fail

    def __call__(self, records: Sequence[Record], durable: bool) -> None:
        if self.fail:
            raise RuntimeError("disk full")
        self.commits.append(([r.seq for r in records], durable))


async def test_inline_writer_buffers_until_a_record_must_be_waited_for() -> None:
    spy = Spy()
    writer = InlineWriter(spy)
    await writer.write((_record(1),), False, False)
    await writer.write((_record(2),), True, False)
    assert spy.commits == []
    await writer.write((_record(3),), False, True)
    assert spy.commits == [([1, 2, 3], True)]


async def test_inline_writer_commits_updates_alone_without_fsync() -> None:
    spy = Spy()
    writer = InlineWriter(spy)
    await writer.write((_record(1),), False, False)
    writer.close()
    assert spy.commits == [([1], False)]


async def test_threaded_writer_returns_a_waited_write_only_once_committed() -> None:
    spy = Spy()
    writer = ThreadedWriter(spy, "test")
    await writer.write((_record(1),), True, False)
    await writer.write((_record(2),), False, True)
    committed = [seq for seqs, _ in spy.commits for seq in seqs]
    writer.close()
    assert committed == [1, 2]


async def test_threaded_writer_marks_batches_with_a_durable_record_synchronous() -> None:
    spy = Spy()
    writer = ThreadedWriter(spy, "test")
    await writer.write((_record(1),), True, True)
    await writer.write((_record(2),), False, True)
    writer.close()
    assert spy.commits == [([1], True), ([2], False)]


async def test_a_failed_commit_is_raised_to_the_waiter_and_to_every_later_write() -> None:
    writer = ThreadedWriter(Spy(fail=True), "test")
    with pytest.raises(JournalError, match="disk full"):
        await writer.write((_record(1),), True, True)
    with pytest.raises(JournalError, match="failed earlier"):
        await writer.write((_record(2),), False, False)
    with pytest.raises(JournalError):
        writer.close()


async def test_concurrent_waiters_are_all_released() -> None:
    spy = Spy()
    writer = ThreadedWriter(spy, "test")
    await asyncio.gather(*(writer.write((_record(n),), True, True) for n in range(1, 21)))
    writer.close()
    assert sorted(seq for seqs, _ in spy.commits for seq in seqs) == list(range(1, 21))


class FailsOnce(Spy):
    def __call__(self, records: Sequence[Record], durable: bool) -> None:
        if self.fail:
            self.fail = False
            raise RuntimeError("database is locked")
        super().__call__(records, durable)


async def test_an_inline_writer_refuses_every_write_after_a_failed_commit() -> None:
    # The failed batch is gone: committing what came after it would leave a journal with a hole in the middle
    # of the run (intents and fills missing) that reads as whole, e.g. ending in the run's `run_ended`.
    spy = FailsOnce(fail=True)
    writer = InlineWriter(spy)
    with pytest.raises(JournalError, match="database is locked"):
        await writer.write((_record(1),), True, True)
    with pytest.raises(JournalError, match="failed earlier"):
        await writer.write((_record(2),), True, True)
    with pytest.raises(JournalError):
        writer.close()
    assert spy.commits == []


class GatedSpy(Spy):
    """Commits only once `gate` is set (a slow fsync)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def __call__(self, records: Sequence[Record], durable: bool) -> None:
        self.gate.wait(5)
        super().__call__(records, durable)


def test_a_waiter_whose_loop_closed_before_its_commit_ended_does_not_kill_the_writer() -> None:
    # Ctrl-C: asyncio.run cancels the task waiting on an intent's commit and closes its loop while the writer
    # thread is still committing. What was queued after it must still be committed, and later writes answered.
    spy = GatedSpy()
    writer = ThreadedWriter(spy, "test")

    async def interrupted() -> None:
        task = asyncio.ensure_future(writer.write((_record(1),), True, True))
        await asyncio.sleep(0.01)
        await writer.write((_record(2),), False, False)
        task.cancel()

    asyncio.run(interrupted())  # the loop is closed here, the commit of record 1 still in flight
    spy.gate.set()
    asyncio.run(asyncio.wait_for(writer.write((_record(3),), False, True), 5))
    writer.close()
    assert [seq for seqs, _ in spy.commits for seq in seqs] == [1, 2, 3]


def test_a_waiter_whose_loop_closed_before_its_commit_ended_is_logged_at_debug() -> None:
    # The answer nobody can take any more is dropped, but not silently: a debug line names the writer, the records
    # the waiter waited for and the commit's outcome.
    spy = GatedSpy()
    writer = ThreadedWriter(spy, "journal-test")

    async def interrupted() -> None:
        task = asyncio.ensure_future(writer.write((_record(1), _record(2)), True, True))
        await asyncio.sleep(0.01)
        task.cancel()

    with every_level_captured() as lines:
        asyncio.run(interrupted())
        spy.gate.set()
        writer.close()
    gone = [line for line in lines if line["event"] == "journal_waiter_gone"]
    assert gone == [
        {
            "event": "journal_waiter_gone",
            "log_level": "debug",
            "writer": "journal-test",
            "records": 2,
            "commit_error": None,
        }
    ]
