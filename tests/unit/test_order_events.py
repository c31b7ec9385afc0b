"""The event an update carries for an order learned to be in a given status."""

import pytest

from repeg.domain.orders import OrderEvent, OrderStatus, event_for_status


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (OrderStatus.FILLED, OrderEvent.FILL),
        (OrderStatus.PARTIALLY_FILLED, OrderEvent.PARTIAL_FILL),
        (OrderStatus.CANCELED, OrderEvent.CANCELED),
        (OrderStatus.REPLACED, OrderEvent.REPLACED),
        (OrderStatus.REJECTED, OrderEvent.REJECTED),
        (OrderStatus.PENDING_REPLACE, OrderEvent.PENDING_REPLACE),
        (OrderStatus.ACCEPTED, OrderEvent.NEW),
        (OrderStatus.NEW, OrderEvent.NEW),
    ],
)
def test_each_status_reads_as_its_event(status, event):
    assert event_for_status(status) is event


@pytest.mark.parametrize("status", sorted(s for s in OrderStatus if s.is_terminal))
def test_no_terminal_status_reads_as_a_new_order(status):
    assert event_for_status(status) is not OrderEvent.NEW
