"""The built-in exchange: a `Broker` that matches orders against a quote tape on the injected clock.

What it guarantees (the engine relies on these):

- Requests follow Alpaca's rules (`../shared/alpaca/README.md`): duplicate client order ids are refused even after
  the first order closed; limit prices must be on the tick grid; a buy must fit buying power and a sell the
  shares held (a market buy executing above the ask it was checked at is cut to the cash left, the rest
  cancelled: cash never goes negative); a replace creates a NEW order id and the old one goes `replaced`; cancel or replace of a closed
  order, or while a replace is pending, raises `OrderNotCancelableError`. A pending replace that loses the race to
  a fill fails: the replacement goes `rejected` and the original, if still live, is pushed as
  `order_replace_rejected`. A lookup by client order id refuses an order that is not what was sent under that id
  (`ClientOrderIdConflictError`: another run's under the same run id), as the Alpaca adapter does (`SentOrders`).
- Executions come from the pluggable `FillModel` (default: Alpaca paper rules). A resting order is never matched
  by iterating quotes: its next execution is computed once and scheduled with `clock.call_at`; the timer is
  cancelled when the order is cancelled or replaced.
- With zero latency, `submit_order` returns the accepted order at once and any execution happens in a later
  loop callback, so the caller always learns of the order before its fills. Updates are delivered to every sink
  in the order they happened, from loop callbacks (never from inside the caller's own request).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import structlog

from repeg.brokers.base import Sent, SentOrders, Unsubscribe, UpdateSink
from repeg.brokers.simulator.account import SimAccount
from repeg.brokers.simulator.admission import Admission, check_limit_price
from repeg.brokers.simulator.delivery import Outbox
from repeg.brokers.simulator.fill_models import FillModel, FillPlan, RestingOrder
from repeg.brokers.simulator.latency import NO_LATENCY, LatencyModel
from repeg.brokers.simulator.ledger import Ledger
from repeg.brokers.simulator.state import NOT_CANCELABLE, NOT_REPLACEABLE, SimEvent, SimOrder
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import (
    BrokerOrder,
    Fill,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    ReplaceRequest,
    Side,
    TimeInForce,
)
from repeg.domain.ticks import ZERO, from_units, to_units
from repeg.engine.clock import Clock
from repeg.errors import (
    DuplicateClientOrderIdError,
    InvariantViolationError,
    OrderNotCancelableError,
    OrderNotFoundError,
    OrderRejectedError,
    UnknownSymbolError,
)
from repeg.market.tape import QuoteTape, from_ns, to_ns

log = structlog.get_logger(__name__)


class SimulatedBroker:
    """An in-process exchange and cash account over a `QuoteTape` (see the module docstring)."""

    def __init__(
        self,
        tape: QuoteTape,
        clock: Clock,
        account: SimAccount,
        *,
        fill_model: FillModel,
        latency: LatencyModel = NO_LATENCY,
        checks_ownership: bool = True,
    ) -> None:
        """`checks_ownership`: the broker is its client's adapter too (in process), so a lookup by client order id
        refuses an order that is not what was sent under that id; False on a server, whose clients check their own
        (`RemoteBroker`): there a lookup by a run's resumed process must find its order, whoever sent last."""
        self._tape = tape
        self._clock = clock
        self._fill_model = fill_model
        self._latency = latency
        self._ledger = Ledger(tape, account)
        self._known = frozenset(tape.symbols) | frozenset(account.positions)
        self._non_tradable = frozenset(account.non_tradable)
        self._non_fractionable = frozenset(account.non_fractionable)
        self._admission = Admission(tape, self._non_tradable, self._non_fractionable)
        self._orders: dict[str, SimOrder] = {}
        self._open: dict[str, SimOrder] = {}
        self._by_client: dict[str, str] = {}
        #: What each request sent under its client order id: the lookup refuses another run's order under one.
        self._sent = SentOrders()
        self._checks_ownership = checks_ownership
        self._sequence = 0
        self._outbox = Outbox(clock)
        self._executions: list[Fill] = []

    # --- Broker protocol: identity ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "simulator"

    @property
    def supports_replace(self) -> bool:
        return True

    @property
    def pushes_updates(self) -> bool:
        return True

    @property
    def fill_model(self) -> FillModel:
        return self._fill_model

    @property
    def executions(self) -> tuple[Fill, ...]:
        """Every execution so far, in order (for tests and reports that check fills against quotes)."""
        return tuple(self._executions)

    # --- Broker protocol: orders -----------------------------------------------------------------------------

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        now = self._clock.now()
        self._sent.claim(request.client_order_id, Sent.submit(request))
        try:
            self._check_client_id(request.client_order_id)
            self._admission.check_tradable(request.symbol, request.qty)
            order = self._new_order(
                request,
                now,
                symbol=request.symbol,
                side=request.side,
                order_type=request.order_type,
                tif=request.time_in_force,
                replaces=None,
            )
            self._check_funds(order, freed=ZERO)
        except OrderRejectedError as exc:
            log.debug(
                "sim_order_rejected",
                symbol=request.symbol,
                client_order_id=request.client_order_id,
                reason=str(exc),
                code=exc.code,
            )
            raise
        self._register(order)
        if self._latency.submit_ack:
            self._outbox.emit(OrderEvent.PENDING_NEW, order)
            self._outbox.schedule(now + self._latency.submit_ack, lambda at: self._on_ack(order, at))
        else:
            self._accept(order, now)
        self._outbox.flush_later()
        return order.snapshot()

    async def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        now = self._clock.now()
        old = self._find(request.order_id)
        if old.status in NOT_REPLACEABLE:
            raise OrderNotCancelableError(old.order_id, old.status.value, broker_message=_state_message(old))
        if old.order_type is not OrderType.LIMIT:
            raise OrderRejectedError(f"order {old.order_id}: only limit orders can be replaced")
        self._sent.claim(request.client_order_id, Sent.replacing(old.snapshot(), request.limit_price))
        self._check_client_id(request.client_order_id)
        remainder = old.qty - old.filled_qty
        if request.qty > remainder:
            # The caller has not yet seen some fills of the order it replaces: a replacement for more than the
            # unfilled remainder would over-fill the caller's intent, so it is capped (those fills still reach
            # the caller through their own updates).
            request = request.model_copy(update={"qty": remainder})
        self._admission.check_tradable(old.symbol, request.qty)
        new = self._new_order(
            request,
            now,
            symbol=old.symbol,
            side=old.side,
            order_type=OrderType.LIMIT,
            tif=TimeInForce.IOC if old.immediate_or_cancel else TimeInForce.DAY,  # kept, as Alpaca keeps it
            replaces=old.order_id,
        )
        self._check_funds(new, freed=old.reserved)
        self._register(new, covered=old.reserved)
        old.apply(SimEvent.REPLACE_REQUEST, now)
        old.filled_at_replace = old.filled_qty
        if self._latency.replace:
            self._outbox.emit(OrderEvent.PENDING_REPLACE, old)
            self._outbox.schedule(
                now + self._latency.replace, lambda at: self._complete_replace(old, new, at)
            )
        else:
            self._complete_replace(old, new, now)
        self._outbox.flush_later()
        return new.snapshot()

    async def cancel_order(self, order_id: str) -> None:
        order = self._find(order_id)
        if order.status in NOT_CANCELABLE:
            raise OrderNotCancelableError(
                order.order_id, order.status.value, broker_message=_state_message(order)
            )
        if order.status is OrderStatus.PENDING_CANCEL:
            return  # already on its way out
        now = self._clock.now()
        order.apply(SimEvent.CANCEL_REQUEST, now)
        if self._latency.cancel:
            self._outbox.emit(OrderEvent.PENDING_CANCEL, order)
            self._outbox.schedule(now + self._latency.cancel, lambda at: self._complete_cancel(order, at))
        else:
            self._complete_cancel(order, now)
        self._outbox.flush_later()

    async def get_order(self, order_id: str) -> BrokerOrder:
        return self._find(order_id).snapshot()

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        """The order under `client_order_id`; `ClientOrderIdConflictError` for one that is not what was sent under
        it (another run's, under the same run id, on a broker the Python API reuses)."""
        order_id = self._by_client.get(client_order_id)
        if order_id is None:
            return None
        order = self._orders[order_id].snapshot()
        if self._checks_ownership:
            self._sent.refuse_foreign(order)
        return order

    def expect(self, client_order_id: str, sent: Sent) -> None:
        """`ExpectsSent`: what a resumed run's journal says was sent under `client_order_id`."""
        self._sent.expect(client_order_id, sent)

    async def list_open_orders(self) -> list[BrokerOrder]:
        return [order.snapshot() for order in self._open.values()]

    # --- Broker protocol: account ----------------------------------------------------------------------------

    async def get_account(self) -> Account:
        return self._ledger.account(to_ns(self._clock.now()))

    async def get_positions(self) -> list[Position]:
        return self._ledger.positions(to_ns(self._clock.now()))

    async def get_asset(self, symbol: str) -> Asset:
        if symbol not in self._known:
            raise UnknownSymbolError(symbol)
        return Asset(
            symbol=symbol,
            tradable=symbol not in self._non_tradable and symbol in self._tape,
            fractionable=symbol not in self._non_fractionable,
        )

    def subscribe_updates(self, sink: UpdateSink) -> Unsubscribe:
        return self._outbox.subscribe(sink)

    # --- request checks --------------------------------------------------------------------------------------

    def _find(self, order_id: str) -> SimOrder:
        order = self._orders.get(order_id)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order

    def _check_client_id(self, client_order_id: str) -> None:
        if client_order_id in self._by_client:
            raise DuplicateClientOrderIdError(
                client_order_id, broker_message="client_order_id must be unique"
            )

    def _check_funds(self, order: SimOrder, *, freed: Decimal) -> None:
        if order.side is Side.BUY:
            self._ledger.check_affordable(order, freed=freed)
        else:
            self._ledger.check_deliverable(order, freed=freed)

    def _new_order(
        self,
        request: OrderRequest | ReplaceRequest,
        now: datetime,
        *,
        symbol: str,
        side: Side,
        order_type: OrderType,
        tif: TimeInForce,
        replaces: str | None,
    ) -> SimOrder:
        """A new order record; symbol, side and type come from the request or from the order it replaces."""
        limit = request.limit_price
        check_limit_price(symbol, limit)
        return SimOrder(
            order_id=f"sim-{self._sequence + 1:08d}",  # the number is taken only if the order is registered
            client_order_id=request.client_order_id,
            symbol=symbol,
            side=side,
            qty=request.qty,
            order_type=order_type,
            limit_price=limit,
            limit_units=None if limit is None else to_units(limit),
            whole_shares=symbol in self._non_fractionable,
            immediate_or_cancel=tif is TimeInForce.IOC,
            created_at=now,
            updated_at=now,
            reserve_price=limit if limit is not None else self._market_reference(symbol, side, now),
            replaces=replaces,
        )

    def _market_reference(self, symbol: str, side: Side, now: datetime) -> Decimal:
        """The price a market buy is checked against: the ask of the latest valid quote (a sell needs none)."""
        if side is Side.SELL:
            return ZERO
        current = self._tape.index_at_ns(symbol, to_ns(now))
        index = None if current is None else self._tape.last_tradable(symbol, current)
        if index is None:
            index = self._tape.next_tradable(symbol, 0)
        if index is None:
            raise OrderRejectedError(f"{symbol}: no quote to check a market buy against")
        return from_units(int(self._tape.columns(symbol).ask[index]))

    def _register(self, order: SimOrder, *, covered: Decimal = ZERO) -> None:
        """Record a new order and reserve for it (a replacement: beyond what the order it replaces reserves)."""
        self._sequence += 1
        self._orders[order.order_id] = order
        self._open[order.order_id] = order
        self._by_client[order.client_order_id] = order.order_id
        self._ledger.reserve(order, covered=covered)

    # --- lifecycle -------------------------------------------------------------------------------------------

    def _on_ack(self, order: SimOrder, now: datetime) -> None:
        if order.is_open:
            self._accept(order, now)

    def _accept(self, order: SimOrder, now: datetime) -> None:
        order.apply(SimEvent.ACK, now)
        order.queued_since_ns = to_ns(now)
        self._outbox.emit(OrderEvent.NEW, order)
        self._arm(order, order.queued_since_ns, after=None)

    def _arm(self, order: SimOrder, now_ns: int, *, after: int | None) -> None:
        """Ask the fill model for the next execution and schedule it (an IOC remainder is cancelled instead)."""
        view = RestingOrder(
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            limit_units=order.limit_units,
            remaining=order.remaining,
            whole_shares=order.whole_shares,
            queued_since_ns=order.queued_since_ns,
        )
        plan = self._fill_model.next_fill(view, now_ns, after)
        if order.immediate_or_cancel and (after is not None or plan is None or plan.ts_ns > now_ns):
            # Only its first execution is immediate: what a partial fill leaves of an IOC is cancelled.
            self._outbox.schedule(from_ns(now_ns), lambda at: self._expire_ioc(order, at))
            return
        if plan is not None:
            self._check_plan(order, plan, now_ns)
            # Clocks tick in microseconds: round up so the fill never precedes its (nanosecond) quote.
            when = from_ns(-(-plan.ts_ns // 1000) * 1000)
            order.timer = self._outbox.schedule(when, lambda at: self._on_fill(order, plan, at))

    def _check_plan(self, order: SimOrder, plan: FillPlan, now_ns: int) -> None:
        if not ZERO < plan.qty <= order.remaining or plan.ts_ns < now_ns or plan.price_units <= 0:
            raise InvariantViolationError(
                f"fill model {self._fill_model.name} planned {plan} for {order.order_id} "
                f"with {order.remaining} remaining at {now_ns}"
            )

    def _on_fill(self, order: SimOrder, plan: FillPlan, now: datetime) -> None:
        order.timer = None
        if not order.is_open:
            return
        price = from_units(plan.price_units)
        qty = self._ledger.affordable(order, plan.qty, price)
        if qty < plan.qty:  # a market buy met a higher ask than it reserved: the cash runs out
            log.warning(
                "sim_buy_unfunded", symbol=order.symbol, order_id=order.order_id, qty=plan.qty, affordable=qty
            )
            if qty == ZERO:
                self._cancel_now(order, now)
                return
        done = order.record_fill(qty, price, now)
        self._ledger.apply_fill(order.symbol, order.side, qty, price)
        fill = Fill(order_id=order.order_id, qty=qty, price=price, ts=now)
        self._executions.append(fill)
        if done:
            self._close(order)
        self._outbox.emit(OrderEvent.FILL if done else OrderEvent.PARTIAL_FILL, order, fill)
        if done:
            return
        if qty < plan.qty:
            self._cancel_now(order, now)  # what the cash cannot pay for is cancelled
            return
        self._ledger.reserve(order)
        self._arm(order, to_ns(now), after=plan.cursor)

    def _expire_ioc(self, order: SimOrder, now: datetime) -> None:
        """An IOC order's unfilled remainder is cancelled at the instant it stops being marketable."""
        self._cancel_now(order, now)

    def _cancel_now(self, order: SimOrder, now: datetime) -> None:
        """The exchange itself cancels what remains of `order` (not a client request: no pending state)."""
        if order.status in {OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED}:
            order.apply(SimEvent.CANCEL_REQUEST, now)
        self._complete_cancel(order, now)

    def _complete_cancel(self, order: SimOrder, now: datetime) -> None:
        if order.status is not OrderStatus.PENDING_CANCEL:
            return  # filled while the cancel was on its way
        order.apply(SimEvent.CANCEL_DONE, now)
        self._close(order)
        self._outbox.emit(OrderEvent.CANCELED, order)

    def _complete_replace(self, old: SimOrder, new: SimOrder, now: datetime) -> None:
        if old.status is not OrderStatus.PENDING_REPLACE or old.filled_qty != old.filled_at_replace:
            # The old order filled (fully or in part) while the replace was pending: the replace fails.
            if new.status is OrderStatus.PENDING_NEW:  # a replacement cancelled meanwhile ends by its cancel
                new.apply(SimEvent.REJECT, now)
                self._close(new)
                self._outbox.emit(OrderEvent.REJECTED, new)
            if old.status is OrderStatus.PENDING_REPLACE:  # still live: said so, as Alpaca's stream does
                old.apply(SimEvent.REPLACE_FAILED, now)
                self._outbox.emit(OrderEvent.REPLACE_REJECTED, old)
        else:
            old.replaced_by = new.order_id
            old.apply(SimEvent.REPLACE_DONE, now)
            self._close(old)
            self._ledger.reserve(new)  # the whole of it now that the original's reservation is released
            self._outbox.emit(OrderEvent.REPLACED, old)
            if new.is_open:  # the caller may have cancelled the replacement while the replace was pending
                self._accept(new, now)
        old.filled_at_replace = None

    def _close(self, order: SimOrder) -> None:
        """The order left the book: stop its timer, free its reservation, tell the fill model, and plan again the
        orders whose next execution that changed (the model names them: an order behind it in a queue)."""
        if order.timer is not None:
            order.timer.cancel()
            order.timer = None
        self._open.pop(order.order_id, None)
        self._ledger.reserve(order)
        now_ns = to_ns(self._clock.now())
        for order_id in self._fill_model.release(order.order_id, now_ns, order.remaining):
            self._plan_again(order_id, now_ns)

    def _plan_again(self, order_id: str, now_ns: int) -> None:
        """Discard the resting order's plan and ask the fill model for its next execution from `now_ns`."""
        order = self._open.get(order_id)
        if order is None:
            raise InvariantViolationError(
                f"fill model {self._fill_model.name} named {order_id}: not on the book"
            )
        if order.timer is not None:
            order.timer.cancel()
            order.timer = None
        self._arm(order, now_ns, after=None)


def _state_message(order: SimOrder) -> str:
    return f'order is already in "{order.status.value}" state'


__all__ = ["SimulatedBroker"]
