"""A broker whose order reads, lookups and cancels are given up at a time: the run's end (`repeg.engine.run_end`).

The run's end asks the broker about every order not known closed, even once its window has passed; a broker slow
to fail (retries with backoff) must not hold the end for as long as it takes. Each of those calls is given up, as
a `BrokerUnavailableError` (so the order stays named open in its leg's error), at the later of `give_up` and
`least` after it started, not counting the time the call is held back by the client's own pacing (a rate limiter's
queue: `repeg.brokers.pacing`), so that a run's end with many orders to cancel waits its turns rather than giving
up requests never sent. Only the broker call is timed, never the recording of its answer. Every other call is
passed through as is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import TypeVar

from repeg.brokers.base import Broker, Unsubscribe, UpdateSink
from repeg.brokers.pacing import Held, watched
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import BrokerOrder, OrderRequest, ReplaceRequest
from repeg.engine.clock import Clock
from repeg.errors import BrokerUnavailableError

T = TypeVar("T")


async def _answered_within(task: asyncio.Future[T], held: Held, seconds: float) -> T:
    """`task`'s result, unless it takes more than `seconds` not counting the time it was `held` by the client's own
    pacing: then it is cancelled and `TimeoutError` raised."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        while True:
            now = loop.time()
            left = started + seconds + held.seconds(now) - now
            if left <= 0:
                raise TimeoutError
            done, _ = await asyncio.wait({task}, timeout=left)
            if done:
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # an error it ended with while cancelled: the call's give-up is what is raised


class BoundedBroker:
    """`inner`, its `cancel_order`, `get_order` and `get_order_by_client_id` given up at the later of `give_up`
    and `least` after each call started, the time it waited for a turn under the client's pacing not counted."""

    def __init__(self, inner: Broker, clock: Clock, give_up: datetime, least: timedelta) -> None:
        self._inner = inner
        self._clock = clock
        self._give_up = give_up
        self._least = least

    async def _within(self, call: Coroutine[object, object, T], what: str) -> T:
        seconds = max(self._give_up - self._clock.now(), self._least).total_seconds()
        held = Held()
        with watched(held):
            task = asyncio.ensure_future(call)  # the task copies the context: its pacing is told to `held`
        try:
            return await _answered_within(task, held, seconds)
        except TimeoutError:
            raise BrokerUnavailableError(f"{what}: no answer within {seconds:g} s at the run's end") from None

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def supports_replace(self) -> bool:
        return self._inner.supports_replace

    @property
    def pushes_updates(self) -> bool:
        return self._inner.pushes_updates

    async def cancel_order(self, order_id: str) -> None:
        await self._within(self._inner.cancel_order(order_id), f"cancel of order {order_id}")

    async def get_order(self, order_id: str) -> BrokerOrder:
        return await self._within(self._inner.get_order(order_id), f"read of order {order_id}")

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        call = self._inner.get_order_by_client_id(client_order_id)
        return await self._within(call, f"lookup of client order id {client_order_id}")

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        return await self._inner.submit_order(request)

    async def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        return await self._inner.replace_order(request)

    async def list_open_orders(self) -> list[BrokerOrder]:
        return await self._inner.list_open_orders()

    async def get_account(self) -> Account:
        return await self._inner.get_account()

    async def get_positions(self) -> list[Position]:
        return await self._inner.get_positions()

    async def get_asset(self, symbol: str) -> Asset:
        return await self._inner.get_asset(symbol)

    def subscribe_updates(self, sink: UpdateSink) -> Unsubscribe | None:
        return self._inner.subscribe_updates(sink)
