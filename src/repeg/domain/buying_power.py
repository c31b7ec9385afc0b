"""An escalated buy cut to the buying power left: what was asked, what was sent, and why.

A buy sized to the whole buying power is costed at its arrival ask plus `escalation_collar_bps`. If the ask has
risen by more than that when the leg escalates, its remainder costs more than the buying power left and the broker
refuses it (`InsufficientBuyingPowerError`). The engine then sends, once, the largest quantity that buying power
covers at the price the escalation may pay (`covered_qty`), and the leg ends partial with `BuyingPowerCap.reason`.
The cap is journaled on the capped order's `OrderIntent`, so the fold (and `resume`) knows the leg's remainder was
given up on purpose once that order closes.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from repeg.domain.ticks import ZERO, round_qty_down


class BuyingPowerCap(BaseModel):
    """An escalation cut to the buying power: `requested_qty` (the leg's remainder, refused whole), `sent_qty` (what
    `buying_power` covers at `price`, the most the escalation may pay a share; zero when it covers nothing)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requested_qty: Decimal
    sent_qty: Decimal
    buying_power: Decimal
    price: Decimal

    @property
    def reason(self) -> str:
        """Why the leg ends with its remainder unbought, naming the quantities and the buying power (exact, without
        trailing zeros)."""
        requested, sent, power, price = (
            _plain(v) for v in (self.requested_qty, self.sent_qty, self.buying_power, self.price)
        )
        told = f"sent {sent}" if self.sent_qty > ZERO else "nothing sent"
        return (
            f"insufficient buying power for the escalation: requested {requested}, {told} (buying power {power}"
            f" covers {sent} at up to {price} a share)"
        )


def _plain(value: Decimal) -> str:
    """`value` exactly, in plain notation and without trailing zeros (1000.00 -> 1000, never 1E+3)."""
    return f"{value.normalize():f}"


def covered_qty(requested: Decimal, price: Decimal, buying_power: Decimal, whole_shares: bool) -> Decimal:
    """The largest quantity, at most `requested`, that `buying_power` pays for at `price` a share: rounded down, to
    whole shares for a non-fractionable asset, else to the broker's 1e-9 (`round_qty_down`); zero when it covers
    nothing (or `price` is not positive: a cost that cannot be bounded)."""
    if price <= ZERO or buying_power <= ZERO:
        return ZERO
    return min(requested, round_qty_down(buying_power / price, whole_shares))
