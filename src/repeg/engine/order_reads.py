"""The gateway's reads of a leg's orders: reconciling one after a refused change, polling a broker that does not
push, and learning of a replacement the run never read. Every state read is recorded as an `OrderUpdated` (with
`polled_update`), so the fold sees it as it would a pushed update. `OrderGateway` (engine/gateway.py) inherits these;
they share its broker, bus and the cancels it sent, for telling a polled order's refused cancel from a slow one.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from repeg.brokers.base import Broker
from repeg.config import ExecutionConfig
from repeg.domain.events import OrderUpdated
from repeg.domain.lifecycle import LegStatus
from repeg.domain.order_record import OrderRecord, unread_replacement
from repeg.domain.orders import BrokerOrder, OrderEvent, OrderStatus, OrderUpdate, event_for_status
from repeg.engine.bus import EventBus
from repeg.errors import BrokerError


def polled_update(order: BrokerOrder, now: datetime) -> OrderUpdate:
    """An `OrderUpdate` for an order state learned by asking (polling or reconciling) rather than by push."""
    return OrderUpdate(event=event_for_status(order.status), order=order, ts=now)


class OrderReads:
    """Reads of a leg's orders, recorded; the state they share with `OrderGateway`, which sets it."""

    _broker: Broker
    _bus: EventBus
    _config: ExecutionConfig
    _log: structlog.stdlib.BoundLogger
    #: When a cancel of each order went out (kept only for a broker the monitor polls).
    _cancels_sent: dict[str, datetime]

    async def reconcile(self, index: int, order_id: str) -> bool:
        """Ask the broker for the order's state and record it; False (logged) when the broker cannot answer."""
        try:
            order = await self._broker.get_order(order_id)
        except BrokerError as exc:
            self._log.warning(
                "reconcile_failed",
                correlation_id=self._bus.correlation(index),
                symbol=self._bus.leg(index).symbol,
                order_id=order_id,
                error=str(exc),
            )
            return False
        await self._bus.emit(
            OrderUpdated(**self._bus.stamp(index), update=polled_update(order, self._bus.clock.now()))
        )
        await self._learn_replacement(index, order)
        return True

    async def _learn_replacement(self, index: int, order: BrokerOrder) -> None:
        """For an order found replaced by one the leg never heard of (the replace's answer was lost, and a broker
        that does not push never reports the new order): ask for that one too, so that the leg works (or cancels)
        it instead of leaving it open at the broker unseen."""
        successor = order.replaced_by
        if successor is None or order.status is not OrderStatus.REPLACED:
            return
        if successor not in self._bus.leg(index).order_ids:
            await self.reconcile(index, successor)

    async def poll(self, index: int) -> bool:
        """For brokers without pushed updates: record, when it changed, the state of each order of the leg not
        known closed: the live one, and one it replaced whose last fills and end no update will report. True
        when a poll found an order's cancel refused, recorded as an `order_cancel_rejected` update (see
        `_cancel_refused`)."""
        leg = self._bus.leg(index)
        active = leg.active_order
        if leg.status is LegStatus.CANCELING and active is not None and active.order_id is not None:
            # A cancel this gateway did not send (resume sends the one its crash left announced): timed from now.
            self._cancels_sent.setdefault(active.order_id, self._bus.clock.now())
        refused = False
        for record in leg.orders:
            if record.order_id is not None and not record.is_terminal:
                refused = await self._poll_order(index, record, record.order_id) or refused
        leg = self._bus.leg(index)
        active = leg.active_order
        if active is not None and active.order_id is not None and active.status is OrderStatus.REPLACED:
            # Its replacement is still unknown: asked again (by the id the broker named, once it named one).
            await self.reconcile(index, unread_replacement(leg.orders, active) or active.order_id)
        return refused

    async def _poll_order(self, index: int, record: OrderRecord, order_id: str) -> bool:
        try:
            order = await self._broker.get_order(order_id)
        except BrokerError as exc:
            self._log.warning(
                "poll_failed",
                correlation_id=self._bus.correlation(index),
                symbol=self._bus.leg(index).symbol,
                order_id=order_id,
                error=str(exc),
            )
            return False
        now = self._bus.clock.now()
        refused = self._cancel_refused(order, now)
        if not refused and order.status is record.status and order.filled_qty == record.filled_qty:
            return False
        update = polled_update(order, now)
        if refused:
            update = OrderUpdate(event=OrderEvent.CANCEL_REJECTED, order=order, ts=now)
        await self._bus.emit(OrderUpdated(**self._bus.stamp(index), update=update))
        await self._learn_replacement(index, order)
        return refused

    def _cancel_refused(self, order: BrokerOrder, now: datetime) -> bool:
        """A broker that does not push never reports a cancel it accepted and then refused: the order just stays
        open. A poll one check interval or more after the cancel went out that still finds the order open, and
        not pending the cancel, takes the cancel as refused (so the leg works the order again instead of
        waiting in `canceling` to the hard stop); asking again is harmless if it was only slow."""
        sent = self._cancels_sent.get(order.order_id)
        if sent is None or order.status is OrderStatus.PENDING_CANCEL:
            return False
        if order.status.is_open and now - sent < self._config.check_interval:
            return False
        del self._cancels_sent[order.order_id]
        return order.status.is_open
