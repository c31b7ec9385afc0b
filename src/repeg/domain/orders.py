"""Broker-neutral order models: what the engine sends and what any broker reports back.

These are the shapes that cross the broker boundary. Adapters (simulator, Alpaca) convert to and from them at
their edge; no SDK object travels further in.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from repeg.domain.ticks import ZERO


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: cost = sign * (fill - mid)."""
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"


class OrderStatus(StrEnum):
    """Alpaca's order statuses, the superset every broker adapter maps onto."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DONE_FOR_DAY = "done_for_day"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    STOPPED = "stopped"
    CALCULATED = "calculated"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        return self not in TERMINAL_STATUSES


#: Statuses after which an order can neither fill further nor be changed.
TERMINAL_STATUSES: frozenset[OrderStatus] = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
        OrderStatus.REPLACED,
        OrderStatus.REJECTED,
    }
)


class OrderRequest(BaseModel):
    """A new order as the engine asks for it. `client_order_id` is deterministic (see `domain.ids`)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    client_order_id: str = Field(min_length=1, max_length=48)
    symbol: str = Field(min_length=1)
    side: Side
    qty: Decimal = Field(gt=ZERO)
    order_type: OrderType
    limit_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.DAY

    @model_validator(mode="after")
    def _limit_matches_type(self) -> OrderRequest:
        if self.order_type is OrderType.LIMIT and (self.limit_price is None or self.limit_price <= ZERO):
            raise ValueError("a limit order needs a positive limit_price")
        if self.order_type is OrderType.MARKET and self.limit_price is not None:
            raise ValueError("a market order takes no limit_price")
        return self


class ReplaceRequest(BaseModel):
    """Change of an open limit order: the broker creates a new order id for the result."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    order_id: str
    client_order_id: str = Field(min_length=1, max_length=48)
    qty: Decimal = Field(gt=ZERO)
    limit_price: Decimal = Field(gt=ZERO)


class BrokerOrder(BaseModel):
    """An order as the broker reports it. `filled_qty` and `filled_avg_price` are cumulative for this order id."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    status: OrderStatus
    filled_qty: Decimal = ZERO
    filled_avg_price: Decimal | None = None
    created_at: datetime
    updated_at: datetime
    replaces: str | None = None
    replaced_by: str | None = None

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty


class OrderEvent(StrEnum):
    """What happened to an order, as pushed by a broker (Alpaca's trade_updates events)."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    REJECTED = "rejected"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    DONE_FOR_DAY = "done_for_day"
    #: The broker accepted a cancel request, then refused it (e.g. too late to cancel): the order stays live.
    CANCEL_REJECTED = "order_cancel_rejected"
    #: The broker accepted a replace request, then refused it: the order it was to replace stays live.
    REPLACE_REJECTED = "order_replace_rejected"


#: The update event that reports an order now in a given status (statuses with no event of their own read as new).
_EVENT_FOR_STATUS: dict[OrderStatus, OrderEvent] = {
    OrderStatus.PENDING_NEW: OrderEvent.PENDING_NEW,
    OrderStatus.PARTIALLY_FILLED: OrderEvent.PARTIAL_FILL,
    OrderStatus.FILLED: OrderEvent.FILL,
    OrderStatus.CANCELED: OrderEvent.CANCELED,
    OrderStatus.EXPIRED: OrderEvent.EXPIRED,
    OrderStatus.REPLACED: OrderEvent.REPLACED,
    OrderStatus.REJECTED: OrderEvent.REJECTED,
    OrderStatus.PENDING_CANCEL: OrderEvent.PENDING_CANCEL,
    OrderStatus.PENDING_REPLACE: OrderEvent.PENDING_REPLACE,
    OrderStatus.DONE_FOR_DAY: OrderEvent.DONE_FOR_DAY,
}


def event_for_status(status: OrderStatus) -> OrderEvent:
    """The event an update carries for an order learned (polled, reconciled) to be in `status`."""
    return _EVENT_FOR_STATUS.get(status, OrderEvent.NEW)


class Fill(BaseModel):
    """One execution: quantity and price of that execution alone (not cumulative)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    order_id: str
    qty: Decimal = Field(gt=ZERO)
    price: Decimal = Field(gt=ZERO)
    ts: datetime


class OrderUpdate(BaseModel):
    """A pushed change of one order: the event, the order's full state after it, and the execution if any."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    event: OrderEvent
    order: BrokerOrder
    fill: Fill | None = None
    ts: datetime
