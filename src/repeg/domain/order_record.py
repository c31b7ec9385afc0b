"""One broker order of a leg's replacement chain as the run knows it (`OrderRecord`), and `evolve`, the fold's
copy-with-changes of a frozen model.

`OrderRecord.merge` folds the broker's reports of one order idempotently: terminal statuses stick and the
cumulative filled quantity only grows (with the average price reported with it), so a duplicated or late update
never counts twice. `repeg.domain.leg` sums these records over a leg's chain; `successor_of`, `unread_replacement`
and `never_closed` read the chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from repeg.domain.buying_power import BuyingPowerCap
from repeg.domain.orders import BrokerOrder, Fill, OrderStatus, OrderType
from repeg.domain.ticks import ZERO

_Model = TypeVar("_Model", bound=BaseModel)
#: Sums of executions never rounded, whatever the caller's decimal context: the notional is the exact sum.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_set_attr = object.__setattr__
_CENT = Decimal("0.01")


def evolve(model: _Model, changes: Mapping[str, object]) -> _Model:
    """`model` with `changes` applied: what `model_copy(update=changes)` returns, without its copy machinery.

    Like `model_copy`, it does not validate. Only the fold (`repeg.domain.leg_fold`) and `OrderRecord.merge` call it, and only with values taken from
    already-validated events and broker models or derived from the state's own fields, so every field keeps
    its declared type. It runs several times per event, which is why `model_copy`'s generic path is avoided.
    """
    cls = type(model)
    copied = cls.__new__(cls)
    _set_attr(copied, "__dict__", {**model.__dict__, **changes})
    _set_attr(copied, "__pydantic_fields_set__", model.__pydantic_fields_set__.union(changes))
    _set_attr(copied, "__pydantic_extra__", None)
    _set_attr(copied, "__pydantic_private__", None)
    return copied


class OrderRecord(BaseModel):
    """One broker order of a leg's chain, as far as the run knows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_order_id: str
    attempt: int
    order_id: str | None = None
    order_type: OrderType | None = None
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    #: None until the broker has reported the order at least once.
    status: OrderStatus | None = None
    filled_qty: Decimal = ZERO
    avg_price: Decimal | None = None
    #: Sum of qty x price of the executions that make up `filled_qty`, when each was seen in turn (None when one
    #: was not: a jump in the cumulative quantity reported without its execution, then `avg_price` prices it).
    #: The broker's average is rounded (to 1e-9 by the simulator): times the quantity it is not the notional.
    fill_notional: Decimal | None = None
    #: True for an order sent after the leg escalated (its fills do not count as "before escalation").
    escalation: bool = False
    #: For a replacement: the broker id of the order it replaces.
    replaces: str | None = None
    #: For a replaced order: the broker id of its replacement, as the broker reported it.
    replaced_by: str | None = None
    #: The policy's price step this order was sent at (None when not a schedule price).
    step: int | None = None
    #: For an escalated buy cut to the buying power left: the cut (its leg ends once this order closes).
    capped: BuyingPowerCap | None = None
    updated_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status is not None and self.status.is_terminal

    @property
    def notional(self) -> Decimal | None:
        """What the fills of this order cost: the sum of its executions when each was seen, else the filled
        quantity times the broker's average price; None while fills are reported without a price.

        Not the sum when it agrees with the broker's figure to that figure's last digit: its further digits are
        then the rounding of execution prices derived from the broker's averages (Alpaca reports an order's
        cumulative quantity and average only), and the broker's figure is the exact one. An average's last digit
        is a cent at most: Alpaca trims trailing zeros, and "10" is no average rounded to the dollar."""
        avg = self.avg_price
        executed = self.fill_notional
        if avg is None:
            return executed
        broker = self.filled_qty * avg
        if executed is None:
            return broker
        unit = (
            broker
            if int(avg.as_tuple().exponent) <= -2
            else _CENT.scaleb(int(self.filled_qty.as_tuple().exponent))
        )
        return broker if executed.quantize(unit, context=_EXACT) == broker else executed

    def _fill_notional_after(self, order: BrokerOrder, fill: Fill | None) -> Decimal | None:
        """`fill_notional` once the cumulative quantity grew to `order.filled_qty`: exact only when `fill` is the
        one execution that took it there from an exactly known notional."""
        if fill is None or fill.order_id != order.order_id or fill.qty != order.filled_qty - self.filled_qty:
            return None
        before = ZERO if self.filled_qty == ZERO else self.fill_notional
        return None if before is None else _EXACT.fma(fill.qty, fill.price, before)

    def merge(self, order: BrokerOrder, fill: Fill | None = None) -> OrderRecord:
        """Fold the broker's view of this order (and the execution reported with it) in: terminal statuses
        stick, cumulative fills only grow."""
        status = self.status
        if status is None or not status.is_terminal:
            newer = self.updated_at is None or order.updated_at >= self.updated_at
            status = order.status if newer or order.status.is_terminal else status
        filled, avg, exact = self.filled_qty, self.avg_price, self.fill_notional
        if order.filled_qty > filled:
            filled, avg, exact = (
                order.filled_qty,
                order.filled_avg_price,
                self._fill_notional_after(order, fill),
            )
        elif order.filled_qty == filled and avg is None:
            avg = order.filled_avg_price
        latest = order.updated_at if self.updated_at is None else max(order.updated_at, self.updated_at)
        return evolve(
            self,
            {
                "order_id": order.order_id,
                "order_type": order.order_type,
                "qty": order.qty,
                "limit_price": order.limit_price,
                "status": status,
                "filled_qty": filled,
                "avg_price": avg,
                "fill_notional": exact,
                "replaces": order.replaces or self.replaces,
                "replaced_by": order.replaced_by or self.replaced_by,
                "updated_at": latest,
            },
        )


