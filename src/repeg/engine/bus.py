"""Event plumbing of a run: the bus that folds and publishes every event, and the routing of broker updates.

The engine changes leg state only by emitting events through `EventBus.emit`, which folds the event into the
run's `RunFolder` (the same fold the journal uses) and then hands it to every sink in order. Live state therefore
always equals the fold of what the sinks received.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TypedDict

import structlog

from repeg.brokers.base import Broker, Unsubscribe
from repeg.domain.events import EventSink, RunEvent
from repeg.domain.ids import leg_id
from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import OrderUpdate
from repeg.domain.run import RunFolder
from repeg.engine.clock import Clock, TimerHandle


class Stamp(TypedDict):
    """The fields every run event carries."""

    run_id: str
    ts: datetime
    correlation_id: str
    leg_index: int | None


class EventBus:
    """Folds, then publishes, each run event; stamps new events with run id, time and correlation id."""

    def __init__(self, run_id: str, clock: Clock, sinks: Sequence[EventSink]) -> None:
        self.run_id = run_id
        self.clock = clock
        self.folder = RunFolder(run_id)
        self._sinks = tuple(sinks)
        self._correlations: dict[int, str] = {}
        self._overfilled: set[int] = set()
        self.count = 0

    def leg(self, index: int) -> LegState:
        return self.folder.legs[index]

    def seed(self, events: Iterable[RunEvent]) -> None:
        """Fold journaled events without publishing them again (a resumed run). An over-fill among them was
        logged by the run that recorded it: it is not logged a second time."""
        for event in events:
            self.folder.apply(event)
        self._overfilled.update(index for index, leg in self.folder.legs.items() if leg.overfilled)

    def correlation(self, leg_index: int | None) -> str:
        """A leg's events (and log lines) carry the leg id as correlation id; run-level ones the run id."""
        if leg_index is None:
            return self.run_id
        known = self._correlations.get(leg_index)
        if known is None:
            known = self._correlations[leg_index] = leg_id(self.run_id, leg_index)
        return known

    def stamp(self, leg_index: int | None = None) -> Stamp:
        """The common fields of a new event."""
        return {
            "run_id": self.run_id,
            "ts": self.clock.now(),
            "correlation_id": self.correlation(leg_index),
            "leg_index": leg_index,
        }

    async def emit(self, event: RunEvent) -> None:
        """Fold `event` (raising on an illegal transition before anyone sees it), then publish.

        A broker's report of more fills than a leg's quantity is published like any other (it happened) and
        fails the leg in the fold; it is logged here, once per leg, at error level.
        """
        changed = self.folder.apply(event)
        self.count += 1
        for sink in self._sinks:
            await sink.emit(event)
        if changed is not None and changed.status is LegStatus.FAILED:
            self._log_overfill(changed)

    def _log_overfill(self, leg: LegState) -> None:
        if leg.index in self._overfilled or not leg.overfilled:
            return
        self._overfilled.add(leg.index)
        order_ids = leg.order_ids
        structlog.get_logger("repeg.engine").error(
            "leg_overfilled",
            run_id=self.run_id,
            correlation_id=self.correlation(leg.index),
            symbol=leg.symbol,
            order_id=order_ids[-1] if order_ids else None,
            qty=str(leg.qty),
            filled_qty=str(leg.filled_qty),
            error=leg.error,
        )


class Inbox:
    """Broker updates waiting for one monitor loop, and the loop's wait for the next one (or a deadline).

    The wait is a bare future plus one clock timer rather than `Clock.wait_event`, whose `wait_for` costs a task
    per wait: the monitor waits once per turn, thousands of times in a day-long replay. The timer outlives a
    wait that an update ended early, so that the next wait for the same deadline (the usual case: the leg's due
    time has not moved) reuses it instead of scheduling another; `close()` cancels it.
    """

    def __init__(self) -> None:
        self._items: deque[OrderUpdate] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._timer: TimerHandle | None = None
        self._timer_at: datetime | None = None

    def push(self, update: OrderUpdate) -> None:
        self._items.append(update)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._wake()

    def drain(self) -> list[OrderUpdate]:
        items = list(self._items)
        self._items.clear()
        return items

    async def wait(self, clock: Clock, deadline: datetime) -> None:
        """Return when an update is pending or at `deadline` (on `clock`), whichever comes first."""
        if self._items:
            return
        if deadline != self._timer_at:
            self.close()
            self._timer = clock.call_at(deadline, self._on_timer)
            self._timer_at = deadline
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        """Cancel the pending deadline timer, if any (the owner stops waiting)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None


class UpdateRouter:
    """The run's one broker subscription: each update goes to the inbox of the monitor owning its leg.

    Updates of the run's own orders that no monitor owns any more (a fill that raced the end of a phase) are kept
    in `late`, for the runner to record; updates of orders the run never announced are dropped (not ours).
    """

    def __init__(self, folder: RunFolder) -> None:
        self._folder = folder
        self._inboxes: dict[int, Inbox] = {}
        self.late = Inbox()
        self._unsubscribe: Unsubscribe | None = None

    def listen(self, broker: Broker) -> None:
        """Subscribe to `broker`'s pushed updates, until `close`."""
        self._unsubscribe = broker.subscribe_updates(self.push)

    def close(self) -> None:
        """Unsubscribe as the run ends: a broker reused for other runs (`repeg.execute` called again with it) would
        otherwise keep this router, and the run's whole state with it, and hand it every later update."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def attach(self, legs: Iterable[int], inbox: Inbox) -> None:
        for index in legs:
            self._inboxes[index] = inbox

    def detach(self, legs: Iterable[int], inbox: Inbox) -> None:
        """Stop routing `legs` to `inbox`. The updates it still holds, pushed after its monitor last read it (while
        the phase's last actions were awaited), go to `late` like any update that raced the end of a phase."""
        for index in legs:
            self._inboxes.pop(index, None)
        for update in inbox.drain():
            self.late.push(update)

    def push(self, update: OrderUpdate) -> None:
        index = self._folder.leg_of(update.order.client_order_id)
        if index is None:
            return
        self._inboxes.get(index, self.late).push(update)
