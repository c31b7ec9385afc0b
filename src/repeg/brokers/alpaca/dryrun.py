"""`DryRunBroker`: a run that reads the real account and prices every order, but sends none.

Reads (account, positions, assets, open orders) go to the wrapped broker. Every submit is recorded in
`recorded` and then refused with `OrderRejectedError` (code `dry_run`), so the engine closes the leg at once
instead of waiting for fills that cannot come. A dry run therefore lists the first order of every leg, priced
from the live quote and sized against the real account (sells first, then buys within the buying power, counting
the proceeds of the sells at the limit prices they were priced at, as a real run has them once its sells filled).
Since no order ever exists, replace, cancel and order look-ups answer "not found"; nothing reaches the broker.
"""

from __future__ import annotations

from decimal import Decimal

import structlog
from pydantic import BaseModel, ConfigDict

from repeg.brokers.base import Broker, UpdateSink
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import BrokerOrder, OrderRequest, OrderType, ReplaceRequest, Side
from repeg.domain.ticks import ZERO
from repeg.errors import OrderNotFoundError, OrderRejectedError

log = structlog.get_logger(__name__)

DRY_RUN_CODE = "dry_run"
#: The refusal of every submit of a dry run: a leg whose error ends with it had its first order priced.
DRY_RUN_REFUSAL = "dry run: order priced, not sent"
#: Appended to the wrapped broker's name: the broker a dry run journals, so that no real run resumes it.
DRY_RUN_SUFFIX = " (dry run)"


class DryRunOrder(BaseModel):
    """One order the run would have sent."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None


class DryRunBroker:
    def __init__(self, inner: Broker) -> None:
        self._inner = inner
        self.recorded: list[DryRunOrder] = []

    @property
    def name(self) -> str:
        return f"{self._inner.name}{DRY_RUN_SUFFIX}"

    @property
    def supports_replace(self) -> bool:
        return False

    @property
    def pushes_updates(self) -> bool:
        return True

    def subscribe_updates(self, sink: UpdateSink) -> None:
        """No order exists, so no update will ever be pushed."""

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        self.recorded.append(
            DryRunOrder(
                client_order_id=request.client_order_id,
                symbol=request.symbol,
                side=request.side,
                qty=request.qty,
                order_type=request.order_type,
                limit_price=request.limit_price,
            )
        )
        log.info("dry_run_order", symbol=request.symbol, client_order_id=request.client_order_id)
        raise OrderRejectedError(DRY_RUN_REFUSAL, code=DRY_RUN_CODE)

    async def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        raise OrderNotFoundError(request.order_id)

    async def cancel_order(self, order_id: str) -> None:
        raise OrderNotFoundError(order_id)

    async def get_order(self, order_id: str) -> BrokerOrder:
        raise OrderNotFoundError(order_id)

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:  # noqa: ARG002
        return None

    async def list_open_orders(self) -> list[BrokerOrder]:
        return await self._inner.list_open_orders()

    async def get_account(self) -> Account:
        """The real account plus the proceeds of the sells priced so far, at their limit prices: a real run
        sizes its buys after its sells filled, with their cash (a market sell has no price to count)."""
        account = await self._inner.get_account()
        proceeds = sum(
            (
                o.qty * o.limit_price
                for o in self.recorded
                if o.side is Side.SELL and o.limit_price is not None
            ),
            ZERO,
        )
        if proceeds == ZERO:
            return account
        return account.model_copy(
            update={"cash": account.cash + proceeds, "buying_power": account.buying_power + proceeds}
        )

    async def get_positions(self) -> list[Position]:
        return await self._inner.get_positions()

    async def get_asset(self, symbol: str) -> Asset:
        return await self._inner.get_asset(symbol)