def successor_of(orders: Sequence[OrderRecord], replaced: OrderRecord | None) -> OrderRecord | None:
    """The reported replacement of `replaced`: the latest order naming it that the broker did not reject (an
    earlier, rejected replacement of the same order never replaced it)."""
    order_id = None if replaced is None else replaced.order_id
    if order_id is None:
        return None
    for record in reversed(orders):
        if (
            record.replaces == order_id
            and record.order_id != order_id
            and record.status is not OrderStatus.REJECTED
        ):
            return record
    return None


def unread_replacement(orders: Sequence[OrderRecord], replaced: OrderRecord | None) -> str | None:
    """The broker id of `replaced`'s replacement when the broker reported it (`replaced_by`) but never the order
    itself (a replace whose answer was lost, and every read of the replacement failed): it may be open at the
    broker and its fills are unknown. None when `replaced` was not replaced or its replacement is known."""
    if replaced is None or replaced.status is not OrderStatus.REPLACED or replaced.replaced_by is None:
        return None
    if successor_of(orders, replaced) is not None:
        return None
    known = any(record.order_id == replaced.replaced_by for record in orders)
    return None if known else replaced.replaced_by


def never_closed(orders: Sequence[OrderRecord], active_client_order_id: str | None) -> OrderRecord | None:
    """The first earlier order of a chain (not the active one) the broker acknowledged but never reported closed:
    its last fills are unknown, so the leg's remainder cannot be sized (see `OrderGateway`)."""
    for record in orders:
        if (
            record.order_id is not None
            and not record.is_terminal
            and record.client_order_id != active_client_order_id
        ):
            return record
    return None


#: Orders of a replacement not (yet) reported working: a refused replace leaves the order it was to replace live.
_NOT_YET_WORKING = frozenset({None, OrderStatus.PENDING_NEW, OrderStatus.ACCEPTED})


def stillborn_replacement_of(active: OrderRecord | None, original: OrderRecord) -> bool:
    """True when `active` is the replacement of `original` and the broker never reported it working or filled."""
    if active is None or original.order_id is None or active.replaces != original.order_id:
        return False
    return active.status in _NOT_YET_WORKING and active.filled_qty == ZERO
