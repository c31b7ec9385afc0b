"""Pre-trade safety rails: refuse the whole plan before any order when a notional limit would be exceeded. Pure.

A leg's notional is estimated at its arrival price: `qty * price` for a quantity leg, the stated dollars for a
notional leg. Both sells and buys count toward the run total (a rebalance trades both). The limits are strict
upper bounds on what may be sent: a value equal to the limit passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from repeg.config import ExecutionConfig
from repeg.domain.plan import LegSpec
from repeg.domain.ticks import ZERO
from repeg.errors import SafetyLimitError

MAX_ORDER_NOTIONAL = "max_order_notional"
MAX_RUN_NOTIONAL = "max_run_notional"


def leg_notional(leg: LegSpec, prices: Mapping[str, Decimal]) -> Decimal:
    """The leg's dollar size at its arrival price (a leg without a price must not reach the engine)."""
    if leg.notional is not None:
        return leg.notional
    if leg.qty is None:  # pragma: no cover - LegSpec guarantees exactly one amount
        raise ValueError(f"leg {leg.index} has neither qty nor notional")
    return leg.qty * prices[leg.symbol]


def check_safety(legs: Sequence[LegSpec], prices: Mapping[str, Decimal], config: ExecutionConfig) -> Decimal:
    """Raise `SafetyLimitError` naming the first limit exceeded; else return the run's estimated notional."""
    total = ZERO
    for leg in legs:
        notional = leg_notional(leg, prices)
        limit = config.max_order_notional
        if limit is not None and notional > limit:
            raise SafetyLimitError(MAX_ORDER_NOTIONAL, limit, notional, leg.symbol)
        total += notional
    run_limit = config.max_run_notional
    if run_limit is not None and total > run_limit:
        raise SafetyLimitError(MAX_RUN_NOTIONAL, run_limit, total)
    return total
