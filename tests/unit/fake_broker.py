"""A small scripted broker and quote feed for engine tests (the real simulator lives in repeg.brokers.simulator).

`FakeBroker` keeps orders in memory, follows Alpaca's state rules for replace and cancel, and pushes updates
synchronously to its subscriber. With `auto_fill` it applies the paper rule against `FakeFeed`: a limit fills
fully when marketable (at the far touch, never better than its limit); a market order fills at the far touch.
Tests script everything else: `fill()` for (partial) fills, `cancel_latency` for a cancel confirmed later,
`fill_before_cancel` for a fill that races a cancel, `refuse_replace` to refuse every replace (`unavailable_replaces`: some time out, unexecuted),
`lost_answers` for a submit or replace the broker executed but whose answer never arrived (a timeout),
`reject_after_accept` for orders the broker accepts and then rejects by an update (as Alpaca may),
`delayed_updates` for a stream that delivers one order's updates late (after those of the orders that followed it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from repeg.brokers.base import Unsubscribe, subscribed
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import (
    BrokerOrder,
    Fill,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    ReplaceRequest,
    Side,
)
from repeg.domain.quote import Quote
from repeg.engine.clock import Clock
from repeg.errors import (
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    OrderNotCancelableError,
    OrderNotFoundError,
    OrderRejectedError,
)

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def quote(symbol: str, bid: str, ask: str, ts: datetime, size: str = "100") -> Quote:
    return Quote(
        symbol=symbol,
        bid=Decimal(bid),
        bid_size=Decimal(size),
        ask=Decimal(ask),
        ask_size=Decimal(size),
        ts=ts,
    )


class FakeFeed:
    """Latest quote per symbol, set by the test (directly or on the clock with `at`)."""

    def __init__(self, clock: Clock, *, fresh: bool = True) -> None:
        self._clock = clock
        self._fresh = fresh
        self._quotes: dict[str, Quote] = {}
        self.listeners: list[Callable[[], None]] = []
        self.subscribed: list[str] = []

    async def subscribe(self, symbols: Iterable[str]) -> None:
        self.subscribed.extend(symbols)

    def latest(self, symbol: str) -> Quote | None:
        """With `fresh`, the quote is re-stamped now (as if it kept being re-published unchanged)."""
        q = self._quotes.get(symbol)
        if q is None or not self._fresh:
            return q
        return q.model_copy(update={"ts": self._clock.now()})

    def set(self, symbol: str, bid: str, ask: str) -> None:
        self._quotes[symbol] = quote(symbol, bid, ask, self._clock.now())
        for listener in self.listeners:
            listener()

    def at(self, when: datetime, symbol: str, bid: str, ask: str) -> None:
        self._clock.call_at(when, lambda: self.set(symbol, bid, ask))


class FakeBroker:
    name = "fake"

    def __init__(
        self,
        clock: Clock,
        feed: FakeFeed,
        *,
        auto_fill: bool = True,
        supports_replace: bool = True,
        pushes_updates: bool = True,
        cash: Decimal = Decimal(1_000_000),
    ) -> None:
        self._clock = clock
        self._feed = feed
        self.auto_fill = auto_fill
        self._supports_replace = supports_replace
        self._pushes = pushes_updates
        self.cash = cash
        self.buying_power: Decimal | None = None
        self.orders: dict[str, BrokerOrder] = {}
        self.by_client: dict[str, str] = {}
        self.requests: list[OrderRequest | ReplaceRequest | str] = []
        self.sinks: list[Callable[[OrderUpdate], None]] = []
        self.cancel_latency = timedelta(0)
        self.fill_before_cancel: dict[str, Decimal] = {}
        self.fill_before_replace: dict[str, Decimal] = {}
        self.refuse_replace = False
        #: This many replaces fail as unanswered (`BrokerUnavailableError`) before the broker executed them.
        self.unavailable_replaces = 0
        self.refuse_cancels = 0
        #: This many cancels are accepted, then refused by a pushed `order_cancel_rejected` (the order stays live).
        self.reject_cancels_later = 0
        self.unavailable_reads = 0
        #: Each read of an order takes this long (on the clock) before it answers or fails (retries, backoff).
        self.read_delay = timedelta(0)
        self.lost_answers = 0
        #: This many submits time out before the broker has executed them; each lands `landing_delay` later
        #: (unless an order under its client order id exists by then: a broker refuses the duplicate).
        self.late_landings = 0
        self.landing_delay = timedelta(seconds=2)
        self.unavailable_lookups = 0
        #: This many lookups by client order id answer "no such order" although it exists (reads that lag).
        self.lagging_lookups = 0
        self.reject_symbols: set[str] = set()
        self.reject_after_accept: set[str] = set()
        #: Pushed updates of these order ids reach the subscriber this much later than they happened.
        self.delayed_updates: dict[str, timedelta] = {}
        self.positions: dict[str, Decimal] = {}
        self._next = 0
        feed.listeners.append(self._on_quote)

    # --- protocol ----------------------------------------------------------------------------------------

    @property
    def supports_replace(self) -> bool:
        return self._supports_replace

    @property
    def pushes_updates(self) -> bool:
        return self._pushes

    def subscribe_updates(self, sink: Callable[[OrderUpdate], None]) -> Unsubscribe:
        return subscribed(self.sinks, sink)

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        self.requests.append(request)
        if request.client_order_id in self.by_client:
            raise DuplicateClientOrderIdError(request.client_order_id)
        if request.symbol in self.reject_symbols:
            raise OrderRejectedError("rejected by script", broker_message="insufficient buying power")
        if self.late_landings:
            self.late_landings -= 1
            self._clock.call_at(self._clock.now() + self.landing_delay, lambda: self._land(request))
            raise BrokerUnavailableError("scripted timeout: the request is still on its way")
        order = self._new(request)
        if request.symbol in self.reject_after_accept:
            self._set(order.order_id, OrderEvent.REJECTED, status=OrderStatus.REJECTED)
        self._match(order.order_id)
        self._lose_answer()
        return self.orders[order.order_id]

    async def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        self.requests.append(request)
        if request.order_id in self.fill_before_replace:
            self.fill(request.order_id, self.fill_before_replace.pop(request.order_id))
        old = self._get(request.order_id)
        if self.refuse_replace or old.status.is_terminal:
            raise OrderNotCancelableError(old.order_id, old.status.value)
        if self.unavailable_replaces:
            self.unavailable_replaces -= 1
            raise BrokerUnavailableError("scripted timeout: the replace was not executed")
        self._set(old.order_id, OrderEvent.REPLACED, status=OrderStatus.REPLACED)
        as_new = OrderRequest(
            client_order_id=request.client_order_id,
            symbol=old.symbol,
            side=old.side,
            qty=request.qty,
            order_type=OrderType.LIMIT,
            limit_price=request.limit_price,
        )
        new = self._new(as_new, replaces=old.order_id)
        self.orders[old.order_id] = self.orders[old.order_id].model_copy(update={"replaced_by": new.order_id})
        self._match(new.order_id)
        self._lose_answer()
        return self.orders[new.order_id]

    async def cancel_order(self, order_id: str) -> None:
        self.requests.append(f"cancel:{order_id}")
        order = self._get(order_id)
        if order_id in self.fill_before_cancel:
            self.fill(order_id, self.fill_before_cancel.pop(order_id))
            order = self._get(order_id)
        if order.status.is_terminal:
            raise OrderNotCancelableError(order_id, order.status.value)
        if self.refuse_cancels:
            self.refuse_cancels -= 1
            raise OrderNotCancelableError(order_id, "pending_replace")
        if self.reject_cancels_later:
            self.reject_cancels_later -= 1
            at = self._clock.now() + self.cancel_latency
            self._clock.call_at(
                at, lambda: self._push(OrderEvent.CANCEL_REJECTED, self.orders[order_id], None)
            )
            return
        if self.cancel_latency:
            self._clock.call_at(
                self._clock.now() + self.cancel_latency, lambda: self._confirm_cancel(order_id)
            )
        else:
            self._confirm_cancel(order_id)

    async def get_order(self, order_id: str) -> BrokerOrder:
        if self.read_delay:
            await self._clock.sleep_until(self._clock.now() + self.read_delay)
        if self.unavailable_reads:
            self.unavailable_reads -= 1
            raise BrokerUnavailableError("scripted outage")
        return self._get(order_id)

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        if self.unavailable_lookups:
            self.unavailable_lookups -= 1
            raise BrokerUnavailableError("scripted outage of the lookup by client order id")
        order_id = self.by_client.get(client_order_id)
        if order_id is not None and self.lagging_lookups:
            self.lagging_lookups -= 1
            return None
        return None if order_id is None else self.orders[order_id]

    async def list_open_orders(self) -> list[BrokerOrder]:
        return [o for o in self.orders.values() if o.status.is_open]

    async def get_account(self) -> Account:
        power = self.cash if self.buying_power is None else self.buying_power
        return Account(cash=self.cash, buying_power=power, equity=self.cash)

    async def get_positions(self) -> list[Position]:
        return [
            Position(symbol=s, qty=q, avg_entry_price=Decimal(1), market_value=q)
            for s, q in self.positions.items()
        ]

    async def get_asset(self, symbol: str) -> Asset:
        return Asset(symbol=symbol, tradable=True, fractionable=True)

    # --- scripting ---------------------------------------------------------------------------------------

    def fill(self, order_id: str, qty: Decimal, price: Decimal | None = None) -> None:
        """Execute `qty` of the order at `price` (default: its limit, or the far touch for a market order)."""
        order = self._get(order_id)
        px = price or order.limit_price or self._far(order)
        assert px is not None
        qty = min(qty, order.remaining_qty)
        done = order.filled_qty + qty
        avg = (
            px
            if order.filled_avg_price is None
            else ((order.filled_avg_price * order.filled_qty + px * qty) / done)
        )
        full = done == order.qty
        signed = qty if order.side is Side.BUY else -qty
        self.cash -= signed * px
        self.positions[order.symbol] = self.positions.get(order.symbol, Decimal(0)) + signed
        self._set(
            order_id,
            OrderEvent.FILL if full else OrderEvent.PARTIAL_FILL,
            status=OrderStatus.FILLED if full else OrderStatus.PARTIALLY_FILLED,
            filled_qty=done,
            filled_avg_price=avg,
            fill=Fill(order_id=order_id, qty=qty, price=px, ts=self._clock.now()),
        )

    def open_order(self, symbol: str) -> BrokerOrder:
        """The one open order of `symbol` (the test's script expects exactly one)."""
        (order,) = [o for o in self.orders.values() if o.symbol == symbol and o.status.is_open]
        return order

    def fill_open_at(self, when: datetime, symbol: str, qty: Decimal, price: Decimal | None = None) -> None:
        """At `when`, execute `qty` of whatever order of `symbol` is open then."""
        self._clock.call_at(when, lambda: self.fill(self.open_order(symbol).order_id, qty, price))

    def order_for(self, client_order_id: str) -> BrokerOrder:
        return self.orders[self.by_client[client_order_id]]

    def submitted(self) -> list[OrderRequest]:
        return [r for r in self.requests if isinstance(r, OrderRequest)]

    def replaced(self) -> list[ReplaceRequest]:
        return [r for r in self.requests if isinstance(r, ReplaceRequest)]

    def cancels(self) -> list[str]:
        return [r for r in self.requests if isinstance(r, str)]

    # --- internals ---------------------------------------------------------------------------------------

    def _new(self, request: OrderRequest, replaces: str | None = None) -> BrokerOrder:
        self._next += 1
        now = self._clock.now()
        order = BrokerOrder(
            order_id=f"o{self._next}",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            qty=request.qty,
            order_type=request.order_type,
            limit_price=request.limit_price,
            status=OrderStatus.NEW,
            created_at=now,
            updated_at=now,
            replaces=replaces,
        )
        self.orders[order.order_id] = order
        self.by_client[request.client_order_id] = order.order_id
        self._push(OrderEvent.NEW, order, None)
        return order

    def _get(self, order_id: str) -> BrokerOrder:
        if order_id not in self.orders:
            raise OrderNotFoundError(order_id)
        return self.orders[order_id]

    def _set(self, order_id: str, event: OrderEvent, fill: Fill | None = None, **changes: object) -> None:
        order = self.orders[order_id].model_copy(update={**changes, "updated_at": self._clock.now()})
        self.orders[order_id] = order
        self._push(event, order, fill)

    def _push(self, event: OrderEvent, order: BrokerOrder, fill: Fill | None) -> None:
        if not self._pushes:
            return
        update = OrderUpdate(event=event, order=order, fill=fill, ts=self._clock.now())
        delay = self.delayed_updates.get(order.order_id)
        if delay:
            self._clock.call_at(self._clock.now() + delay, lambda: self._deliver(update))
        else:
            self._deliver(update)

    def _deliver(self, update: OrderUpdate) -> None:
        for sink in self.sinks:
            sink(update)

    def _land(self, request: OrderRequest) -> None:
        if request.client_order_id not in self.by_client:
            self._match(self._new(request).order_id)

    def _lose_answer(self) -> None:
        """The request was executed, but its answer is lost on the way back (the caller sees a timeout)."""
        if self.lost_answers:
            self.lost_answers -= 1
            raise BrokerUnavailableError("scripted timeout: the answer was lost")

    def _confirm_cancel(self, order_id: str) -> None:
        if self.orders[order_id].status.is_open:
            self._set(order_id, OrderEvent.CANCELED, status=OrderStatus.CANCELED)

    def _far(self, order: BrokerOrder) -> Decimal | None:
        q = self._feed.latest(order.symbol)
        if q is None:
            return None
        return q.ask if order.side is Side.BUY else q.bid

    def _match(self, order_id: str) -> None:
        order = self.orders[order_id]
        if not self.auto_fill or order.status.is_terminal:
            return
        far = self._far(order)
        if far is None or far <= 0:
            return
        if order.order_type is OrderType.MARKET:
            self.fill(order_id, order.remaining_qty, far)
            return
        assert order.limit_price is not None
        marketable = order.limit_price >= far if order.side is Side.BUY else order.limit_price <= far
        if marketable:
            self.fill(order_id, order.remaining_qty, far)

    def _on_quote(self) -> None:
        for order_id in [o.order_id for o in self.orders.values() if o.status.is_open]:
            self._match(order_id)
