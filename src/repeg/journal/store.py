"""What every SQL journal shares: sequence numbers, redaction, the writer choice, and reading events back.

Backends (`SqliteJournal`, `PostgresJournal`) supply only their SQL: commit a batch, read payloads, read the
largest sequence number of a run. Sequence numbers are assigned here, per run, continuing from the store's
largest; two processes appending to the same run collide on the (run, seq) primary key instead of interleaving.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from pydantic import ValidationError

from repeg.domain.events import RUN_EVENT_ADAPTER, RunEvent
from repeg.domain.plan import JOURNALED
from repeg.domain.run import RunFolder
from repeg.engine.clock import VirtualTimeLoop
from repeg.errors import IllegalTransitionError, JournalError, RunNotFoundError
from repeg.journal.base import RunSummary, is_barrier, is_durable, redact, summarize
from repeg.journal.writer import InlineWriter, Record, ThreadedWriter, Writer

#: Event kinds a run summary needs (`repeg runs` reads only these).
SUMMARY_KINDS = ("run_started", "run_ended", "leg_planned", "order_accepted", "order_updated")


class RecordEncoder:
    """Turns events into the rows both backends store (one encoder per journal, used on the emitting thread).

    The engine stamps every event of one instant with the same `datetime` object (`Clock.now` keeps its last
    answer), so the text of the last UTC timestamp is kept and reused for that object: a UTC datetime's ISO text
    depends on its value alone, and a `datetime` never changes. Any other timestamp is converted afresh.
    """

    def __init__(self) -> None:
        self._ts: datetime | None = None
        self._ts_text = ""

    def record(self, event: RunEvent, seq: int) -> Record:
        return Record(
            run_id=event.run_id,
            seq=seq,
            leg=event.leg_index,
            ts=self._utc_text(event.ts),
            correlation_id=event.correlation_id,
            kind=event.kind,
            # `model_dump_json()` is this call behind a Python wrapper passing its 15 defaults as keywords.
            payload=event.__pydantic_serializer__.to_json(event).decode(),
        )

    def _utc_text(self, ts: datetime) -> str:
        if ts is self._ts:
            return self._ts_text
        text = ts.astimezone(UTC).isoformat()
        if ts.tzinfo is UTC:
            self._ts, self._ts_text = ts, text
        return text


class SqlJournal(ABC):
    """Base of the SQL journals; see `repeg.journal.base` for the durability contract."""

    def __init__(self, location: str, threaded: bool | None) -> None:
        self._location = location
        self._threaded = threaded
        #: True once the writer runs on a `VirtualTimeLoop`, i.e. against an in-process simulated broker.
        self._simulated = False
        #: Commit each intent before `emit` returns even in simulation (see `repeg.journal.writer`).
        self._strict_in_simulation = False
        self._writer: Writer | None = None
        self._seq: dict[str, int] = {}
        self._encoder = RecordEncoder()
        self._claimed: set[str] = set()
        self._closed = False

    # --- backend --------------------------------------------------------------------------------------

    @abstractmethod
    def _driver_error(self) -> type[Exception]:
        """The driver's own error (a damaged file, a lost connection, a write refused): see `_store_errors`."""

    @abstractmethod
    def _commit_batch(self, records: Sequence[Record], durable: bool) -> None:
        """Commit a non-empty batch in one transaction (durably when `durable`)."""

    @abstractmethod
    def _max_seq(self, run_id: str) -> int: ...

    @abstractmethod
    def has_run(self, run_id: str) -> bool: ...

    @abstractmethod
    def _payloads(self, run_id: str) -> list[str]: ...

    @abstractmethod
    def _summary_rows(self) -> list[tuple[str, datetime, str | None]]:
        """(run id, started, payload or None) for every run and its `SUMMARY_KINDS` events, in run order."""

    @abstractmethod
    def _lock_run(self, run_id: str) -> bool:
        """Take the exclusive lock of `run_id`, held until `_close_store`; False when another holder has it."""

    @abstractmethod
    def _close_store(self) -> None:
        """Release the store, and the locks of the runs claimed."""

    @property
    @abstractmethod
    def schema_version(self) -> int: ...

    # --- the Journal protocol -------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self._location

    async def emit(self, event: RunEvent) -> None:
        if self._closed:
            raise JournalError(f"journal {self._location} is closed")
        stored = redact(event)
        record = self._encoder.record(stored, self._next_seq(stored.run_id))
        await self._writer_for_loop().write((record,), is_durable(stored), is_barrier(stored))

    async def flush(self) -> None:
        if self._writer is not None:
            await self._writer.flush()

    def claim(self, run_id: str) -> None:
        if run_id in self._claimed:
            return
        if not self._lock_run(run_id):
            raise JournalError(
                f"run {run_id} is being worked by another repeg process (journal {self._location}): let it end, "
                "or stop it, before running or resuming it again"
            )
        self._claimed.add(run_id)

    def events(self, run_id: str) -> list[RunEvent]:
        payloads = self._payloads(run_id)
        if not payloads and not self.has_run(run_id):
            raise RunNotFoundError(run_id, self._location)
        # Sequence numbers run 1, 2, ... per run, so an event's position is its sequence number.
        events = [
            self._parse(payload, f"event {seq} of run {run_id!r}") for seq, payload in enumerate(payloads, 1)
        ]
        self._check_fold(run_id, events)
        return events

    def runs(self) -> list[RunSummary]:
        grouped: dict[str, tuple[datetime, list[RunEvent]]] = {}
        for run_id, started, payload in self._summary_rows():
            _, events = grouped.setdefault(run_id, (started, []))
            if payload is not None:
                events.append(self._parse(payload, f"an event of run {run_id!r}"))
        return [summarize(run_id, started, events) for run_id, (started, events) in grouped.items()]

    def close(self) -> None:
        """Commit everything emitted and release the store. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            self._close_store()

    # --- internals ------------------------------------------------------------------------------------

    @contextmanager
    def _store_errors(self, what: str) -> Iterator[None]:
        """A failure of the store itself as a `JournalError` naming the journal, not a driver's traceback."""
        try:
            yield
        except self._driver_error() as exc:
            raise JournalError(f"journal {self._location}: cannot {what} ({exc})") from exc

    def _commit(self, records: Sequence[Record], durable: bool) -> None:
        if not records:
            return
        with self._store_errors(f"commit {len(records)} events"):
            self._commit_batch(records, durable)

    def _parse(self, payload: str, what: str) -> RunEvent:
        """One stored event; a payload this repeg cannot read (damaged, or written by another version) is a
        `JournalError` naming the journal and the event, not a validation traceback."""
        try:
            return RUN_EVENT_ADAPTER.validate_json(payload, context=JOURNALED)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            raise JournalError(f"journal {self._location}: {what} cannot be read ({reason})") from exc

    def _check_fold(self, run_id: str, events: Sequence[RunEvent]) -> None:
        """Every reader folds the events it reads (`show`, `report`, `resume`, `run --run-id`): an event the fold
        refuses (a leg event its state machine does not allow, a leg status this repeg does not know: a damaged or
        hand-edited journal, or one another version wrote) is a `JournalError` naming the journal, the run and the
        event, before anything is written, not a traceback of the fold."""
        folder = RunFolder(run_id)
        for seq, event in enumerate(events, 1):
            try:
                folder.apply(event)
            except (IllegalTransitionError, ValueError) as exc:
                where = f"journal {self._location}: event {seq} ({event.kind}) of run {run_id!r}"
                raise JournalError(f"{where} does not fit the run before it ({exc})") from exc

    def _next_seq(self, run_id: str) -> int:
        if run_id not in self._seq:
            self._seq[run_id] = self._max_seq(run_id)
        self._seq[run_id] += 1
        return self._seq[run_id]

    def _writer_for_loop(self) -> Writer:
        if self._writer is None:
            self._simulated = isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
            threaded = not self._simulated if self._threaded is None else self._threaded
            lazy = self._simulated and not self._strict_in_simulation
            self._writer = (
                ThreadedWriter(self._commit, f"journal-{self._location}")
                if threaded
                else InlineWriter(self._commit, lazy=lazy)
            )
        return self._writer
