"""Fill models: the simulator's answer to "when, at what price and for how much does this order execute?".

The exchange (`SimulatedBroker`) owns order state, timers, cash and positions; a fill model only predicts the
next execution of one resting order from market data. The contract, `FillModel`, is built so that models of
very different realism fit behind it:

- `PaperFillModel` (the default) follows Alpaca's documented paper-trading rules: a limit fills once marketable
  against the quote current at that instant, at the quote price (its limit or better); a market order fills at
  the far touch of the current tradable quote; 10% of fills (seeded) are partial, the rest follows from the next
  quote on (on the tape's last quote, which stays current, from that quote again). Displayed size, queue position and trade prints play no part. A one-sided, zero, locked or crossed
  quote (not 0 < bid < ask) is no market: nothing fills on it (`QuoteTape.tradable_mask`).
- A queue-position model (issue 5) fits the same contract: at `next_fill` it places the order at the back of the
  displayed size at its price from `RestingOrder.queued_since_ns` (a replace creates a new order, so priority is
  lost by construction), walks its `TradeTape` forward from the cursor to find the print that exhausts the queue
  ahead (or the quote that crosses the limit), and returns that instant, the executed size and the price. Per-order
  state it needs between calls may live in the model keyed by `order_id`; `release` tells it when to drop it, and
  names the orders whose next execution that changed (`QueueFillModel`: ours behind it, which move up).

Determinism: a model draws randomness only from its own seeded generator, and the broker calls it in a
deterministic order, so a run is reproducible from its seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

from repeg.domain.orders import Side
from repeg.market.tape import QuoteTape

#: Smallest fractional quantity (Alpaca's share precision).
_QTY_STEP = Decimal("0.000000001")


@dataclass(frozen=True, slots=True)
class RestingOrder:
    """What a fill model may know about an order: never the broker's private record."""

    order_id: str
    symbol: str
    side: Side
    #: Limit in $0.0001 units; None for a market order.
    limit_units: int | None
    #: Quantity still to fill (> 0).
    remaining: Decimal
    #: True when executions must be whole shares (non-fractionable asset or whole-share order).
    whole_shares: bool
    #: When the order joined the book at its current price (nanoseconds since the epoch, UTC).
    queued_since_ns: int


@dataclass(frozen=True, slots=True)
class FillPlan:
    """The next execution of an order, as predicted when the broker asked.

    `ts_ns` is never before the instant of the question; `0 < qty <= remaining`; `price_units` is the
    execution price in $0.0001 units (for a limit: the limit or better). `cursor` is the model's own position in
    its data (quote index for the paper model, print index for a queue model), passed back as `after` when the
    broker asks for the next execution of the remainder.
    """

    ts_ns: int
    qty: Decimal
    price_units: int
    cursor: int


class FillModel(Protocol):
    """Predicts executions of resting orders. The broker schedules each plan on its clock and applies it then.

    Calls come in this pattern, per order id: `next_fill(order, t, None)` when the order starts working (or
    rests again, or once `release` of another order named it: its plan changed); after each partial execution
    `next_fill(order, t, plan.cursor)` for the remainder; `release` once the order left the book (filled, cancelled
    or replaced). A plan that has not fired yet is discarded
    when the order is cancelled or replaced, so a plan must not be treated as having happened.
    """

    @property
    def name(self) -> str:
        """Short name for logs and results (e.g. 'paper', 'queue')."""
        ...

    def next_fill(self, order: RestingOrder, now_ns: int, after: int | None) -> FillPlan | None:
        """The earliest execution at or after `now_ns`, or None if the data holds none.

        With `after=None` the market state current at `now_ns` counts (an order marketable on arrival executes
        at once); with a cursor, only data strictly after that cursor.
        """
        ...

    def release(self, order_id: str, now_ns: int, left: Decimal) -> tuple[str, ...]:
        """The order left the book at `now_ns` with `left` unfilled (zero: it filled): drop any state kept for it.
        Returns the ids of other resting orders whose next execution that changed (an order behind it in a queue
        moves up): the broker discards their plans and asks again."""
        ...


class PaperFillModel:
    """Alpaca paper-trading fills (see the module docstring). Partial sizes are uniform over what may be split."""

    def __init__(self, tape: QuoteTape, *, seed: int, partial_rate: float = 0.1) -> None:
        if not 0.0 <= partial_rate <= 1.0:
            raise ValueError(f"partial_rate={partial_rate} must be within [0, 1]")
        self._tape = tape
        self._rng = random.Random(seed)
        self._partial_rate = partial_rate

    @property
    def name(self) -> str:
        return "paper"

    def next_fill(self, order: RestingOrder, now_ns: int, after: int | None) -> FillPlan | None:
        if order.symbol not in self._tape:
            return None
        start = (
            self._current_index(order.symbol, now_ns) if after is None else self._after(order.symbol, after)
        )
        if order.limit_units is None:
            index = self._tape.next_tradable(order.symbol, start)
        else:
            index = self._tape.next_marketable(order.symbol, order.side, order.limit_units, start)
        if index is None:
            return None
        cols = self._tape.columns(order.symbol)
        price = cols.ask[index] if order.side is Side.BUY else cols.bid[index]
        return FillPlan(
            ts_ns=max(now_ns, int(cols.ts[index])),
            qty=self._execution_size(order),
            price_units=int(price),
            cursor=index,
        )

    def release(self, order_id: str, now_ns: int, left: Decimal) -> tuple[str, ...]:  # noqa: ARG002
        """Nothing kept per order, and no order's execution depends on another's."""
        return ()

    def _after(self, symbol: str, cursor: int) -> int:
        """Where a remainder is re-evaluated: from the next quote on, or again on the tape's last quote.

        The last quote stays current for good, so a remainder still marketable against it fills against it
        (Alpaca re-evaluates a still-marketable remainder); waiting for a quote that never comes left it open.
        """
        return cursor + 1 if cursor + 1 < self._tape.count(symbol) else cursor

    def _current_index(self, symbol: str, now_ns: int) -> int:
        current = self._tape.index_at_ns(symbol, now_ns)
        return 0 if current is None else current

    def _execution_size(self, order: RestingOrder) -> Decimal:
        """The whole remainder, or (with probability `partial_rate`) a uniform part of it."""
        remaining = order.remaining
        if self._rng.random() >= self._partial_rate:
            return remaining
        if order.whole_shares or remaining == remaining.to_integral_value():
            whole = int(remaining)
            return Decimal(self._rng.randint(1, whole - 1)) if whole >= 2 else remaining
        steps = int((remaining / _QTY_STEP).to_integral_value(rounding=ROUND_DOWN))
        return Decimal(self._rng.randint(1, steps - 1)) * _QTY_STEP if steps >= 2 else remaining
