"""Every broker call the engine makes, write-ahead.

For each submit, replace or cancel the gateway first emits an `OrderIntent` (durable once the journal's `emit`
returns), then calls the broker, then emits the answer (`OrderAccepted` or `OrderFailed`). A refused change of an
order that may have filled meanwhile is followed by a reconciliation (`get_order`), recorded as `OrderUpdated`,
so a fill racing a cancel or replace is never lost and nothing is sent for quantity already filled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from enum import Enum

import structlog

from repeg.brokers.base import Broker
from repeg.config import ExecutionConfig
from repeg.domain.buying_power import BuyingPowerCap
from repeg.domain.events import IntentAction, OrderAccepted, OrderIntent
from repeg.domain.ids import client_order_id
from repeg.domain.leg import REASON_REPEG, LegState
from repeg.domain.order_record import OrderRecord, unread_replacement
from repeg.domain.orders import (
    BrokerOrder,
    OrderRequest,
    OrderStatus,
    OrderType,
    ReplaceRequest,
)
from repeg.domain.quote import Quote
from repeg.domain.ticks import ZERO
from repeg.engine.bus import EventBus
from repeg.engine.order_reads import OrderReads
from repeg.engine.refusals import record_refusal
from repeg.errors import (
    BrokerError,
    BrokerUnavailableError,
    ClientOrderIdConflictError,
    DuplicateClientOrderIdError,
    InvariantViolationError,
    OrderNotFoundError,
)
from repeg.policy.pricing import check_price_collar


class _Unanswered(Enum):
    """The broker could not say whether a request of unknown outcome created its order."""

    UNANSWERED = "unanswered"


_UNANSWERED = _Unanswered.UNANSWERED
#: A submit's answer: the order, unknown, or the broker's refusal (recorded).
_Outcome = BrokerOrder | _Unanswered | BrokerError
#: A lookup's: the order, unknown, another run's order under the id, or none.
_Found = BrokerOrder | _Unanswered | ClientOrderIdConflictError | None


def _known_closed(record: OrderRecord | None) -> bool:
    return record is not None and record.is_terminal


class OrderGateway(OrderReads):
    """Write-ahead broker calls for the legs of one run (its reads of orders: `OrderReads`)."""

    def __init__(self, broker: Broker, bus: EventBus, config: ExecutionConfig) -> None:
        self._broker = broker
        self._bus = bus
        self._config = config
        self._log = structlog.get_logger("repeg.engine").bind(run_id=bus.run_id)
        #: When a cancel of each order went out, for telling a polled order's refused cancel from a slow one;
        #: kept only for a broker the monitor polls (one that pushes reports a refusal itself).
        self._cancels_sent: dict[str, datetime] = {}
        self._polled = not broker.pushes_updates
        #: Orders the run never read (known only as the `replaced_by` of an order) whose cancel the broker accepted.
        self._cancelled_unread: set[str] = set()
        #: When each submit of unknown outcome was last sent (by client order id), for timing its re-send.
        self._unanswered_sent: dict[str, datetime] = {}

    @contextmanager
    def calling(self, broker: Broker) -> Iterator[None]:
        """Send every broker call through `broker` until the block exits (the run's end bounds their time)."""
        kept, self._broker = self._broker, broker
        try:
            yield
        finally:
            self._broker = kept

    def _check_collar(self, leg: LegState, limit_price: Decimal | None, quote: Quote | None) -> None:
        arrival = leg.arrival_quote or quote
        if limit_price is not None and arrival is not None:
            check_price_collar(limit_price, arrival, self._config.price_collar_pct)

    async def submit(
        self,
        index: int,
        order_type: OrderType,
        limit_price: Decimal | None,
        *,
        step: int | None,
        reason: str,
        quote: Quote | None,
        cap: BuyingPowerCap | None = None,
    ) -> BrokerError | None:
        """Send a new order for the leg's remaining quantity (`cap`: for its `sent_qty`, journaled with the intent);
        the broker's refusal when it refused it (recorded as `OrderFailed`, so the leg's `error` says why), else
        None. Raises `SafetyLimitError`, with nothing sent, for a limit outside the price collar. Nothing is sent
        either (None) while an earlier order's last fills are unknown."""
        if not await self._chain_settled(index):
            return None
        leg = self._bus.leg(index)
        qty = leg.remaining_qty if cap is None else min(cap.sent_qty, leg.remaining_qty)
        if qty <= ZERO:
            return None
        self._check_collar(leg, limit_price, quote)
        attempt = leg.next_attempt
        cid = client_order_id(self._bus.run_id, index, attempt)
        await self._bus.emit(
            OrderIntent(
                **self._bus.stamp(index),
                action=IntentAction.SUBMIT,
                client_order_id=cid,
                order_type=order_type,
                qty=qty,
                limit_price=limit_price,
                attempt=attempt,
                quote=quote,
                reason=reason,
                step=step,
                capped=cap,
            )
        )
        request = OrderRequest(
            client_order_id=cid,
            symbol=leg.symbol,
            side=leg.side,
            qty=qty,
            order_type=order_type,
            limit_price=limit_price,
        )
        order = await self._send_new(index, request)
        if isinstance(order, BrokerError):
            return order
        if order is _UNANSWERED:
            return None  # outcome unknown: the leg stays submitting, and `resolve_submit` asks again
        await self._bus.emit(OrderAccepted(**self._bus.stamp(index), action=IntentAction.SUBMIT, order=order))
        self._log.debug(
            "order_submitted",
            correlation_id=self._bus.correlation(leg.index),
            symbol=leg.symbol,
            order_id=order.order_id,
            client_order_id=cid,
            order_type=order_type.value,
            limit_price=str(limit_price),
            qty=str(qty),
            reason=reason,
        )
        return None

    async def _chain_settled(self, index: int) -> bool:
        """Before a remainder or a replacement is sized: ask the broker for every earlier order of the leg not
        yet reported closed (a replaced order whose last fills and `replaced` update are still on their way, or
        were never pushed or polled), so that quantity it filled is not sent again. False when one is still not
        known closed. The working order itself (the one a replace targets) is not asked about.
        """
        leg = self._bus.leg(index)
        for record in leg.orders:
            if record.order_id is None or record.is_terminal:
                continue
            if record.client_order_id == leg.active_client_order_id:
                continue
            await self.reconcile(index, record.order_id)
            if _known_closed(self._bus.leg(index).record(record.client_order_id)):
                continue
            self._log.warning(
                "remainder_deferred",
                correlation_id=self._bus.correlation(index),
                symbol=self._bus.leg(index).symbol,
                order_id=record.order_id,
            )
            return False
        return True

    async def _send_new(self, index: int, request: OrderRequest) -> _Outcome:
        """The accepted order, `_UNANSWERED` when its outcome is unknown, or the refusal, once recorded."""
        cid = request.client_order_id
        try:
            return await self._broker.submit_order(request)
        except BrokerError as exc:
            # The id is deterministic: a duplicate means our own earlier submit reached the broker, and a
            # timeout or server error may hide one that did. Either way the order the broker holds is ours.
            existing = await self._executed_anyway(index, exc, cid)
            if existing is _UNANSWERED:
                self._unanswered_sent[cid] = self._bus.clock.now()
                return _UNANSWERED
            if isinstance(existing, BrokerOrder):
                return existing
            refusal = existing or exc
            await record_refusal(self._bus, index, IntentAction.SUBMIT, refusal, client_order_id=cid)
            return refusal

    async def _executed_anyway(self, index: int, exc: BrokerError, cid: str) -> _Found:
        """After a refusal whose outcome is unknown (duplicate id, timeout, 5xx): the order the request created,
        found by its client order id, else `_UNANSWERED` (reading no such order proves nothing: the request may be
        on its way, and a duplicate says it exists); None after a plain refusal; the broker's refusal of an order
        found there that is not the one sent (another run's under the same run id), the refusal to record."""
        if not isinstance(exc, DuplicateClientOrderIdError | BrokerUnavailableError):
            return None
        try:
            return await self._broker.get_order_by_client_id(cid) or _UNANSWERED
        except ClientOrderIdConflictError as conflict:
            return conflict
        except BrokerError as lookup:
            self._log.warning(
                "outcome_unknown",
                correlation_id=self._bus.correlation(index),
                symbol=self._bus.leg(index).symbol,
                order_id=None,
                client_order_id=cid,
                error=str(exc),
                lookup_error=str(lookup),
            )
            return _UNANSWERED

    async def resolve_submit(self, index: int, *, resend: bool = True, give_up: bool = False) -> None:
        """A submit of unknown outcome (the leg is submitting): accepted once the broker finds its client order id.
        Until then it is sent again under that SAME id each check interval (executed at most once: a new id could
        add a second order beside one still on its way); without `resend` (a phase's end) it is only asked after,
        and recorded failed with `give_up` (once the phase's grace window has passed)."""
        leg = self._bus.leg(index)
        active = leg.active_order
        if active is None:
            return
        cid = active.client_order_id
        found: _Outcome | None
        try:
            found = await self._broker.get_order_by_client_id(cid)
        except ClientOrderIdConflictError as conflict:  # another's order: this submit is refused, not adopted
            await record_refusal(self._bus, index, IntentAction.SUBMIT, conflict, client_order_id=cid)
            return
        except BrokerError as exc:
            self._log.warning(
                "submit_unresolved",
                correlation_id=self._bus.correlation(index),
                symbol=leg.symbol,
                order_id=active.order_id,
                client_order_id=cid,
                error=str(exc),
            )
            return
        if found is None and resend:
            found = await self._resend(index, leg, active)
        elif found is None and give_up:
            await record_refusal(
                self._bus, index, IntentAction.SUBMIT, OrderNotFoundError(cid), client_order_id=cid
            )
        if not isinstance(found, BrokerOrder):
            return
        await self._bus.emit(OrderAccepted(**self._bus.stamp(index), action=IntentAction.SUBMIT, order=found))

    async def _resend(self, index: int, leg: LegState, active: OrderRecord) -> _Outcome:
        """The journaled submit sent again under its own id, once a check interval after its last send."""
        sent = self._unanswered_sent.get(active.client_order_id)
        if sent is not None and self._bus.clock.now() < sent + self._config.check_interval:
            return _UNANSWERED
        if active.qty is None or active.order_type is None:
            raise InvariantViolationError(f"submit {active.client_order_id} was journaled without its order")
        request = OrderRequest(
            client_order_id=active.client_order_id,
            symbol=leg.symbol,
            side=leg.side,
            qty=active.qty,
            order_type=active.order_type,
            limit_price=active.limit_price,
        )
        return await self._send_new(index, request)

    async def replace(self, index: int, limit_price: Decimal, *, step: int, quote: Quote | None) -> None:
        """Re-price the working order by the broker's replace; a refusal is recorded and reconciled. Nothing is
        sent while an earlier order's last fills are unknown (the replacement is sized from them)."""
        leg = self._bus.leg(index)
        active = leg.active_order
        if active is None or active.order_id is None:
            raise ValueError(f"leg {index} has no acknowledged order to replace")
        if not await self._chain_settled(index) or self._bus.leg(index).active_order != active:
            return
        leg = self._bus.leg(index)
        qty = leg.remaining_qty
        if qty <= ZERO or leg.is_done:  # an earlier order's last fills completed (or over-filled) the leg
            return
        self._check_collar(leg, limit_price, quote)
        attempt = leg.next_attempt
        cid = client_order_id(self._bus.run_id, index, attempt)
        await self._bus.emit(
            OrderIntent(
                **self._bus.stamp(index),
                action=IntentAction.REPLACE,
                client_order_id=cid,
                order_id=active.order_id,
                order_type=OrderType.LIMIT,
                qty=qty,
                limit_price=limit_price,
                attempt=attempt,
                quote=quote,
                reason=REASON_REPEG,
                step=step,
            )
        )
        request = ReplaceRequest(
            order_id=active.order_id, client_order_id=cid, qty=qty, limit_price=limit_price
        )
        try:
            order = await self._broker.replace_order(request)
        except BrokerError as exc:
            found = await self._executed_anyway(index, exc, cid)
            if not isinstance(found, BrokerOrder):
                refusal = found if isinstance(found, BrokerError) else exc
                await record_refusal(
                    self._bus,
                    index,
                    IntentAction.REPLACE,
                    refusal,
                    client_order_id=cid,
                    order_id=active.order_id,
                )
                await self.reconcile(index, active.order_id)
                return
            order = found
        await self._bus.emit(
            OrderAccepted(**self._bus.stamp(index), action=IntentAction.REPLACE, order=order)
        )
        self._log.debug(
            "order_replaced",
            correlation_id=self._bus.correlation(leg.index),
            symbol=leg.symbol,
            order_id=order.order_id,
            replaces=active.order_id,
            limit_price=str(limit_price),
            step=step,
        )

    async def cancel(self, index: int, reason: str) -> bool:
        """Request a cancel of the working order; the confirmation arrives as an update (or by polling).
        False when the broker refused the request (recorded and reconciled), or when there is nothing to send.

        An order the broker reported replaced is closed: the cancel goes to its replacement, by the id the broker
        named (`replaced_by`), when the run never read that order (the replace's answer was lost, and so were the
        reads); once accepted, it is not sent again (True), and nothing is sent while the broker named none."""
        leg = self._bus.leg(index)
        active = leg.active_order
        if active is None or active.order_id is None:
            raise ValueError(f"leg {index} has no acknowledged order to cancel")
        if active.status is not OrderStatus.REPLACED:
            return await self._send_cancel(
                index, active.order_id, active.client_order_id, active.attempt, reason
            )
        unread = unread_replacement(leg.orders, active)
        if unread is None:
            return False
        if unread in self._cancelled_unread:
            return True
        sent = await self._send_cancel(index, unread, None, active.attempt, reason)
        if sent:
            self._cancelled_unread.add(unread)
        return sent

    def cancelled_unread(self, leg: LegState) -> bool:
        """True when a cancel went to the leg's order by its id alone, before the run ever read it."""
        active = leg.active_order
        return active is not None and active.order_id in self._cancelled_unread

    def unread_cancel_accepted(self, order_id: str) -> bool:
        """True when the broker accepted a cancel of `order_id`, sent by its id alone (the run never read it)."""
        return order_id in self._cancelled_unread

    def note_unread_cancel_accepted(self, order_id: str) -> None:
        """Record that the broker accepted a cancel of `order_id`, an order the run never read."""
        self._cancelled_unread.add(order_id)

    async def _send_cancel(
        self, index: int, order_id: str, client_id: str | None, attempt: int, reason: str
    ) -> bool:
        await self._bus.emit(
            OrderIntent(
                **self._bus.stamp(index),
                action=IntentAction.CANCEL,
                client_order_id=client_id,
                order_id=order_id,
                attempt=attempt,
                reason=reason,
            )
        )
        try:
            await self._broker.cancel_order(order_id)
        except BrokerError as exc:
            await record_refusal(self._bus, index, IntentAction.CANCEL, exc, order_id=order_id)
            await self.reconcile(index, order_id)
            return False
        if self._polled:
            self._cancels_sent[order_id] = self._bus.clock.now()
        self._log.debug(
            "cancel_requested",
            correlation_id=self._bus.correlation(index),
            symbol=self._bus.leg(index).symbol,
            order_id=order_id,
            reason=reason,
        )
        return True
