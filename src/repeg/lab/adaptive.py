"""The adaptive rule: at each quote, keep resting, re-price, or cross, whichever the fitted table says is cheapest.

State at a decision: the order's remaining time and the top of book (spread, near-side size imbalance, the recent
mid trend over `trend_lookback_s`), all seen from the order's side. Choices: cross now (cost: the current
half-spread, known exactly), or rest a limit at the near touch plus `offset` ticks for the longest fitted horizon
that fits in the remaining time (cost: the fitted expectation, `repeg.lab.fit`). The rule picks the cheapest,
preferring crossing on ties (it is certain; the estimate is not), and always crosses when less time remains than
the shortest fitted horizon.

This module is pure (no clock, no broker): `choose` maps a state to a choice, `TrendTracker` keeps the recent mid
history that "recent quote changes" needs. The `ExecutionPolicy` wrapper lives in `repeg.lab.policies`.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

import numpy as np

from repeg.domain.orders import Side
from repeg.domain.quote import Quote
from repeg.domain.ticks import Rounding, round_to_tick, to_units
from repeg.lab.fit import AdaptiveParams, cell_of


class Move(StrEnum):
    CROSS = "cross"
    REST = "rest"


@dataclass(frozen=True)
class Choice:
    """What to do now; `offset_ticks` is meaningful for REST only. Costs are $0.0001 units vs the current mid."""

    move: Move
    offset_ticks: int
    expected_cost: float
    cross_cost: float
    horizon_s: float | None


@dataclass(frozen=True)
class BookState:
    """Top of book seen from one order's side, in integer $0.0001 units and shares.

    `near`/`far` are the bid/ask for a buy and the ask/bid for a sell; `trend2` is twice the mid change over the
    lookback, signed so that positive means the market moved against the order (up for a buy).
    """

    near: int
    far: int
    near_size: int
    far_size: int
    trend2: int

    @property
    def spread(self) -> int:
        return abs(self.far - self.near)


def book_state(quote: Quote, side: Side, trend2: int) -> BookState:
    """Orient a quote for `side` (prices must be on the $0.0001 grid)."""
    bid, ask = to_units(quote.bid), to_units(quote.ask)
    bid_size, ask_size = int(quote.bid_size), int(quote.ask_size)
    if side is Side.BUY:
        return BookState(near=bid, far=ask, near_size=bid_size, far_size=ask_size, trend2=trend2)
    return BookState(near=ask, far=bid, near_size=ask_size, far_size=bid_size, trend2=-trend2)


def state_cell(params: AdaptiveParams, state: BookState) -> int:
    total = state.near_size + state.far_size
    share = state.near_size / total if total > 0 else 0.5
    cell = cell_of(
        params.config,
        np.asarray([state.spread], dtype=np.int64),
        np.asarray([share], dtype=np.float64),
        np.asarray([state.trend2], dtype=np.int64),
    )
    return int(cell[0])


def horizon_for(params: AdaptiveParams, remaining_s: float) -> float | None:
    """The longest fitted horizon that fits in `remaining_s`, or None when even the shortest does not."""
    fitting = [h for h in params.config.horizons_s if h <= remaining_s]
    return max(fitting) if fitting else None


def choose(params: AdaptiveParams, state: BookState, remaining_s: float) -> Choice:
    """Cheapest of crossing now and each feasible resting offset (ties go to crossing)."""
    cross = state.spread / 2.0
    horizon = horizon_for(params, remaining_s)
    best = Choice(move=Move.CROSS, offset_ticks=0, expected_cost=cross, cross_cost=cross, horizon_s=horizon)
    if horizon is None or state.spread <= 0:
        return best
    cell = state_cell(params, state)
    for offset in params.config.offsets_ticks:
        if offset * params.config.tick_units >= state.spread:
            continue  # would cross or lock the book: not a resting order
        cost = params.cost(horizon, offset, cell)
        if cost is not None and cost < best.expected_cost:
            best = Choice(
                move=Move.REST, offset_ticks=offset, expected_cost=cost, cross_cost=cross, horizon_s=horizon
            )
    return best


def rest_price(quote: Quote, side: Side, offset_ticks: int, tick: Decimal) -> Decimal:
    """The resting limit `offset_ticks` ticks inside the near touch, on the legal grid.

    Rounded toward the passive side (down for a buy, up for a sell): a sub-penny touch such as a $0.005 quote
    gives the legal price just behind it, never a more aggressive one.
    """
    step = tick * offset_ticks
    if side is Side.BUY:
        return round_to_tick(quote.bid + step, Rounding.DOWN)
    return round_to_tick(quote.ask - step, Rounding.UP)


class TrendTracker:
    """Recent mids of one symbol, to measure how the mid moved over the last `lookback_ns` nanoseconds.

    Quotes must be recorded in time order; history older than twice the lookback is dropped, so memory is bounded
    by the quote rate.
    """

    def __init__(self, lookback_ns: int) -> None:
        if lookback_ns <= 0:
            raise ValueError(f"lookback_ns must be positive, got {lookback_ns}")
        self._lookback = lookback_ns
        self._ts: deque[int] = deque()
        self._mid2: deque[int] = deque()

    def record(self, ts_ns: int, bid_units: int, ask_units: int) -> None:
        if self._ts and ts_ns < self._ts[-1]:
            raise ValueError(f"quote at {ts_ns} ns is older than the last recorded ({self._ts[-1]} ns)")
        self._ts.append(ts_ns)
        self._mid2.append(bid_units + ask_units)
        while len(self._ts) > 1 and self._ts[1] <= ts_ns - 2 * self._lookback:
            self._ts.popleft()
            self._mid2.popleft()

    def trend2(self, now_ns: int) -> int:
        """Twice the mid change from the quote in force `lookback` ago to the latest (0 without history)."""
        if not self._ts:
            return 0
        pos = bisect.bisect_right(self._ts, now_ns - self._lookback) - 1
        return self._mid2[-1] - self._mid2[max(pos, 0)]
