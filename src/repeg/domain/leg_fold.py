"""A leg as a pure fold over run events.

`apply_event(state, event)` is the one function that turns events into leg state (`repeg.domain.leg.LegState`).
The engine updates its legs only through it, the journal's `show` and `resume` rebuild runs with `fold_run`, so a
live run and its journal can never disagree.

Fills are folded idempotently: each broker order keeps the *largest cumulative* `filled_qty` reported for it (with
its average price, and its executions' sum: `OrderRecord.notional`), so a duplicated or late update never counts
twice. The leg's filled quantity and notional are sums over its replacement chain. The engine never sizes an order
beyond the leg's remainder; a broker reporting more fills than the leg's quantity anyway is a fact: the fills are
kept, and the leg fails with the `OverfillError` text as its error.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from repeg.domain.events import (
    IntentAction,
    LegEscalated,
    LegFinished,
    LegPlanned,
    OrderAccepted,
    OrderFailed,
    OrderIntent,
    OrderUpdated,
    PhaseStarted,
    RunEvent,
)
from repeg.domain.ids import leg_id
from repeg.domain.leg import REASON_REPEG, LegState
from repeg.domain.lifecycle import FINISH_TRIGGERS, LEG_MACHINE, LegStatus, LegTrigger
from repeg.domain.order_record import OrderRecord, evolve, stillborn_replacement_of, successor_of
from repeg.domain.orders import BrokerOrder, Fill, OrderEvent, OrderStatus
from repeg.errors import OUTCOME_UNKNOWN, OverfillError


def _go(state: LegState, trigger: LegTrigger, **changes: object) -> LegState:
    changes["status"] = LEG_MACHINE.transition(state.status, trigger)
    return evolve(state, changes)


def _put_record(orders: tuple[OrderRecord, ...], record: OrderRecord) -> tuple[OrderRecord, ...]:
    """Replace the record with the same client order id, or append it."""
    for position, existing in enumerate(orders):
        if existing.client_order_id == record.client_order_id:
            return (*orders[:position], record, *orders[position + 1 :])
    return (*orders, record)


#: Leg statuses in which its active order is live at the broker and no request about it is in flight.
_LIVE = frozenset({LegStatus.WORKING, LegStatus.CANCELING})


def _settle(state: LegState, ts: datetime, run_id: str) -> LegState:
    """Derive status changes that fills and closed orders imply (an over-fill the broker reports fails the leg)."""
    qty = state.qty
    if qty is not None:
        filled = state.filled_qty
        if filled >= qty:
            return _settle_full(state, qty, filled, ts, run_id)
    active = state.active_order
    if active is None or not active.is_terminal or state.status not in _LIVE:
        return state
    if active.status is OrderStatus.REPLACED:
        return _adopt_replacement(state, active, ts, run_id)
    return _close_active(state, active)


def _settle_full(state: LegState, qty: Decimal, filled: Decimal, ts: datetime, run_id: str) -> LegState:
    """Fills reached the leg's quantity (it completes) or passed it (it fails); either way, the order it names is
    the one its chain may leave open (`_follow_replacement`)."""
    if filled > qty:
        settled = _overfilled(state, str(OverfillError(leg_id(run_id, state.index), qty, filled)), ts)
    elif state.status is LegStatus.FILLED:
        settled = state
    elif LEG_MACHINE.can(state.status, LegTrigger.COMPLETED):
        settled = _go(
            state, LegTrigger.COMPLETED, completed_at=ts, active_client_order_id=_left_working(state)
        )
    else:
        return state
    return _follow_replacement(settled)


def _overfilled(state: LegState, error: str, ts: datetime) -> LegState:
    """The broker reported fills beyond the leg's quantity (the engine never sizes an order past the remainder):
    the fills are kept as reported, and the leg fails with the `OverfillError` text, so nothing more is sent for it.
    Its active order stays named: if still open, the engine cancels it."""
    if state.status is LegStatus.FAILED:
        return state if state.error == error else evolve(state, {"error": error, "finish_reason": error})
    completed_at = state.completed_at or ts
    return _go(state, LegTrigger.OVERFILLED, error=error, finish_reason=error, completed_at=completed_at)


def _left_working(state: LegState) -> str | None:
    """The order a leg completing while it worked it (or after it ended) leaves open (filled from elsewhere, e.g. an
    order that filled while a replace was pending): kept active, so that the engine cancels it; so is one replaced."""
    active = state.active_order
    named = state.status is LegStatus.WORKING or state.is_done
    if named and (_known_open(active) or _was_replaced(active)):
        return state.active_client_order_id
    return None


def _was_replaced(record: OrderRecord | None) -> bool:
    return record is not None and record.status is OrderStatus.REPLACED


def _follow_replacement(state: LegState) -> LegState:
    """A filled or over-filled leg whose named order the broker replaced names the replacement instead, once the
    broker reported it (the replace's answer may have been lost, or the over-fill learned before it came): an
    order still open there could only over-fill the leg (further), and the engine cancels the named one."""
    active = state.active_order
    for _ in state.orders:  # a chain is never longer than the leg's orders
        successor = successor_of(state.orders, active) if _was_replaced(active) else None
        if successor is None:
            break
        active = successor
    if active is None or active.client_order_id == state.active_client_order_id:
        return state
    return evolve(state, {"active_client_order_id": active.client_order_id})


def _close_active(state: LegState, active: OrderRecord) -> LegState:
    """The live order ended: the leg goes idle with its remainder, unless a rejected replacement hands it back."""
    survivor = _survivor_of(state, active)
    if survivor is None:
        return _go(state, LegTrigger.ORDER_CLOSED, active_client_order_id=None, limit_price=None)
    # Replacement rejected (the original filled in part): the live original works again, nothing resubmitted. It
    # lost a race to a fill rather than being refused its price: the remainder may be re-pegged at once.
    changes = _back_to(state, survivor)
    if state.status is LegStatus.CANCELING:
        return _go(state, LegTrigger.CANCEL_FAILED, **changes)
    return evolve(state, changes)


def _back_to(state: LegState, original: OrderRecord) -> dict[str, object]:
    """`original` works again (its replacement was refused): its id, price and step are the leg's again, its re-peg
    uncounted, and the schedule timed from when its price took effect, as if the refused replacement had never been."""
    return {
        "active_client_order_id": original.client_order_id,
        "limit_price": original.limit_price,
        "step": state.step if original.step is None else original.step,
        "repegs": max(state.repegs - 1, 0),
        "priced_at": state.replaced_priced_at,
    }


def _adopt_replacement(state: LegState, replaced: OrderRecord, ts: datetime, run_id: str) -> LegState:
    """The working order was replaced at the broker although the replace was never seen accepted (its answer was
    lost and recorded as failed): the replacement the broker reports is the leg's working order from now on.

    Until the broker has reported it (it names the order it `replaces`), the leg waits as it is. An earlier
    replacement of the same order that the broker rejected never replaced it: the latest one not rejected did.
    """
    successor = successor_of(state.orders, replaced)
    if successor is None:
        return state
    changes = {
        "active_client_order_id": successor.client_order_id,
        "limit_price": successor.limit_price,
        "step": state.step if successor.step is None else successor.step,
        "repegs": state.repegs + 1,
        "priced_at": ts,
        "replaced_priced_at": state.priced_at,
    }
    if state.status is LegStatus.CANCELING:  # the cancel went to the replaced order: the broker refuses it
        return _settle(_go(state, LegTrigger.CANCEL_FAILED, **changes), ts, run_id)
    return _settle(evolve(state, changes), ts, run_id)


def _survivor_of(state: LegState, closed: OrderRecord | None) -> OrderRecord | None:
    """The still-open order a rejected replacement was meant to replace, if any."""
    if closed is None or closed.status is not OrderStatus.REJECTED or closed.replaces is None:
        return None
    original = next((r for r in state.orders if r.order_id == closed.replaces), None)
    return None if original is None or original.is_terminal else original


def _on_planned(state: LegState, event: LegPlanned) -> LegState:
    return _go(state, LegTrigger.PLAN, spec=event.spec)


def _on_phase_started(state: LegState, event: PhaseStarted) -> LegState:
    """A (re)started phase opens a new window for the leg: its deadline counts from here (e.g. on resume)."""
    if state.is_done:
        return state
    return evolve(state, {"phase_started_at": event.ts, "step_at_phase_start": state.step})


def _on_intent(state: LegState, event: OrderIntent) -> LegState:
    if event.action is IntentAction.CANCEL:
        if state.is_done:  # a given-up leg's order, whose first cancel the broker refused after accepting it
            return state
        return _go(state, LegTrigger.CANCEL)
    if event.client_order_id is None:
        raise ValueError(f"{event.action.value} intent without client_order_id (leg {state.index})")
    known = state.record(event.client_order_id)
    record = evolve(
        known or OrderRecord(client_order_id=event.client_order_id, attempt=event.attempt),
        {
            "attempt": event.attempt,
            "order_type": event.order_type,
            "qty": event.qty,
            "limit_price": event.limit_price,
            "escalation": state.escalated,
            "step": event.step,
            "capped": event.capped,
        },
    )
    changes: dict[str, object] = {"orders": _put_record(state.orders, record), "last_priced_at": event.ts}
    if event.action is IntentAction.REPLACE:
        # The step and the re-peg count move only once the broker accepts the replacement.
        return _go(state, LegTrigger.REPLACE, pending_client_order_id=event.client_order_id, **changes)
    changes.update(
        step=state.step if event.step is None else event.step,
        repegs=state.repegs + (1 if event.reason == REASON_REPEG else 0),
        active_client_order_id=event.client_order_id,
        limit_price=event.limit_price,
        submitted_at=state.submitted_at or event.ts,
        priced_at=event.ts,
        arrival_quote=state.arrival_quote or event.quote,
    )
    if event.capped is not None:
        changes["error"] = (
            None  # the refusal of the whole remainder is handled: the cut order goes out instead
        )
    return _go(state, LegTrigger.SUBMIT, **changes)


def _merge_order(state: LegState, order: BrokerOrder, fill: Fill | None = None) -> LegState:
    record = state.record_for(order)
    if record is None:
        record = OrderRecord(client_order_id=order.client_order_id, attempt=-1, escalation=state.escalated)
    return evolve(state, {"orders": _put_record(state.orders, record.merge(order, fill))})


def _on_accepted(state: LegState, event: OrderAccepted) -> LegState:
    order = event.order
    state = _merge_order(state, order)
    if event.action is IntentAction.SUBMIT and state.status is LegStatus.SUBMITTING:
        state = _go(state, LegTrigger.ACCEPTED)
    elif event.action is IntentAction.REPLACE and state.status is LegStatus.REPLACING:
        replacement = state.record(order.client_order_id)
        step = replacement.step if replacement is not None and replacement.step is not None else state.step
        state = _go(
            state,
            LegTrigger.ACCEPTED,
            active_client_order_id=order.client_order_id,
            pending_client_order_id=None,
            limit_price=order.limit_price,
            step=step,
            repegs=state.repegs + 1,
            priced_at=event.ts,
            replaced_priced_at=state.priced_at,
        )
    return _settle(state, event.ts, event.run_id)


_FAILURE_TRIGGERS: dict[tuple[IntentAction, LegStatus], LegTrigger] = {
    (IntentAction.SUBMIT, LegStatus.SUBMITTING): LegTrigger.SUBMIT_FAILED,
    (IntentAction.REPLACE, LegStatus.REPLACING): LegTrigger.REPLACE_FAILED,
    (IntentAction.CANCEL, LegStatus.CANCELING): LegTrigger.CANCEL_FAILED,
}


def _on_failed(state: LegState, event: OrderFailed) -> LegState:
    trigger = _FAILURE_TRIGGERS.get((event.action, state.status))
    if trigger is None:
        return state
    changes: dict[str, object] = {"error": f"{event.error}: {event.message}"}
    if trigger is LegTrigger.SUBMIT_FAILED and _known_open(state.active_order):
        # The answer was lost, but the broker has already reported the order open: it is live and working
        # (so that giving the leg up cancels it rather than leaving it unmanaged at the broker).
        trigger = LegTrigger.ACCEPTED
    elif trigger is LegTrigger.SUBMIT_FAILED:
        changes.update(active_client_order_id=None, limit_price=None)
    elif trigger is LegTrigger.REPLACE_FAILED:
        changes["pending_client_order_id"] = None
        if event.error not in OUTCOME_UNKNOWN:  # refused outright (an unanswered one may be tried at once)
            changes["repeg_refused_at"] = event.ts
    return _settle(_go(state, trigger, **changes), event.ts, event.run_id)


def _reported(record: OrderRecord | None) -> bool:
    """True when the broker has reported this order (open or closed)."""
    return record is not None and record.order_id is not None and record.status is not None


def _known_open(record: OrderRecord | None) -> bool:
    """True when the broker has reported this order and not (yet) as closed."""
    return record is not None and record.order_id is not None and not record.is_terminal


def _on_updated(state: LegState, event: OrderUpdated) -> LegState:
    update = event.update
    changed = _settle(_merge_order(state, update.order, update.fill), event.ts, event.run_id)
    if changed.status is LegStatus.SUBMITTING and _reported(changed.active_order):
        # The submit's answer was lost (and no lookup answered), but the broker reported the order: it exists, and
        # the leg works it (or, closed already, goes on from it) instead of waiting for an answer to the hard stop.
        changed = _settle(_go(changed, LegTrigger.ACCEPTED), event.ts, event.run_id)
    if update.event is OrderEvent.CANCEL_REJECTED or update.event is OrderEvent.REPLACE_REJECTED:
        return _on_refused(changed, update.event, update.order, event.ts)
    return changed


def _on_refused(state: LegState, refusal: OrderEvent, order: BrokerOrder, ts: datetime) -> LegState:
    """The broker refused (at `ts`) a cancel or replace it had accepted: `order` stays live, and the leg works it
    again (the engine decides anew: cancel again, re-peg, escalate), instead of waiting for a confirmation that never
    comes."""
    record = state.record_for(order)
    if record is None or record.is_terminal:
        return state
    error = f"{refusal.value}: order {order.order_id} stays open ({order.status.value})"
    is_active = record.client_order_id == state.active_client_order_id
    if refusal is OrderEvent.CANCEL_REJECTED:
        if state.status is LegStatus.CANCELING and is_active:
            return _go(state, LegTrigger.CANCEL_FAILED, error=error)
        return state
    if state.status is LegStatus.REPLACING and is_active:
        return _go(
            state, LegTrigger.REPLACE_FAILED, pending_client_order_id=None, error=error, repeg_refused_at=ts
        )
    if state.status is LegStatus.WORKING and stillborn_replacement_of(state.active_order, record):
        return evolve(state, {**_back_to(state, record), "error": error, "repeg_refused_at": ts})
    return state


def _on_escalated(state: LegState, event: LegEscalated) -> LegState:
    return evolve(state, {"escalated": True, "escalation_reason": event.reason})


def _on_finished(state: LegState, event: LegFinished) -> LegState:
    if state.status.value == event.status:
        return state
    trigger = FINISH_TRIGGERS.get(event.status)
    if trigger is None:
        raise ValueError(f"unknown leg status {event.status!r} in leg_finished (leg {state.index})")
    error = event.reason if trigger is LegTrigger.FINISH_FAILED else state.error
    return _go(state, trigger, completed_at=event.ts, finish_reason=event.reason, error=error)


def apply_event(state: LegState, event: RunEvent) -> LegState:
    """The leg after `event`. Pure. Events that do not concern legs return `state` unchanged.

    Raises `IllegalTransitionError` when an engine-issued event (intent, escalation, finish) does not fit the
    leg's status. Broker answers and updates that arrive late, twice or out of order only add information and
    never raise; fills a broker reports beyond the leg's quantity fail the leg (`error`: the `OverfillError` text).
    """
    match event:
        case OrderUpdated():
            changed = _on_updated(state, event)
        case OrderAccepted():
            changed = _on_accepted(state, event)
        case OrderIntent():
            changed = _on_intent(state, event)
        case OrderFailed():
            changed = _on_failed(state, event)
        case LegEscalated():
            changed = _on_escalated(state, event)
        case LegFinished():
            changed = _on_finished(state, event)
        case PhaseStarted():
            changed = _on_phase_started(state, event)
        case LegPlanned():
            changed = _on_planned(state, event)
        case _:
            changed = state
    return changed
