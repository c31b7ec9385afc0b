"""`DryRunBroker`: a run that reads the real account and prices every order, but sends none.

Reads (account, positions, assets, orders) go to the wrapped broker; every submit, replace and cancel is
recorded in `recorded` and answered locally. Each recorded order is then reported `rejected` ("dry run: not
sent"), so the engine closes the leg at once instead of waiting for fills that cannot come: a dry run lists
the first order of every leg, priced from the live quote, and its sizing against the real buying power.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import structlog
from pydantic import BaseModel, ConfigDict

from repeg.brokers.base import Broker, UpdateSink
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import (
    BrokerOrder,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    ReplaceRequest,
    Side,
)
from repeg.engine.clock import Clock

log = structlog.get_logger(__name__)


class DryRunOrder(BaseModel):
    """One request the run would have sent."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    action: str
    client_order_id: str
    symbol: str
    side: Side | None
    qty: Decimal | None
    order_type: OrderType | None
    limit_price: Decimal | None


class DryRunBroker:
    def __init__(self, inner: Broker, clock: Clock) -> None:
        self._inner = inner
        self._clock = clock
        self._sinks: list[UpdateSink] = []
        self._orders: dict[str, BrokerOrder] = {}
        self.recorded: list[DryRunOrder] = []

    @property
    def name(self) -> str:
        return f"{self._inner.name} (dry run)"

    @property
    def supports_replace(self) -> bool:
        return True

    @property
    def pushes_updates(self) -> bool:
        return True

    def subscribe_updates(self, sink: UpdateSink) -> None:
        self._sinks.append(sink)

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        self.recorded.append(
            DryRunOrder(
                action="submit",
                client_order_id=request.client_order_id,
                symbol=request.symbol,
                side=request.side,
                qty=request.qty,
                order_type=request.order_type,
                limit_price=request.limit_price,
            )
        )
        log.info("dry_run_order", symbol=request.symbol, client_order_id=request.client_order_id)
        now = self._clock.now()
        order = BrokerOrder(
            order_id=str(uuid.uuid5(uuid.NAMESPACE_URL, request.client_order_id)),
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            qty=request.qty,
            order_type=request.order_type,
            limit_price=request.limit_price,
            status=OrderStatus.NEW,
            created_at=now,
            updated_at=now,
        )
        self._orders[order.order_id] = order
        self._clock.call_at(now, lambda: self._reject(order))
        return order

    def _reject(self, order: BrokerOrder) -> None:
        rejected = order.model_copy(update={"status": OrderStatus.REJECTED, "updated_at": self._clock.now()})
        self._orders[order.order_id] = rejected
        update = OrderUpdate(event=OrderEvent.REJECTED, order=rejected, ts=self._clock.now())
        for sink in self._sinks:
            sink(update)

    async def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        old = await self.get_order(request.order_id)
        self.recorded.append(
            DryRunOrder(
                action="replace",
                client_order_id=request.client_order_id,
                symbol=old.symbol,
                side=old.side,
                qty=request.qty,
                order_type=old.order_type,
                limit_price=request.limit_price,
            )
        )
        return old

    async def cancel_order(self, order_id: str) -> None:
        old = await self.get_order(order_id)
        self.recorded.append(
            DryRunOrder(
                action="cancel",
                client_order_id=old.client_order_id,
                symbol=old.symbol,
                side=None,
                qty=None,
                order_type=None,
                limit_price=None,
            )
        )

    async def get_order(self, order_id: str) -> BrokerOrder:
        if order_id in self._orders:
            return self._orders[order_id]
        return await self._inner.get_order(order_id)

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        for order in self._orders.values():
            if order.client_order_id == client_order_id:
                return order
        return None

    async def list_open_orders(self) -> list[BrokerOrder]:
        return await self._inner.list_open_orders()

    async def get_account(self) -> Account:
        return await self._inner.get_account()

    async def get_positions(self) -> list[Position]:
        return await self._inner.get_positions()

    async def get_asset(self, symbol: str) -> Asset:
        return await self._inner.get_asset(symbol)
