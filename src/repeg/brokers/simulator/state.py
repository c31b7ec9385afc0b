"""A simulated order's lifecycle: one transition table, and the mutable record the exchange keeps per order.

The table mirrors Alpaca's order states (see `../shared/alpaca/README.md`): a replace or cancel request puts an
order in a pending state in which it can still fill; the request then completes, or fails if the order filled
meanwhile. Any (status, event) pair missing from `ORDER_TRANSITIONS` is a simulator bug and raises
`IllegalTransitionError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from repeg.domain.orders import BrokerOrder, OrderStatus, OrderType, Side
from repeg.domain.ticks import ZERO
from repeg.engine.clock import TimerHandle
from repeg.errors import IllegalTransitionError, InvariantViolationError


class SimEvent(StrEnum):
    ACK = "ack"  # the exchange accepted the order
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"  # the last execution: nothing remains
    CANCEL_REQUEST = "cancel_request"
    CANCEL_DONE = "cancel_done"
    REPLACE_REQUEST = "replace_request"
    REPLACE_DONE = "replace_done"
    REPLACE_FAILED = "replace_failed"  # the order filled while the replace was pending: it stays working
    REJECT = "reject"


#: Average prices that do not divide out exactly are reported to 1e-9 (Alpaca reports fewer digits still).
_AVERAGE_PRECISION = Decimal("1e-9")

S = OrderStatus
E = SimEvent

#: What can follow what. Fills stay possible in the pending states: a cancel or replace can lose the race.
ORDER_TRANSITIONS: dict[tuple[OrderStatus, SimEvent], OrderStatus] = {
    (S.PENDING_NEW, E.ACK): S.NEW,
    (S.PENDING_NEW, E.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.PENDING_NEW, E.REJECT): S.REJECTED,
    (S.NEW, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.NEW, E.FILL): S.FILLED,
    (S.NEW, E.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.NEW, E.REPLACE_REQUEST): S.PENDING_REPLACE,
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, E.CANCEL_REQUEST): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, E.REPLACE_REQUEST): S.PENDING_REPLACE,
    (S.PENDING_CANCEL, E.ACK): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.PARTIAL_FILL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.FILL): S.FILLED,
    (S.PENDING_CANCEL, E.CANCEL_DONE): S.CANCELED,
    (S.PENDING_REPLACE, E.PARTIAL_FILL): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.FILL): S.FILLED,
    (S.PENDING_REPLACE, E.REPLACE_DONE): S.REPLACED,
    (S.PENDING_REPLACE, E.REPLACE_FAILED): S.NEW,
}

#: Statuses in which a cancel or replace request is refused (Alpaca answers HTTP 422).
NOT_CANCELABLE: frozenset[OrderStatus] = frozenset(
    {S.FILLED, S.CANCELED, S.EXPIRED, S.REPLACED, S.REJECTED, S.PENDING_REPLACE}
)

#: Statuses in which a replace is refused: those above, and orders not yet working or already being cancelled.
NOT_REPLACEABLE: frozenset[OrderStatus] = NOT_CANCELABLE | {S.PENDING_NEW, S.PENDING_CANCEL}


def next_status(status: OrderStatus, event: SimEvent) -> OrderStatus:
    """The status after `event`; raises `IllegalTransitionError` for a pair the table does not allow."""
    found = ORDER_TRANSITIONS.get((status, event))
    if found is None:
        raise IllegalTransitionError("simulated order", status.value, event.value)
    return found


@dataclass(slots=True, eq=False)
class SimOrder:
    """The exchange's own record of one order id. Mutable, private to the simulator; `snapshot()` crosses out."""

    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    limit_units: int | None
    whole_shares: bool
    immediate_or_cancel: bool
    created_at: datetime
    updated_at: datetime
    #: Price used to reserve buying power (the limit, or the ask at submission for a market buy).
    reserve_price: Decimal
    status: OrderStatus = S.PENDING_NEW
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    replaces: str | None = None
    replaced_by: str | None = None
    #: When the order (at its current price) joined the book, for queue-aware fill models.
    queued_since_ns: int = 0
    #: Cash (buy) or shares (sell) currently reserved for this order by the ledger.
    reserved: Decimal = ZERO
    #: The pending fill callback, cancelled when the order leaves the book.
    timer: TimerHandle | None = None
    #: Filled quantity when a replace was requested (a fill during the replace makes it fail).
    filled_at_replace: Decimal | None = None
    #: The last `snapshot()`, valid until the next `apply` (every change of a reported field goes with one).
    cached_snapshot: BrokerOrder | None = None

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    def apply(self, event: SimEvent, now: datetime) -> None:
        """Move through the transition table; a failed replace returns to the status its fills imply."""
        status = next_status(self.status, event)
        if status is S.NEW and self.filled_qty > ZERO:
            status = S.PARTIALLY_FILLED
        self.status = status
        self.updated_at = now
        self.cached_snapshot = None

    def average_price(self) -> Decimal | None:
        """Mean execution price of this order id: exact when it divides out, else to 1e-9 (half-even)."""
        if self.filled_qty == ZERO:
            return None
        average = self.filled_notional / self.filled_qty
        exponent = average.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -9:
            average = average.quantize(_AVERAGE_PRECISION, rounding=ROUND_HALF_EVEN)
        return average

    def record_fill(self, qty: Decimal, price: Decimal, now: datetime) -> bool:
        """Add an execution and move to (partially) filled; True when nothing remains."""
        if not ZERO < qty <= self.remaining:
            raise InvariantViolationError(
                f"order {self.order_id}: execution of {qty} with {self.remaining} left"
            )
        self.filled_qty += qty
        self.filled_notional += qty * price
        done = self.remaining == ZERO
        self.apply(SimEvent.FILL if done else SimEvent.PARTIAL_FILL, now)
        return done

    def snapshot(self) -> BrokerOrder:
        """The order as a broker reports it (cached: engines poll the same state repeatedly)."""
        if self.cached_snapshot is None:
            self.cached_snapshot = self._report()
        return self.cached_snapshot

    def _report(self) -> BrokerOrder:
        return BrokerOrder(
            order_id=self.order_id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            qty=self.qty,
            order_type=self.order_type,
            limit_price=self.limit_price,
            status=self.status,
            filled_qty=self.filled_qty,
            filled_avg_price=self.average_price(),
            created_at=self.created_at,
            updated_at=self.updated_at,
            replaces=self.replaces,
            replaced_by=self.replaced_by,
        )
