"""The fake Alpaca's order book: Alpaca paper-trading fill rules over a scripted quote, with its own state.

Rules (see ../shared/alpaca/README.md): an order fills only when marketable (a buy limit at or above the ask, a
sell limit at or below the bid, a market order always), at the far touch; a seeded share of eligible fills is
partial and the remainder is re-evaluated later; size is not checked against the displayed size. Replace
creates a new order id (the old one goes `pending_replace`, then `replaced`); cancel and replace of an order
that is no longer open, and replace of one not yet routed (`accepted`) or pending, are refused with HTTP 422
code 42210000.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

OPEN_STATUSES = frozenset(
    {"new", "accepted", "pending_new", "partially_filled", "pending_cancel", "pending_replace"}
)
ZERO = Decimal(0)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


class OrderStateError(Exception):
    """An operation met an order in a state that does not allow it (the server answers 422 42210000)."""

    def __init__(self, order: FakeOrder, action: str) -> None:
        self.order = order
        super().__init__(f'order is already in "{order.status}" state; cannot {action}')


@dataclass
class FakeQuote:
    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: int
    ask_size: int
    ts: datetime


@dataclass
class FakeOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    type: str
    limit_price: Decimal | None
    time_in_force: str
    status: str
    created_at: datetime
    updated_at: datetime
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    replaces: str | None = None
    replaced_by: str | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    replaced_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def filled_avg_price(self) -> Decimal | None:
        return None if self.filled_qty == ZERO else self.filled_notional / self.filled_qty

    def to_json(self) -> dict[str, object]:
        """The order as Alpaca's `Order` schema shapes it (strings for numbers, ISO timestamps)."""
        avg = self.filled_avg_price
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "submitted_at": iso(self.created_at),
            "filled_at": None if self.filled_at is None else iso(self.filled_at),
            "expired_at": None,
            "canceled_at": None if self.canceled_at is None else iso(self.canceled_at),
            "failed_at": None,
            "replaced_at": None if self.replaced_at is None else iso(self.replaced_at),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.symbol)),
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": plain(self.qty),
            "filled_qty": plain(self.filled_qty),
            "filled_avg_price": None if avg is None else plain(avg),
            "order_class": "simple",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "time_in_force": self.time_in_force,
            "limit_price": None if self.limit_price is None else plain(self.limit_price),
            "stop_price": None,
            "status": self.status,
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
        }


@dataclass
class Holding:
    qty: Decimal
    avg_entry_price: Decimal


#: (event, order, execution) -> None; execution is (qty, price) for fill events.
TradeListener = Callable[[str, FakeOrder, tuple[Decimal, Decimal] | None], None]


