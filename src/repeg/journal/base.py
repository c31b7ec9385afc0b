"""The `Journal` port: an append-only, durable record of every run event.

A journal is an `EventSink` (the engine emits into it) that can also be read back: the events of one run in
sequence order (for `show` and `resume`) and a one-line summary per run (for `runs`). Nothing is ever updated
in place; a run's state is always a fold over its events (`repeg.domain.run.fold_run`).

Durability contract of `emit` (write-ahead):

- an `OrderIntent` (and the run's start and end) returns only after it, and every event emitted before it, is
  committed with a synchronous write: the broker call it announces happens strictly after;
- the broker's answers (`DURABLE_KINDS`: acknowledgements and refusals) are committed synchronously too, but in
  the next group commit rather than while the engine waits: if the process dies first, resume asks the broker;
- order updates, phase and leg markers are group-committed with them. Nothing the engine decides rests on an
  event that is not followed by a durable intent, so a crash loses only what `resume` re-reads from the broker.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Final, Protocol

from pydantic import BaseModel, ConfigDict

from repeg.domain.events import LegPlanned, OrderAccepted, OrderUpdated, RunEnded, RunEvent, RunStarted
from repeg.domain.order_record import OrderRecord
from repeg.domain.orders import BrokerOrder

#: Event kinds always committed with a synchronous (fsync'd) write.
DURABLE_KINDS: Final[frozenset[str]] = frozenset(
    {"order_intent", "order_accepted", "order_failed", "run_started", "run_ended"}
)
#: Event kinds whose `emit` waits for that commit (write-ahead barriers).
BARRIER_KINDS: Final[frozenset[str]] = frozenset({"order_intent", "run_started", "run_ended"})

#: Run status shown for a run whose journal has no `run_ended` event (crashed or still running).
UNFINISHED: Final = "unfinished"

_SECRET_KEY = re.compile(r"secret|token|passw|credential|api[_-]?key|auth", re.IGNORECASE)
REDACTED: Final = "***redacted***"


class RunSummary(BaseModel):
    """One line of `repeg runs`. `notional` is the notional actually traded (sum of fill qty x price)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    run_id: str
    started: datetime
    plan_file: str
    broker: str
    status: str
    legs: int
    notional: Decimal


class Journal(Protocol):
    """An `EventSink` that persists and reads back run events."""

    @property
    def schema_version(self) -> int:
        """The schema version of the opened store (always `SCHEMA_VERSION` once open)."""
        ...

    @property
    def location(self) -> str:
        """Where the journal lives, safe to print (no password)."""
        ...

    async def emit(self, event: RunEvent) -> None:
        """Append one event (see the module docstring for when it is durable)."""
        ...

    async def flush(self) -> None:
        """Return once every event emitted so far is committed."""
        ...

    def claim(self, run_id: str) -> None:
        """Hold `run_id` until `close`: one process works a run on a broker that outlives it at a time. Raises
        `JournalError` when another process (or another open journal) holds it, `ConfigError` for a SQLite journal file
        with a second name (`repeg.journal.lock.refuse_hard_links`); claiming it again is a no-op."""
        ...

    def has_run(self, run_id: str) -> bool: ...

    def events(self, run_id: str) -> list[RunEvent]:
        """Every event of `run_id` in sequence order; raises `RunNotFoundError` for an unknown run, and
        `JournalError` naming the event for one this repeg cannot read or fold (a damaged journal)."""
        ...

    def runs(self) -> list[RunSummary]:
        """A summary of every run, oldest first."""
        ...

    def close(self) -> None:
        """Commit everything emitted and release the store (blocks until committed). Safe to call twice."""
        ...


def is_durable(event: RunEvent) -> bool:
    return event.kind in DURABLE_KINDS


def is_barrier(event: RunEvent) -> bool:
    return event.kind in BARRIER_KINDS


def redact(event: RunEvent) -> RunEvent:
    """The event as it may be stored: configuration values whose key names a secret are replaced.

    Credentials never belong in a journal that users keep for months and share when asking for help.
    """
    if not isinstance(event, RunStarted):
        return event
    clean = {key: (REDACTED if _SECRET_KEY.search(key) else value) for key, value in event.config.items()}
    if clean == event.config:
        return event
    return event.model_copy(update={"config": clean})


def _reported_order(event: RunEvent) -> BrokerOrder | None:
    if isinstance(event, OrderUpdated):
        return event.update.order
    if isinstance(event, OrderAccepted):
        return event.order
    return None


def traded_notional(events: list[RunEvent]) -> Decimal:
    """Notional traded: each order's reports folded and priced as the leg fold does (`OrderRecord.merge`, so
    duplicated or polled updates never count twice, and `OrderRecord.notional`: the sum of its executions, else its
    cumulative quantity times the broker's average), so `repeg runs` counts what `repeg show` does.
    """
    records: dict[str, OrderRecord] = {}
    for event in events:
        order = _reported_order(event)
        if order is None:
            continue
        fill = event.update.fill if isinstance(event, OrderUpdated) else None
        record = records.get(order.client_order_id) or OrderRecord(
            client_order_id=order.client_order_id, attempt=-1
        )
        records[order.client_order_id] = record.merge(order, fill)
    return sum((n for n in (r.notional for r in records.values()) if n is not None), Decimal(0))


def summarize(run_id: str, started: datetime, events: list[RunEvent]) -> RunSummary:
    """Build a run's summary from its events alone (`SUMMARY_KINDS` suffice).

    A run that sent nothing and did not end may be started afresh under its id
    (`repeg.cli.journal_run.journaled_session`; one that ended is never started again, only answered); a journal
    written before repeg stopped that may hold an ended run started again. As in the fold
    (`repeg.domain.run.RunFolder`), a start before any order voids what the one before it planned and how it
    ended. An order reported by the broker stands for the order announced.
    """
    plan_file, broker, status = "", "", UNFINISHED
    legs: set[int] = set()
    ordered = False
    for event in events:
        if isinstance(event, RunStarted):
            if not ordered:
                legs.clear()
                status = UNFINISHED
            plan_file, broker = event.plan.source, event.broker
        elif isinstance(event, RunEnded):
            status = event.status
        elif isinstance(event, LegPlanned):
            legs.add(event.spec.index)
        elif isinstance(event, OrderAccepted | OrderUpdated):
            ordered = True
    return RunSummary(
        run_id=run_id,
        started=started,
        plan_file=plan_file,
        broker=broker,
        status=status,
        legs=len(legs),
        notional=traded_notional(events),
    )


__all__ = [
    "BARRIER_KINDS",
    "DURABLE_KINDS",
    "REDACTED",
    "UNFINISHED",
    "Journal",
    "RunSummary",
    "is_barrier",
    "is_durable",
    "redact",
    "summarize",
    "traded_notional",
]
