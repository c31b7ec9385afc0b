"""What the phase monitor reads from a leg's state before it acts on it.

Pure reads of a folded `LegState`: whether an update changed what a decision depends on, whether a refused cancel or
replace put the leg back to work, whether the broker's answers end the leg (an order rejected after it was accepted,
an escalation cut to the buying power), the quote to record with the leg's next order, and the id to name in log
lines.
"""

from __future__ import annotations

from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import OrderStatus
from repeg.domain.quote import Quote, QuoteVerdict
from repeg.engine.buying_power import Ending, capped_out

#: Statuses in which a request is in flight: the policy is not consulted until the broker answers.
AWAITING_BROKER = frozenset({LegStatus.SUBMITTING, LegStatus.REPLACING, LegStatus.CANCELING})


def decision_changed(before: LegState, after: LegState) -> bool:
    """Whether an update changed what a decision depends on: status, working order or fills.

    Echoes that change none of these (an acknowledgement, a pending state) keep the leg's scheduled wake-up
    instead of costing a fresh decision.
    """
    return (
        after.status is not before.status
        or after.active_client_order_id != before.active_client_order_id
        or (after.orders is not before.orders and after.filled_qty != before.filled_qty)
    )


def recorded_quote(leg: LegState, quote: Quote | None, verdict: QuoteVerdict) -> Quote | None:
    """The quote to record with the leg's next order: the first one's becomes the leg's arrival quote (its
    cost benchmark and price-collar reference), so an invalid quote (stale, one-sided, too wide) is not
    recorded there; a market order sent for want of a valid quote then has no arrival benchmark."""
    if leg.arrival_quote is None and verdict is not QuoteVerdict.VALID:
        return None
    return quote


def refused_back_to_work(before: LegState, after: LegState) -> bool:
    """True when a refused cancel or replace put a leg back to work its live order (out of `canceling` or
    `replacing`, or from a replacement that never worked back to the order it was to replace)."""
    if after.status is not LegStatus.WORKING:
        return False
    return before.status in AWAITING_BROKER or after.active_client_order_id != before.active_client_order_id


def rejected_order(leg: LegState) -> str | None:
    """The id of the order the broker rejected after accepting it, when that left the leg idle; else None.

    Such a rejection is a refusal like a refused submit: sending the remainder again would only be rejected
    again, order after order. (A rejected replacement is not one: it names the order it was to replace.)
    """
    if leg.status is not LegStatus.IDLE or not leg.orders:
        return None
    last = leg.orders[-1]
    if last.status is not OrderStatus.REJECTED or last.replaces is not None:
        return None
    return last.order_id or last.client_order_id


def ended_by_broker(leg: LegState) -> Ending | None:
    """How an idle leg ends that the broker's answers leave nothing to send for: an order rejected after it was
    accepted (`rejected_order`), or an escalation cut to the buying power that has closed (`capped_out`)."""
    rejected = rejected_order(leg)
    if rejected is not None:
        return (LegStatus.FAILED, f"order {rejected} rejected by the broker")
    return capped_out(leg)


def last_order_id(leg: LegState) -> str | None:
    """The broker id of the leg's latest order (None before the broker acknowledged one), for log lines."""
    ids = leg.order_ids
    return ids[-1] if ids else None
