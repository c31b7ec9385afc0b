"""Batched commits of journal records, off or on the event loop.

Two writers share one contract: `write(records, durable, wait)` returns once the records (and all before them)
are committed when `wait` is true, or merely queued otherwise; a batch holding any `durable` record is committed
with a synchronous (fsync'd) write.

- `ThreadedWriter` commits on a dedicated thread, draining everything queued into one transaction: under a
  real-time loop a commit never stalls the loop, and concurrent emitters share one fsync (group commit).
- `InlineWriter` commits on the caller's thread. It exists for `VirtualTimeLoop` runs: there, awaiting another
  thread would let virtual time jump to the next timer while the write is in flight, making a run's outcome
  depend on disk speed. Records are buffered until one must be waited for (or `flush`). With `lazy=True` even
  those wait for the batch to fill or for `flush`: for a simulated broker that lives and dies with this process,
  where no crash can leave an order outside the process that the journal does not know.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import structlog

from repeg.errors import JournalError

log = structlog.get_logger(__name__)

#: Upper bound of records buffered or drained into one transaction.
MAX_BATCH = 1024


class Record(NamedTuple):
    run_id: str
    seq: int
    leg: int | None
    ts: str
    correlation_id: str
    kind: str
    payload: str


CommitBatch = Callable[[Sequence[Record], bool], None]
"""Writes records in one transaction; `durable=True` asks for a synchronous (fsync'd) commit."""


class Writer(Protocol):
    async def write(self, records: Sequence[Record], durable: bool, wait: bool) -> None: ...

    async def flush(self) -> None:
        """Return once everything written so far is committed."""
        ...

    def close(self) -> None: ...


class InlineWriter:
    """Commits on the caller's thread; the first commit error poisons the writer, as `ThreadedWriter`'s does: the
    failed batch is gone, and committing what follows it would leave a hole in the run that reads as whole."""

    def __init__(self, commit: CommitBatch, *, lazy: bool = False) -> None:
        self._commit = commit
        self._lazy = lazy
        self._pending: list[Record] = []
        self._pending_durable = False
        self._error: Exception | None = None

    async def write(self, records: Sequence[Record], durable: bool, wait: bool) -> None:
        _raise_if_failed(self._error)
        self._pending.extend(records)
        self._pending_durable = self._pending_durable or durable
        if (wait and not self._lazy) or len(self._pending) >= MAX_BATCH:
            self._drain()

    async def flush(self) -> None:
        self._drain()

    def _drain(self) -> None:
        _raise_if_failed(self._error)
        if self._pending:
            batch, durable = self._pending, self._pending_durable
            self._pending, self._pending_durable = [], False
            try:
                self._commit(batch, durable)
            except Exception as exc:
                self._error = exc
                raise JournalError(f"journal write failed: {exc}") from exc

    def close(self) -> None:
        """Commit what is buffered; raises the writer's error if one occurred."""
        self._drain()


def _raise_if_failed(error: BaseException | None) -> None:
    if error is not None:
        raise JournalError(f"journal writer failed earlier: {error}") from error


class _Item(NamedTuple):
    records: Sequence[Record]
    durable: bool
    done: Callable[[BaseException | None], None] | None


class ThreadedWriter:
    """One writer thread; the first commit error poisons the writer (every later write raises it)."""

    def __init__(self, commit: CommitBatch, name: str) -> None:
        self._commit = commit
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def write(self, records: Sequence[Record], durable: bool, wait: bool) -> None:
        self._raise_if_failed()
        if not wait:
            self._queue.put(_Item(records, durable, None))
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def done(error: BaseException | None) -> None:
            # A loop closed meanwhile (Ctrl-C: its run cancelled the waiting task) has nobody left to answer; raising
            # here would end the writer thread and leave whatever is queued after this write uncommitted. A failed
            # commit is not lost with it: it poisons the writer, so the next write and `close()` raise it.
            try:
                loop.call_soon_threadsafe(_settle, future, error)
            except RuntimeError:
                if not loop.is_closed():
                    raise
                log.debug(
                    "journal_waiter_gone",
                    writer=self._thread.name,
                    records=len(records),
                    commit_error=None if error is None else str(error),
                )

        self._queue.put(_Item(records, durable, done))
        await future

    async def flush(self) -> None:
        await self.write((), False, True)

    def _raise_if_failed(self) -> None:
        _raise_if_failed(self._error)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = self._drain_into(batch)
            self._commit_items(batch)
            if stop:
                return

    def _drain_into(self, batch: list[_Item]) -> bool:
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                return True
            batch.append(item)
        return False

    def _commit_items(self, batch: list[_Item]) -> None:
        error: BaseException | None = self._error
        if error is None:
            records = [record for item in batch for record in item.records]
            try:
                self._commit(records, any(item.durable for item in batch))
            except Exception as exc:  # handed to every waiter and to all later writes
                error = self._error = exc
        for item in batch:
            if item.done is not None:
                item.done(error)

    def close(self) -> None:
        """Commit what is queued and stop the thread; raises the writer's error if one occurred."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise_if_failed()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(JournalError(f"journal write failed: {error}"))
