"""A broker whose order reads, lookups and cancels are given up at a time: the run's end (`repeg.engine.run_end`).

The run's end asks the broker about every order not known closed, even once its window has passed; a broker slow
to fail (retries with backoff) must not hold the end for as long as it takes. Each of those calls is given up, as
a `BrokerUnavailableError` (so the order stays named open in its leg's error), at the later of `give_up` and
`least` after it started. Only the broker call is timed, never the recording of its answer. Every other call is
passed through as is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import TypeVar

from repeg.brokers.base import Broker, Unsubscribe, UpdateSink
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import BrokerOrder, OrderRequest, ReplaceRequest
from repeg.engine.clock import Clock
from repeg.errors import BrokerUnavailableError

T = TypeVar("T")


class BoundedBroker:
    """`inner`, its `cancel_order`, `get_order` and `get_order_by_client_id` given up at the later of `give_up`
    and `least` after each call started."""

    def __init__(self, inner: Broker, clock: Clock, give_up: datetime, least: timedelta) -> None:
        self._inner = inner
        self._clock = clock
        self._give_up = give_up
        self._least = least

    async def _within(self, call: Awaitable[T], what: str) -> T:
        limit = max(self._give_up - self._clock.now(), self._least)
        try:
            return await asyncio.wait_for(call, timeout=limit.total_seconds())
        except TimeoutError:
            seconds = limit.total_seconds()
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