@dataclass
class FakeBook:
    """Orders, account and quotes of one fake Alpaca account; every change is announced to listeners."""

    seed: int = 7
    partial_fill_probability: float = 0.0
    cash: Decimal = Decimal(100_000)
    market_open: bool = True
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    orders: dict[str, FakeOrder] = field(default_factory=dict)
    used_client_ids: set[str] = field(default_factory=set)
    holdings: dict[str, Holding] = field(default_factory=dict)
    quotes: dict[str, FakeQuote] = field(default_factory=dict)
    #: symbol -> (tradable, fractionable)
    assets: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    listeners: list[TradeListener] = field(default_factory=list)
    quote_listeners: list[Callable[[FakeQuote], None]] = field(default_factory=list)
    #: When set, a replace leaves the old order `pending_replace` until `complete_replace` is called.
    hold_replaces: bool = False
    #: When set, a cancel leaves the order `pending_cancel` (as while Alpaca waits for the venue) until
    #: `complete_cancels` is called.
    hold_cancels: bool = False

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # --- quotes -------------------------------------------------------------------------------------------

    def set_quote(self, symbol: str, bid: Decimal, ask: Decimal, size: int = 100) -> None:
        quote = FakeQuote(symbol, bid, ask, size, size, self.now())
        self.quotes[symbol] = quote
        for listener in list(self.quote_listeners):
            listener(quote)
        self.match(symbol)

    def play(self, script: list[tuple[float, str, Decimal, Decimal]]) -> None:
        """Drive the book from a quote script: each (seconds from now, symbol, bid, ask) at its time on the
        running loop (offset 0 at once). Matching runs on every quote, as on Alpaca's paper exchange."""
        loop = asyncio.get_running_loop()
        for offset, symbol, bid, ask in script:
            if offset <= 0:
                self.set_quote(symbol, bid, ask)
            else:
                loop.call_later(offset, self.set_quote, symbol, bid, ask)

    # --- orders -------------------------------------------------------------------------------------------

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def submit(self, fields: dict[str, object]) -> FakeOrder:
        now = self.now()
        limit = fields.get("limit_price")
        order = FakeOrder(
            id=self.new_id(),
            client_order_id=str(fields.get("client_order_id") or self.new_id()),
            symbol=str(fields["symbol"]),
            side=str(fields["side"]),
            qty=Decimal(str(fields["qty"])),
            type=str(fields["type"]),
            limit_price=None if limit is None else Decimal(str(limit)),
            time_in_force=str(fields.get("time_in_force", "day")),
            status="new" if self.market_open else "accepted",
            created_at=now,
            updated_at=now,
        )
        self.orders[order.id] = order
        self.used_client_ids.add(order.client_order_id)
        self._announce("new", order)
        self.match(order.symbol)
        return order

    def replace(
        self, old: FakeOrder, qty: Decimal | None, limit: Decimal | None, client_id: str
    ) -> FakeOrder:
        # "Order cannot be replaced when the status is `accepted`, `pending_new`, `pending_cancel` or
        # `pending_replace`" (Alpaca's PATCH /v2/orders/{order_id}); nor, of course, once it is closed.
        if old.status not in {"new", "partially_filled"}:
            raise OrderStateError(old, "replace")
        old.status, old.updated_at = "pending_replace", self.now()
        self._announce("pending_replace", old)
        new = self.submit_hidden(
            old, qty if qty is not None else old.qty, limit or old.limit_price, client_id
        )
        if not self.hold_replaces:
            self.complete_replace(old.id)
        return new

    def submit_hidden(self, old: FakeOrder, qty: Decimal, limit: Decimal | None, client_id: str) -> FakeOrder:
        now = self.now()
        new = FakeOrder(
            id=self.new_id(),
            client_order_id=client_id,
            symbol=old.symbol,
            side=old.side,
            qty=qty,
            type=old.type,
            limit_price=limit,
            time_in_force=old.time_in_force,
            status="pending_new",
            created_at=now,
            updated_at=now,
            replaces=old.id,
        )
        self.orders[new.id] = new
        self.used_client_ids.add(client_id)
        old.replaced_by = new.id
        return new

    def complete_replace(self, old_id: str) -> None:
        """Finish a held replace: the old order goes `replaced` (or the new one is rejected if the old filled)."""
        old = self.orders[old_id]
        new = self.orders[str(old.replaced_by)]
        now = self.now()
        if old.status != "pending_replace":
            new.status, new.updated_at = "rejected", now
            self._announce("rejected", new)
            return
        old.status, old.replaced_at, old.updated_at = "replaced", now, now
        self._announce("replaced", old)
        new.status = "new" if self.market_open else "accepted"
        self._announce("new", new)
        self.match(new.symbol)

    def cancel(self, order: FakeOrder) -> None:
        if order.status not in {"new", "accepted", "partially_filled"}:
            raise OrderStateError(order, "cancel")
        now = self.now()
        if self.hold_cancels:
            order.status, order.updated_at = "pending_cancel", now
            self._announce("pending_cancel", order)
            return
        order.status, order.canceled_at, order.updated_at = "canceled", now, now
        self._announce("canceled", order)

    def complete_cancels(self) -> None:
        """Cancel every order a held cancel left `pending_cancel`."""
        for order in list(self.orders.values()):
            if order.status == "pending_cancel":
                now = self.now()
                order.status, order.canceled_at, order.updated_at = "canceled", now, now
                self._announce("canceled", order)

    # --- matching -----------------------------------------------------------------------------------------

    def match(self, symbol: str) -> None:
        """Fill every marketable open order of `symbol` against its current quote (paper rules)."""
        quote = self.quotes.get(symbol)
        if quote is None or not self.market_open:
            return
        for order in list(self.orders.values()):
            if order.symbol == symbol and order.status in {"new", "partially_filled", "pending_replace"}:
                price = self._fill_price(order, quote)
                if price is not None:
                    self._execute(order, price)

    @staticmethod
    def _fill_price(order: FakeOrder, quote: FakeQuote) -> Decimal | None:
        far = quote.ask if order.side == "buy" else quote.bid
        if far <= ZERO:
            return None
        if order.limit_price is None:
            return far
        marketable = order.limit_price >= far if order.side == "buy" else order.limit_price <= far
        return far if marketable else None

    def _execute(self, order: FakeOrder, price: Decimal) -> None:
        qty = order.remaining
        if qty > 1 and self._rng.random() < self.partial_fill_probability:
            qty = Decimal(self._rng.randint(1, int(qty) - 1)) if qty == qty.to_integral_value() else qty / 2
        now = self.now()
        order.filled_qty += qty
        order.filled_notional += qty * price
        order.updated_at = now
        full = order.remaining == ZERO
        if full:
            order.filled_at = now
        if order.status != "pending_replace":
            order.status = "filled" if full else "partially_filled"
        elif full:
            order.status = "filled"
        self._settle(order, qty, price)
        self._announce("fill" if full else "partial_fill", order, (qty, price))

    def _settle(self, order: FakeOrder, qty: Decimal, price: Decimal) -> None:
        signed = qty if order.side == "buy" else -qty
        self.cash -= signed * price
        holding = self.holdings.get(order.symbol, Holding(ZERO, ZERO))
        new_qty = holding.qty + signed
        if order.side == "buy" and new_qty != ZERO:
            holding.avg_entry_price = (holding.qty * holding.avg_entry_price + qty * price) / new_qty
        holding.qty = new_qty
        if new_qty == ZERO:
            self.holdings.pop(order.symbol, None)
        else:
            self.holdings[order.symbol] = holding

    def _announce(
        self, event: str, order: FakeOrder, execution: tuple[Decimal, Decimal] | None = None
    ) -> None:
        for listener in list(self.listeners):
            listener(event, order, execution)

    # --- account ------------------------------------------------------------------------------------------

    def mark(self, symbol: str) -> Decimal:
        quote = self.quotes.get(symbol)
        holding = self.holdings[symbol]
        if quote is None or quote.bid <= ZERO or quote.ask <= ZERO:
            return holding.avg_entry_price
        return (quote.bid + quote.ask) / 2

    def equity(self) -> Decimal:
        return self.cash + sum((h.qty * self.mark(s) for s, h in self.holdings.items()), ZERO)
