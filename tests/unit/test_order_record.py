"""OrderRecord.merge and the chain readers: terminal statuses stick, fills only grow, replacements are read right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from repeg.domain.order_record import (
    OrderRecord,
    never_closed,
    stillborn_replacement_of,
    successor_of,
    unread_replacement,
)
from repeg.domain.orders import BrokerOrder, OrderStatus, OrderType, Side

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def report(status: OrderStatus, seconds: float = 0, **extra: object) -> BrokerOrder:
    fields: dict[str, object] = {
        "order_id": "o1",
        "client_order_id": "c1",
        "symbol": "XYZ",
        "side": Side.BUY,
        "qty": Decimal(100),
        "order_type": OrderType.LIMIT,
        "limit_price": Decimal("100.00"),
        "status": status,
        "created_at": T0,
        "updated_at": at(seconds),
        **extra,
    }
    return BrokerOrder.model_validate(fields)


def record(**fields: object) -> OrderRecord:
    return OrderRecord.model_validate({"client_order_id": "c1", "attempt": 0, **fields})


# --- merge ---------------------------------------------------------------------------------------------------


def test_a_report_with_the_same_timestamp_updates_the_status() -> None:
    merged = record().merge(report(OrderStatus.NEW, 5)).merge(report(OrderStatus.PARTIALLY_FILLED, 5))
    assert merged.status is OrderStatus.PARTIALLY_FILLED


def test_a_terminal_report_counts_even_when_its_timestamp_is_older() -> None:
    merged = record().merge(report(OrderStatus.NEW, 5)).merge(report(OrderStatus.CANCELED, 4))
    assert merged.status is OrderStatus.CANCELED


def test_a_terminal_status_sticks_against_a_later_open_report() -> None:
    filled = report(OrderStatus.FILLED, 5, filled_qty=Decimal(100), filled_avg_price=Decimal("100.00"))
    merged = record().merge(filled).merge(report(OrderStatus.NEW, 6))
    assert merged.status is OrderStatus.FILLED


def test_a_report_of_the_same_fills_without_a_price_keeps_the_known_average() -> None:
    fill = report(OrderStatus.PARTIALLY_FILLED, 5, filled_qty=Decimal(40), filled_avg_price=Decimal("99.98"))
    merged = record().merge(fill).merge(report(OrderStatus.PARTIALLY_FILLED, 6, filled_qty=Decimal(40)))
    assert merged.avg_price == Decimal("99.98")


def test_a_report_of_the_same_fills_supplies_a_missing_average() -> None:
    known = record(status=OrderStatus.PARTIALLY_FILLED, filled_qty=Decimal(40), updated_at=at(5))
    fill = report(OrderStatus.PARTIALLY_FILLED, 6, filled_qty=Decimal(40), filled_avg_price=Decimal("99.98"))
    assert known.merge(fill).avg_price == Decimal("99.98")


def test_a_later_report_without_replaces_keeps_the_replaced_order_id() -> None:
    merged = record().merge(report(OrderStatus.NEW, 5, replaces="o0")).merge(report(OrderStatus.FILLED, 6))
    assert merged.replaces == "o0"


# --- chain readers ---------------------------------------------------------------------------------------------


def test_a_rejected_replacement_is_not_the_successor() -> None:
    original = record(order_id="o1", status=OrderStatus.NEW)
    rejected = record(client_order_id="c2", order_id="o2", replaces="o1", status=OrderStatus.REJECTED)
    assert successor_of((original, rejected), original) is None


def test_the_successor_is_the_latest_replacement_of_the_order() -> None:
    original = record(order_id="o1", status=OrderStatus.REPLACED)
    first = record(client_order_id="c2", order_id="o2", replaces="o1", status=OrderStatus.CANCELED)
    latest = record(client_order_id="c3", order_id="o3", replaces="o1", status=OrderStatus.NEW)
    assert successor_of((original, first, latest), original) is latest


def test_an_order_is_never_its_own_successor() -> None:
    # A (malformed) report whose `replaces` names the order's own id must not make the chain point at itself.
    replaced_in_place = record(order_id="o1", replaces="o1", status=OrderStatus.NEW)
    assert successor_of((replaced_in_place,), replaced_in_place) is None


def test_a_replacement_known_by_id_is_not_unread() -> None:
    # The broker reported the replacement (its id is known) though without naming the order it replaces.
    original = record(order_id="o1", status=OrderStatus.REPLACED, replaced_by="o2")
    replacement = record(client_order_id="c2", order_id="o2", status=OrderStatus.NEW)
    assert unread_replacement((original, replacement), original) is None


def test_an_order_that_filled_before_its_replace_has_no_unread_replacement() -> None:
    # Filled first; the broker's late "replaced" report names a replacement, but the fill stuck.
    filled = report(OrderStatus.FILLED, 5, filled_qty=Decimal(100), filled_avg_price=Decimal("100.00"))
    original = record().merge(filled).merge(report(OrderStatus.REPLACED, 6, replaced_by="o2"))
    assert unread_replacement((original,), original) is None


def test_an_earlier_order_acknowledged_and_never_reported_closed_is_named() -> None:
    # The tests beside this one check only what is *not* reported: a reader answering None for every chain passed
    # them all. Here the first order of the chain is still open at the broker as far as the leg knows.
    earlier = record(order_id="o1", status=OrderStatus.NEW)
    active = record(client_order_id="c2", order_id="o2", status=OrderStatus.NEW)
    assert never_closed((earlier, active), "c2") is earlier


def test_an_earlier_order_never_acknowledged_or_closed_is_not_named() -> None:
    unacknowledged = record(status=OrderStatus.NEW)  # no broker order id: never reached the broker's books
    closed = record(client_order_id="c2", order_id="o2", status=OrderStatus.CANCELED)
    assert never_closed((unacknowledged, closed, record(client_order_id="c3")), "c3") is None


def test_a_replacement_the_broker_named_but_never_reported_is_unread() -> None:
    original = record(order_id="o1", status=OrderStatus.REPLACED, replaced_by="o2")
    assert unread_replacement((original,), original) == "o2"


def test_the_active_order_is_never_reported_as_never_closed() -> None:
    active = record(order_id="o1", status=OrderStatus.NEW)
    assert never_closed((active,), "c1") is None


def test_a_replacement_only_accepted_is_stillborn() -> None:
    original = record(order_id="o1", status=OrderStatus.NEW)
    replacement = record(client_order_id="c2", order_id="o2", replaces="o1", status=OrderStatus.ACCEPTED)
    assert stillborn_replacement_of(replacement, original)


def test_a_replacement_that_filled_is_not_stillborn() -> None:
    original = record(order_id="o1", status=OrderStatus.NEW)
    replacement = record(
        client_order_id="c2",
        order_id="o2",
        replaces="o1",
        status=OrderStatus.PENDING_NEW,
        filled_qty=Decimal(10),
    )
    assert not stillborn_replacement_of(replacement, original)
