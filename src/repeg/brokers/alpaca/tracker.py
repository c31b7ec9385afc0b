"""What this run knows about its own orders, and the one rule that turns broker states into order updates.

Pushed stream events, polls after a reconnect or a silence, and REST answers all arrive here. Each is accepted
only if it *advances* what is known (more filled, or a new status while not yet terminal), so a fill seen by a
poll and later repeated by the stream is reported once, and a stale event never rolls an order back. Fills are
derived from the change in cumulative `filled_qty`, so the sum of reported fills always equals the broker's
`filled_qty`. A stream fill event that reports exactly that change is priced at its own execution `price` when
that price agrees with the averages the event carries (Alpaca's docs also call it the order's average: a second
fill's average is no price of its execution); else (a poll, changes that several executions made, or a `price`
the averages contradict) the fill is priced from the change in `filled_avg_price`, so that the notional of the
fills is the broker's `filled_qty * filled_avg_price`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, localcontext

import structlog

from repeg.brokers.base import Sent, SentOrders, Unsubscribe, UpdateSink, subscribed
from repeg.domain.orders import BrokerOrder, Fill, OrderEvent, OrderStatus, OrderUpdate, event_for_status
from repeg.domain.ticks import ZERO
from repeg.errors import BrokerInUseError
from repeg.report.quality import DECIMAL_CONTEXT

log = structlog.get_logger(__name__)


def advances(old: BrokerOrder | None, new: BrokerOrder) -> bool:
    """True when `new` is later news than `old` about the same order."""
    if old is None or new.filled_qty > old.filled_qty:
        return True
    if new.filled_qty < old.filled_qty:
        return False
    if is_priced(new) and not is_priced(old):
        return True  # the price of fills already reported without one
    return not old.status.is_terminal and new.status != old.status


def is_priced(order: BrokerOrder) -> bool:
    """True when the order's fills, if any, come with their average price (Alpaca may report `filled_qty` before
    `filled_avg_price`): only such a state can be a base that later fills are priced against."""
    return order.filled_avg_price is not None or order.filled_qty == ZERO


def fill_between(
    old: BrokerOrder | None, new: BrokerOrder, ts: datetime, before: Decimal | None = None
) -> Fill | None:
    """The execution that took the order from `old` to `new`, priced from the cumulative averages (from `before`,
    the notional of the fills reported up to `old`, when given: else `old`'s quantity x average), in
    `DECIMAL_CONTEXT`: the trade stream's task may have been started in a program's own decimal context."""
    with localcontext(DECIMAL_CONTEXT):
        return _fill_between(old, new, ts, before)


def _fill_between(
    old: BrokerOrder | None, new: BrokerOrder, ts: datetime, before: Decimal | None
) -> Fill | None:
    before_qty = ZERO if old is None else old.filled_qty
    qty = new.filled_qty - before_qty
    if qty <= ZERO or new.filled_avg_price is None:
        return None
    before_notional = ZERO if before is None else before
    if before is None and old is not None and old.filled_avg_price is not None:
        before_notional = old.filled_qty * old.filled_avg_price
    price = (new.filled_qty * new.filled_avg_price - before_notional) / qty
    if price <= ZERO:
        price = new.filled_avg_price
    return Fill(order_id=new.order_id, qty=qty, price=price, ts=ts)


def agrees(before: Decimal, fill: Fill, new: BrokerOrder) -> bool:
    """True when `before` (the notional of the fills reported before) plus `fill` is the broker's new notional,
    `filled_qty * filled_avg_price`, within the rounding of that average to its last digit, a cent at most (Alpaca
    trims trailing zeros: "10" is no average rounded to the dollar), and strictly (a sum on the half-unit's edge is
    as likely the rounded order average as an execution's price)."""
    avg = new.filled_avg_price
    if avg is None or not avg.is_finite():
        return False
    digit = min(int(avg.as_tuple().exponent), -2)
    with localcontext(DECIMAL_CONTEXT):
        off = abs(before + fill.qty * fill.price - new.filled_qty * avg)
        return off < Decimal(5).scaleb(digit - 1) * new.filled_qty


#: Stream events that refuse a cancel or replace the broker had accepted: the order itself may not change at all.
REFUSAL_EVENTS = frozenset({OrderEvent.CANCEL_REJECTED.value, OrderEvent.REPLACE_REJECTED.value})


def is_refusal(old: BrokerOrder | None, new: BrokerOrder, hint: str | None) -> bool:
    """True for a refused cancel or replace of an order still open: news even when the order's state is unchanged
    (the run must learn that the order it is cancelling or replacing stays live)."""
    if hint not in REFUSAL_EVENTS or new.status.is_terminal:
        return False
    return old is None or not old.status.is_terminal


def event_for(new: BrokerOrder, fill: Fill | None, hint: str | None) -> OrderEvent:
    """The update's event: a refused cancel or replace says so (the order stays live, whatever it filled);
    else a fill decides by status; else the broker's own event name if we know it."""
    if hint in REFUSAL_EVENTS and not new.status.is_terminal:
        return OrderEvent(hint)
    if fill is not None:
        return OrderEvent.FILL if new.status is OrderStatus.FILLED else OrderEvent.PARTIAL_FILL
    if hint is not None and hint in OrderEvent._value2member_map_:
        hinted = OrderEvent(hint)
        if hinted not in {OrderEvent.FILL, OrderEvent.PARTIAL_FILL}:
            return hinted
    return event_for_status(new.status)


class OrderTracker:
    """Orders of one run: the latest state known from any source, and the state last pushed to the sinks.

    REST answers (submit, replace) update only the known state: the caller already holds them, and the pushed
    updates keep flowing from the stream (the engine folds cumulative fills idempotently, so an update that
    repeats a REST answer is harmless, while a suppressed one could hide a fill).
    """

    def __init__(self, on_idle: Callable[[], None] | None = None, *, owner: str = "broker") -> None:
        #: Called once the last sink leaves (no run listens): the adapter forgets what it held for the runs.
        self._on_idle = on_idle
        #: The adapter's name, for `BrokerInUseError`.
        self._owner = owner
        self._latest: dict[str, BrokerOrder] = {}
        self._reported: dict[str, BrokerOrder] = {}
        #: Per order, the last reported state whose fills had a price: the next fill is priced from it.
        self._priced: dict[str, BrokerOrder] = {}
        #: Per order, the notional of the fills reported up to its `_priced` state (at the prices they were reported).
        self._notional: dict[str, Decimal] = {}
        self._client_ids: set[str] = set()
        self._owned = SentOrders()
        self._sinks: list[UpdateSink] = []

    def add_sink(self, sink: UpdateSink) -> Unsubscribe:
        """Subscribe `sink`, the one run listening; once it leaves, the closed orders are forgotten. A second sink
        while one listens (two runs at once on one adapter) is refused with `BrokerInUseError`: the asset flags
        cached for one run would serve the other's checks, and one run's stop would bound the other's requests."""
        if self._sinks:
            raise BrokerInUseError(self._owner)
        unsubscribe = subscribed(self._sinks, sink)

        def leave() -> None:
            unsubscribe()
            if not self._sinks:
                self._release()
                if self._on_idle is not None:
                    self._on_idle()

        return leave

    @property
    def listened(self) -> bool:
        """True while a run listens: the adapter's asset flags are cached for it. A plan refused before its run (it
        never listened) leaves no flags that a later plan on the same adapter would take as read for it."""
        return bool(self._sinks)

    def _release(self) -> None:
        """Forget every order that is closed, and every client order id without an open order: an adapter reused
        for run after run (the Python API) would otherwise hold each order of each past run for its life. Nothing
        of them can be pushed (no run listens); a resume asks the broker again (`adopt`). Open orders stay known
        (a resume on this adapter goes on from their state), but are polled only while a run listens (`working_ids`)."""
        kept = {oid: order for oid, order in self._latest.items() if order.status.is_open}
        cids = {order.client_order_id for order in kept.values()}
        self._latest = kept
        self._reported = {oid: o for oid, o in self._reported.items() if oid in kept}
        self._priced = {oid: o for oid, o in self._priced.items() if oid in kept}
        self._notional = {oid: n for oid, n in self._notional.items() if oid in kept}
        self._client_ids &= cids
        self._owned.keep_only(cids)

    def claim(self, client_order_id: str, sent: Sent | None = None) -> None:
        """Mark a client order id as this run's: updates for it are reported even before its order id is known
        (with `sent`, only for an order that matches it)."""
        self._client_ids.add(client_order_id)
        if sent is not None:
            self._owned.claim(client_order_id, sent)

    def expect(self, client_order_id: str, sent: Sent) -> None:
        """What a resumed run's journal says was sent under a client order id by an earlier process: checked as
        `claim`'s `sent` is, but not this process's submit (its lookup is retried as any read, not `unanswered`)."""
        self._owned.expect(client_order_id, sent)

    def foreign(self, order: BrokerOrder) -> dict[str, tuple[str, str]]:
        """How an order under one of the run's client order ids differs from what the run sent under it (empty:
        it is the run's, or nothing is known of what was sent)."""
        return {} if order.order_id in self._latest else self._owned.differences(order)

    def refuse_foreign(self, order: BrokerOrder) -> None:
        """Raise `ClientOrderIdConflictError` for an order found under a client order id the run sent, not its own."""
        if order.order_id not in self._latest:
            self._owned.refuse_foreign(order)

    def claimed(self, client_order_id: str) -> bool:
        return client_order_id in self._client_ids

    def unanswered(self, client_order_id: str) -> bool:
        """True for a client order id this process submitted whose order it has not learned (its outcome unknown).
        Not a replace's: nothing asks after one again (the engine's checks do, each, after a submit's)."""
        sent = self._owned.sent(client_order_id)
        return (
            sent is not None
            and not sent.replace
            and all(order.client_order_id != client_order_id for order in self._latest.values())
        )

    def owns(self, order: BrokerOrder) -> bool:
        if order.order_id in self._latest:
            return True
        return order.client_order_id in self._client_ids and not self.foreign(order)

    def owns_ids(self, order_id: object, client_order_id: object) -> bool:
        """Whether the raw ids of an order repeg could not read name one of the run's orders."""
        return str(order_id) in self._latest or str(client_order_id) in self._client_ids

    def get(self, order_id: str) -> BrokerOrder | None:
        return self._latest.get(order_id)

    def working_ids(self) -> list[str]:
        """The open orders of the run listening; none while no run listens. An order an ended run left open is not
        polled (the silence watchdog, a reconnect): nothing could be pushed, and a resume asks the broker again."""
        if not self._sinks:
            return []
        return [o.order_id for o in self._latest.values() if o.status.is_open]

    def _learn(self, order: BrokerOrder) -> None:
        if advances(self._latest.get(order.order_id), order):
            self._latest[order.order_id] = order

    def remember(self, order: BrokerOrder) -> None:
        """Record a synchronous REST answer (the caller has it already: nothing is pushed)."""
        self.claim(order.client_order_id)
        self._learn(order)

    def adopt(self, order: BrokerOrder) -> None:
        """Follow an order the run asked about but this process never sent (a resumed run's order).

        The caller records the state it asked for itself, so it counts as reported: later news is pushed, and
        a later fill is priced from this state, never re-reported from zero.
        """
        if self.owns(order) or self.foreign(order):
            return
        self.claim(order.client_order_id)
        self._latest[order.order_id] = order
        self._reported[order.order_id] = order
        if is_priced(order):
            self._priced[order.order_id] = order

    def absorb(
        self,
        order: BrokerOrder,
        ts: datetime,
        hint: str | None = None,
        execution: tuple[Decimal, Decimal] | None = None,
    ) -> OrderUpdate | None:
        """Take news about one of our orders; push and return the update if it advances what was pushed.
        `execution`: the quantity and price of the execution a stream fill event reports."""
        if not self.owns(order):
            return None
        self._learn(order)
        old = self._reported.get(order.order_id)
        if advances(old, order):
            self._reported[order.order_id] = order
        elif not is_refusal(old, order, hint):
            return None
        fill = self._fill(order, ts, execution)
        update = OrderUpdate(event=event_for(order, fill, hint), order=order, fill=fill, ts=ts)
        log.info(
            "order_update",
            order_id=order.order_id,
            symbol=order.symbol,
            order_event=update.event.value,
            status=order.status.value,
            filled_qty=str(order.filled_qty),
        )
        for sink in self._sinks:
            sink(update)
        return update

    def _fill(
        self, order: BrokerOrder, ts: datetime, execution: tuple[Decimal, Decimal] | None
    ) -> Fill | None:
        """The execution `order` reports beyond the last priced state reported, which it then replaces (not when
        it is unpriced, nor a stale state with fewer fills, e.g. a late refusal). Priced at the stream's
        `execution` price when that execution is all the change; else from the averages, whose quotient is
        rounded (to 28 digits, or from an average Alpaca rounded) where the execution's own price is exact, unless
        that price contradicts the averages (it is then the order's average, as some of Alpaca's docs say)."""
        base = self._priced.get(order.order_id)
        before = self._notional_of(base)
        fill = fill_between(base, order, ts, before)
        if fill is not None and execution is not None and execution[0] == fill.qty:
            own = Fill(order_id=fill.order_id, qty=fill.qty, price=execution[1], ts=ts)
            fill = own if agrees(before, own, order) else fill
        if is_priced(order) and (base is None or order.filled_qty >= base.filled_qty):
            self._priced[order.order_id] = order
        if fill is not None:
            with localcontext(DECIMAL_CONTEXT):
                self._notional[order.order_id] = before + fill.qty * fill.price
        return fill

    def _notional_of(self, base: BrokerOrder | None) -> Decimal:
        """The notional of the fills reported up to `base`: their sum, or (for an adopted order, whose earlier
        fills this process never saw) the broker's figure."""
        if base is None:
            return ZERO
        known = self._notional.get(base.order_id)
        if known is not None:
            return known
        if base.filled_avg_price is None:
            return ZERO
        with localcontext(DECIMAL_CONTEXT):
            return base.filled_qty * base.filled_avg_price


def fill_qty_total(updates: list[OrderUpdate]) -> Decimal:
    """Sum of reported fill quantities (a helper for invariant checks)."""
    return sum((u.fill.qty for u in updates if u.fill is not None), ZERO)


def log_unreadable_update(tracker: OrderTracker, data: dict[str, object], exc: Exception) -> None:
    """A trade update repeg cannot read: a warning when it is (or may be) of one of the run's orders, whose news is
    then known only at the next poll; at debug when of another client's order (the stream carries every order of
    the account, and another client's stop order is of a kind repeg never sends and cannot read)."""
    raw = data.get("order")
    ids = (raw.get("id"), raw.get("client_order_id")) if isinstance(raw, dict) else (None, None)
    theirs = ids != (None, None) and not tracker.owns_ids(*ids)
    (log.debug if theirs else log.warning)(
        "trade_update_unreadable", error=type(exc).__name__, order_id=ids[0]
    )
