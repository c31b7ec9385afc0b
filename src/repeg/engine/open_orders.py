"""What a leg's orders still open at the broker ask of the phase monitor.

Pure reads of a folded `LegState`: whether a replace is still pending (nothing may be sized or cancelled on top of
it), and whether a done leg still names an open order, which the monitor must cancel (it could only fill a leg
given up, or over-fill one filled in full or already over-filled).
"""

from __future__ import annotations

from decimal import Decimal

from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.order_record import successor_of, unread_replacement
from repeg.domain.orders import OrderStatus
from repeg.domain.ticks import ZERO


def replace_pending(leg: LegState) -> bool:
    """True while an order the leg replaced is still pending the replace at the broker: it may still fill (and
    the replacement be rejected), so neither a cancel of the replacement nor a remainder may be sent yet."""
    active = leg.active_client_order_id
    for record in leg.orders:
        if record.status is OrderStatus.PENDING_REPLACE and record.client_order_id != active:
            return True
    return False


def replaceable(leg: LegState) -> bool:
    """True when a re-peg may replace the working order; else it cancels it, confirms, and submits the remainder.

    Not when the order filled in part (a replace may re-use its original quantity), nor when it is larger than the
    leg's remainder (an uncapped replacement of an order that filled while its replace was pending) and fractional:
    shrinking it takes a replace of its quantity, which Alpaca refuses for a fractional order (it patches whole
    shares only), so it would be refused at every re-peg and keep working until it filled past the leg."""
    active = leg.active_order
    if active is None:
        return True
    if active.filled_qty > ZERO:
        return False
    qty, remaining = active.qty, leg.remaining_qty
    if qty is None or qty <= remaining:
        return True
    return not (_fractional(qty) or _fractional(remaining))


def _fractional(qty: Decimal) -> bool:
    return qty != qty.to_integral_value()


def closing(leg: LegState) -> bool:
    """A leg given up while its order worked: done, but the order's cancel is not confirmed, so it may fill."""
    if not leg.is_done:
        return False
    active = leg.active_order
    return active is not None and active.order_id is not None and not active.is_terminal


def left_open(leg: LegState) -> bool:
    """True when a leg filled in full (or failed by a broker's over-fill, see `repeg.domain.leg_fold`) still has its
    order open at the broker: that order could only (further) over-fill it, e.g. an uncapped replacement of an
    order that filled while the replace was pending."""
    return (leg.status is LegStatus.FILLED or leg.overfilled) and closing(leg)


def left_open_anew(before: LegState, after: LegState) -> bool:
    """True when an update named another open order for a leg `left_open`: the replacement of the order it named,
    reported only after the leg ended (the replace's answer was lost, or the over-fill came first)."""
    return left_open(after) and after.active_client_order_id != before.active_client_order_id


def replacement_unread(leg: LegState) -> bool:
    """True when the leg names an order the broker replaced by one the run never learned of (the replace's
    answer was lost, and so was the first read of the replacement): that one may be open at the broker, its fills
    unknown, so nothing is sized, re-priced or cancelled from the replaced order (closed), and a broker that does
    not push is asked again (`OrderGateway.poll`) until it is known; a cancel goes to it by id (`OrderGateway.cancel`).
    """
    active = leg.active_order
    if active is None or active.status is not OrderStatus.REPLACED:
        return False
    return successor_of(leg.orders, active) is None


def successor_unknown(leg: LegState) -> bool:
    """True when a done leg's order was replaced by one the run never learned of (`replacement_unread`)."""
    return leg.is_done and replacement_unread(leg)


def polled_until_closed(leg: LegState) -> bool:
    """True when a done leg names an order a broker that does not push must still be asked about: one it has not
    reported closed (e.g. the order a replacement that filled in the replace's answer replaced, last read `new`;
    it may have filled before it was replaced), or a replacement the run never read (`successor_unknown`). No
    update will report either, so the monitor keeps polling the leg until the broker reads it closed."""
    if not leg.is_done:
        return False
    return successor_unknown(leg) or any(
        record.order_id is not None and not record.is_terminal for record in leg.orders
    )


def unread_left_open(leg: LegState) -> bool:
    """True when a done leg's replaced order names (`replaced_by`) a replacement the run never read: it may be
    open at the broker, where it could only fill a leg given up or over-fill one filled, so it is cancelled."""
    return leg.is_done and unread_replacement(leg.orders, leg.active_order) is not None
