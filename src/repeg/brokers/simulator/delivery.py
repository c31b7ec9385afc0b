"""How the built-in exchange tells its clients: order updates queued as they happen, delivered to every sink in
that order from loop callbacks, never from inside the caller's own request (`SimulatedBroker` guarantees it)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from datetime import datetime

from repeg.brokers.base import Unsubscribe, UpdateSink, subscribed
from repeg.brokers.simulator.state import SimOrder
from repeg.domain.orders import Fill, OrderEvent, OrderUpdate
from repeg.engine.clock import Clock, TimerHandle


class Outbox:
    """The exchange's updates on their way to the sinks, and the timers whose actions produce them."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._sinks: list[UpdateSink] = []
        self._queue: deque[OrderUpdate] = deque()
        self._flush_pending = False

    def subscribe(self, sink: UpdateSink) -> Unsubscribe:
        return subscribed(self._sinks, sink)

    def emit(self, event: OrderEvent, order: SimOrder, fill: Fill | None = None) -> None:
        """Queue the update of `order` as it stands now (delivered by the next flush)."""
        update = OrderUpdate(event=event, order=order.snapshot(), fill=fill, ts=order.updated_at)
        self._queue.append(update)

    def schedule(self, when: datetime, action: Callable[[datetime], None]) -> TimerHandle:
        """Run `action(now)` at `when` on the clock, then deliver the updates it produced."""

        def run() -> None:
            action(self._clock.now())
            self.flush()

        return self._clock.call_at(when, run)

    def flush_later(self) -> None:
        """Deliver queued updates from a loop callback: never inside the caller's own request.

        `call_soon` rather than a timer at now: it is the same instant on any clock, and far cheaper.
        """
        if self._queue and not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        while self._queue:
            update = self._queue.popleft()
            for sink in self._sinks:
                sink(update)


__all__ = ["Outbox"]
