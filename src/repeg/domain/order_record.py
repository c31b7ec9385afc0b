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
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from repeg.domain.orders import BrokerOrder, OrderStatus, OrderType
from repeg.domain.ticks import ZERO

_Model = TypeVar("_Model", bound=BaseModel)
_set_attr = object.__setattr__


def evolve(model: _Model, changes: Mapping[str, object]) -> _Model:
    """`model` with `changes` applied: what `model_copy(update=changes)` returns, without its copy machinery.

    Like `model_copy`, it does not validate. Only the fold (`repeg.domain.leg`) and `OrderRecord.merge` call it, and only with values taken from
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
    #: True for an order sent after the leg escalated (its fills do not count as "before escalation").
    escalation: bool = False
    #: For a replacement: the broker id of the order it replaces.
    replaces: str | None = None
    #: For a replaced order: the broker id of its replacement, as the broker reported it.
    replaced_by: str | None = None
    #: The policy's price step this order was sent at (None when not a schedule price).
    step: int | None = None
    updated_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status is not None and self.status.is_terminal

    def merge(self, order: BrokerOrder) -> OrderRecord:
        """Fold the broker's view of this order in: terminal statuses stick, cumulative fills only grow."""
        status = self.status
        if status is None or not status.is_terminal:
            newer = self.updated_at is None or order.updated_at >= self.updated_at
            status = order.status if newer or order.status.is_terminal else status
        filled, avg = self.filled_qty, self.avg_price
        if order.filled_qty > filled or (order.filled_qty == filled and avg is None):
            filled, avg = order.filled_qty, order.filled_avg_price
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
