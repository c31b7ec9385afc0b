"""Transaction-cost analysis: per parent order from its run events and the quotes, then aggregated.

Reference prices come from the quote tape, never from the engine: the arrival quote is the quote in force at the
order's arrival (the last before it that is two-sided and within the run's `max_spread_pct`: the quotes the engine
trades on and records as a leg's arrival quote); the oracle is the best price a limit order could have been filled
at under the paper rule inside `[arrival, deadline]` (lowest ask for a buy, highest bid for a sell, two-sided quotes
only). Fill prices are the broker's actual executions (`OrderUpdated.update.fill`), never limit prices.

Costs are implementation shortfall over the whole order: quantity left unfilled at the end (a refused or unfilled
escalation, a skip) is charged at the clean-up price, the far touch of the last two-sided quote inside the budget
(what crossing at the deadline would have paid). Dropping it would flatter exactly the passive policies that fail
to execute when the price runs away. `avg_price` stays the average of the actual fills.

Price arithmetic is Decimal; costs become floats only once they are ratios (bps, half-spreads) for statistics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import numpy as np

from repeg.config import ExecutionConfig
from repeg.domain.events import IntentAction, LegEscalated, LegFinished, OrderIntent, OrderUpdated, RunEvent
from repeg.domain.orders import OrderType, Side
from repeg.domain.ticks import ZERO, from_units
from repeg.errors import ConfigError
from repeg.lab.models import (
    FillModelName,
    FrontierPoint,
    Interval,
    OrderTca,
    ParentOrder,
    PathEvent,
    PathEventKind,
    PolicySummary,
)
from repeg.lab.stats import bootstrap_mean, overlap_block
from repeg.market.tape import Int64Array, SymbolQuotes, to_ns
from repeg.report.result import ExecutionResult, LegResult, result_from_events

_BPS = Decimal(10_000)
#: The engine's default bound on a usable quote's spread (`ExecutionConfig.max_spread_pct`, percent of the mid).
DEFAULT_MAX_SPREAD_PCT = ExecutionConfig().max_spread_pct
_NEVER = np.iinfo(np.int64).max


@dataclass
class _Trace:
    """What the events of one leg tell about its execution."""

    path: list[PathEvent] = field(default_factory=list)
    fills: list[tuple[Decimal, Decimal, bool]] = field(default_factory=list)  # qty, price, passive
    last_fill: PathEvent | None = None
    #: An order went out after the escalation was decided: fills from then on are not passive. A fill before it,
    #: even one that lands while the escalation's cancel is pending (then nothing is sent), is of an order sent
    #: before escalation.
    sent_escalation: bool = False
    #: The escalation was decided (`LegEscalated`).
    decided: bool = False
    order_types: dict[str, OrderType] = field(default_factory=dict)
    #: The leg in the run's own result (None for a leg never planned): its re-pegs and whether it escalated are
    #: read there, so that the lab counts them by the rule the run's result and live view count them with.
    leg: LegResult | None = None

    @property
    def repegs(self) -> int:
        """Re-pegs the broker took (`LegState.repegs`): a replace it refused, at once or after accepting it, is none."""
        return 0 if self.leg is None else self.leg.repegs

    @property
    def escalated(self) -> bool:
        """An escalation order went out (`repeg.report.result.went_to_escalation`): a market order a policy sends
        as its plan (at arrival, for want of a quote, a deliberate cross from idle) is no escalation."""
        return self.leg is not None and self.leg.escalated


def _on_intent(trace: _Trace, event: OrderIntent) -> None:
    if event.action is IntentAction.SUBMIT:
        trace.path.append(
            PathEvent(ts=event.ts, kind=PathEventKind.SUBMIT, price=event.limit_price, qty=event.qty)
        )
        trace.sent_escalation = trace.sent_escalation or trace.decided
    elif event.action is IntentAction.REPLACE:
        trace.path.append(
            PathEvent(
                ts=event.ts, kind=PathEventKind.REPLACE, price=event.limit_price, order_id=event.order_id
            )
        )
    else:
        trace.path.append(PathEvent(ts=event.ts, kind=PathEventKind.CANCEL, order_id=event.order_id))


def _on_update(trace: _Trace, event: OrderUpdated) -> None:
    fill = event.update.fill
    if fill is None:
        return
    order = event.update.order
    passive = order.order_type is OrderType.LIMIT and not trace.sent_escalation
    trace.fills.append((fill.qty, fill.price, passive))
    point = PathEvent(
        ts=fill.ts, kind=PathEventKind.FILL, price=fill.price, qty=fill.qty, order_id=order.order_id
    )
    trace.path.append(point)
    trace.last_fill = point


def trace_legs(events: Iterable[RunEvent], result: ExecutionResult) -> dict[int, _Trace]:
    """One trace per leg index of a run's events, each with its leg as `result` (the run's, from the same events)
    reports it."""
    traces: dict[int, _Trace] = {}
    for event in events:
        if event.leg_index is None:
            continue
        trace = traces.setdefault(event.leg_index, _Trace())
        if isinstance(event, OrderIntent):
            _on_intent(trace, event)
        elif isinstance(event, OrderUpdated):
            _on_update(trace, event)
        elif isinstance(event, LegEscalated):
            trace.decided = True
            trace.path.append(PathEvent(ts=event.ts, kind=PathEventKind.ESCALATE, qty=event.remaining_qty))
        elif isinstance(event, LegFinished):
            trace.path.append(PathEvent(ts=event.ts, kind=PathEventKind.END))
    for leg in result.legs:
        traces.setdefault(leg.index, _Trace()).leg = leg
    return traces


@dataclass(frozen=True)
class Reference:
    """Arrival quote and oracle price of one parent order, from the tape."""

    bid: Decimal
    ask: Decimal
    oracle: Decimal
    #: The far touch of the last two-sided quote inside the budget: the price an unfilled remainder is charged.
    cleanup: Decimal

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    @property
    def half_spread(self) -> Decimal:
        return (self.ask - self.bid) / 2


def _benchmark_row(quotes: SymbolQuotes, rows: Int64Array, max_spread_pct: Decimal) -> int:
    """The last of `rows` (two-sided quotes, ascending) whose spread is within `max_spread_pct` of its mid (the
    engine's WIDE test, exact), or -1: a wider quote is none the engine trades on or records as a leg's arrival
    quote, and its mid and half-spread are no benchmark."""
    for row in rows[::-1]:
        bid, ask = int(quotes.bid[row]), int(quotes.ask[row])
        if (ask - bid) * 200 <= max_spread_pct * (bid + ask):
            return int(row)
    return -1


def reference(
    quotes: SymbolQuotes, order: ParentOrder, *, max_spread_pct: Decimal = DEFAULT_MAX_SPREAD_PCT
) -> Reference:
    """Arrival quote (the last two-sided quote at or before arrival whose spread is within `max_spread_pct` of its
    mid, as the run's) and the oracle price inside the budget."""
    deadline = order.arrival + timedelta(seconds=order.budget_seconds)
    two_sided = (quotes.bid > 0) & (quotes.ask > 0) & (quotes.ask > quotes.bid)
    first = int(np.searchsorted(quotes.ts, to_ns(order.arrival), side="right")) - 1
    last = int(np.searchsorted(quotes.ts, to_ns(deadline), side="right")) - 1
    arrival_rows = np.flatnonzero(two_sided[: first + 1])
    if first < 0 or len(arrival_rows) == 0:
        raise ConfigError(
            "arrival", order.arrival.isoformat(), f"order {order.index} arrives before any two-sided quote"
        )
    benchmark = _benchmark_row(quotes, arrival_rows, max_spread_pct)
    if benchmark < 0:
        raise ConfigError(
            "arrival",
            order.arrival.isoformat(),
            f"order {order.index} arrives before any quote within max_spread_pct ({max_spread_pct}%)",
        )
    if to_ns(order.arrival) > int(quotes.ts[-1]):
        raise ConfigError(
            "arrival",
            order.arrival.isoformat(),
            f"order {order.index} arrives after the last quote of the day",
        )
    a = int(arrival_rows[-1])
    window = slice(a, last + 1)
    ok = two_sided[window]
    far = quotes.ask[window][ok] if order.side is Side.BUY else quotes.bid[window][ok]
    oracle = int(far.min()) if order.side is Side.BUY else int(far.max())
    return Reference(
        bid=from_units(int(quotes.bid[benchmark])),
        ask=from_units(int(quotes.ask[benchmark])),
        oracle=from_units(oracle),
        cleanup=from_units(int(far[-1])),
    )


def _ratio(value: Decimal, reference_value: Decimal) -> float:
    return float(value / reference_value)


def _shortfall_price(order: ParentOrder, ref: Reference, filled: Decimal, notional: Decimal) -> Decimal:
    """Average price of the whole order: the actual fills, and any unfilled remainder at the clean-up price."""
    unfilled = max(order.qty - filled, ZERO)
    return (notional + unfilled * ref.cleanup) / (filled + unfilled)


def order_tca(order: ParentOrder, ref: Reference, trace: _Trace) -> OrderTca:
    """TCA of one parent order; its costs charge any unfilled remainder at `ref.cleanup` (module docstring)."""
    filled = sum((q for q, _, _ in trace.fills), ZERO)
    passive = sum((q for q, _, p in trace.fills if p), ZERO)
    notional = sum((q * p for q, p, _ in trace.fills), ZERO)
    avg = notional / filled if filled > 0 else None
    price = _shortfall_price(order, ref, filled, notional)
    sign = Decimal(order.side.sign)
    hs = ref.half_spread
    oracle_hs = _ratio(sign * (ref.oracle - ref.mid), hs)
    cost_hs = _ratio(sign * (price - ref.mid), hs)
    return OrderTca(
        index=order.index,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        arrival=order.arrival,
        deadline=order.arrival + timedelta(seconds=order.budget_seconds),
        arrival_bid=ref.bid,
        arrival_ask=ref.ask,
        arrival_mid=ref.mid,
        filled_qty=filled,
        avg_price=avg,
        completed=filled >= order.qty,
        escalated=trace.escalated,
        filled_before_escalation=passive,
        time_to_fill_s=None
        if trace.last_fill is None
        else (trace.last_fill.ts - order.arrival).total_seconds(),
        repegs=trace.repegs,
        cost_bps=_ratio(sign * (price - ref.mid) * _BPS, ref.mid),
        cost_half_spreads=cost_hs,
        oracle_price=ref.oracle,
        oracle_cost_half_spreads=oracle_hs,
        cost_vs_oracle_half_spreads=cost_hs - oracle_hs,
        half_spread_saved=1.0 - cost_hs,
        path=tuple(sorted(trace.path, key=lambda e: e.ts)),
    )


def basket_references(
    quotes: SymbolQuotes, basket: Sequence[ParentOrder], *, max_spread_pct: Decimal = DEFAULT_MAX_SPREAD_PCT
) -> tuple[Reference, ...]:
    """Every order's `reference`, in basket order; an order it cannot cost is refused (`ConfigError`), so that a
    backtest asks for them before it runs anything."""
    return tuple(reference(quotes, o, max_spread_pct=max_spread_pct) for o in basket)


def basket_tca(
    quotes: SymbolQuotes,
    basket: Sequence[ParentOrder],
    events: Sequence[RunEvent],
    result: ExecutionResult | None = None,
    *,
    max_spread_pct: Decimal = DEFAULT_MAX_SPREAD_PCT,
    references: Sequence[Reference] | None = None,
) -> tuple[OrderTca, ...]:
    """TCA of every order of a basket; leg index i of the run is the i-th order of `basket` (its position, as
    `run_basket` numbers legs), whatever the order's own `index` (a basket's later part keeps its indices).
    `result` is the run's own result (`run_basket` returns it), rebuilt from `events` when not given: the events are
    then folded a second time. `references` are `basket_references(quotes, basket, max_spread_pct=...)`, computed
    here when not given; `max_spread_pct` is the run's: no wider quote is an arrival benchmark (`reference`)."""
    traces = trace_legs(events, result_from_events(events) if result is None else result)
    refs = (
        basket_references(quotes, basket, max_spread_pct=max_spread_pct) if references is None else references
    )
    return tuple(
        order_tca(o, ref, traces.get(leg, _Trace()))
        for leg, (o, ref) in enumerate(zip(basket, refs, strict=True))
    )


def _values(orders: Sequence[OrderTca], attr: str) -> list[float]:
    return [v for v in (getattr(o, attr) for o in orders) if v is not None]


def _share_mean(orders: Sequence[OrderTca], attr: str) -> float:
    """`_per_share`'s point estimate alone (no interval)."""
    kept = [o for o in orders if getattr(o, attr) is not None]
    weights = [float(o.qty) for o in kept]
    if len(set(weights)) <= 1:
        return float(np.mean(_values(kept, attr)))
    return float(np.average(_values(kept, attr), weights=weights))


def resampling_order(orders: Sequence[OrderTca]) -> tuple[list[OrderTca], int]:
    """The orders as the bootstrap resamples them, with the run length (`repeg.lab.stats.overlap_block` of their
    budget windows): as given when no two windows overlap (run length 1), else in arrival order, so that each
    run holds orders that lived through the same price moves."""
    ordered = sorted(orders, key=lambda o: o.arrival)
    if not ordered:
        return [], 1
    t0 = ordered[0].arrival
    block = overlap_block(
        [(o.arrival - t0).total_seconds() for o in ordered],
        [(o.deadline - t0).total_seconds() for o in ordered],
    )
    return (list(orders), 1) if block == 1 else (ordered, block)


def _per_share(orders: Sequence[OrderTca], attr: str, *, seed: int) -> Interval:
    """Mean of a cost over the orders that have one, weighted by each order's shares: the basket's cost per share
    (the fill rate before escalation is a share of the quantity too); equal sizes give the plain mean. Orders whose
    budgets overlap are resampled in runs (`resampling_order`)."""
    kept, block = resampling_order([o for o in orders if getattr(o, attr) is not None])
    return bootstrap_mean(_values(kept, attr), seed=seed, weights=[float(o.qty) for o in kept], block=block)


def _time_to_fill(filled: Sequence[OrderTca], *, seed: int) -> Interval:
    kept, block = resampling_order([o for o in filled if o.time_to_fill_s is not None])
    return bootstrap_mean(_values(kept, "time_to_fill_s"), seed=seed, block=block)


def summarize(
    policy: str, fill_model: FillModelName, orders: Sequence[OrderTca], *, seed: int
) -> PolicySummary:
    """Aggregates with bootstrap intervals: costs over every order (unfilled quantity charged its clean-up),
    weighted by shares (`PolicySummary.cost_weighting`); time to fill over the orders that filled at all, and
    completion, escalation and re-pegs, per order."""
    if not orders:
        raise ValueError("cannot summarise an empty basket")
    filled = [o for o in orders if o.filled_qty > 0]
    if not filled:
        raise ValueError(f"policy {policy}: no order filled at all")
    total_qty = sum((o.qty for o in orders), ZERO)
    return PolicySummary(
        policy=policy,
        fill_model=fill_model,
        n_orders=len(orders),
        completion_rate=sum(o.completed for o in orders) / len(orders),
        cost_bps=_per_share(orders, "cost_bps", seed=seed),
        cost_half_spreads=_per_share(orders, "cost_half_spreads", seed=seed),
        cost_vs_oracle_half_spreads=_per_share(orders, "cost_vs_oracle_half_spreads", seed=seed),
        half_spread_saved=_share_mean(orders, "half_spread_saved"),
        cost_weighting="shares",
        fill_rate_before_escalation=float(
            sum((o.filled_before_escalation for o in orders), ZERO) / total_qty
        ),
        escalation_rate=sum(o.escalated for o in orders) / len(orders),
        time_to_fill_s=_time_to_fill(filled, seed=seed),
        repegs_mean=float(np.mean([o.repegs for o in orders])),
    )


def frontier(summaries: Sequence[PolicySummary]) -> tuple[FrontierPoint, ...]:
    """Cost versus time to fill; a point is efficient when no policy of its fill model is cheaper and faster."""
    points: list[FrontierPoint] = []
    for s in summaries:
        cost, ttf = s.cost_half_spreads.mean, s.time_to_fill_s.mean
        dominated = any(
            o.fill_model is s.fill_model
            and o.policy != s.policy
            and o.cost_half_spreads.mean <= cost
            and o.time_to_fill_s.mean <= ttf
            and (o.cost_half_spreads.mean < cost or o.time_to_fill_s.mean < ttf)
            for o in summaries
        )
        points.append(
            FrontierPoint(
                policy=s.policy,
                fill_model=s.fill_model,
                mean_cost_half_spreads=cost,
                mean_time_to_fill_s=ttf,
                completion_rate=s.completion_rate,
                efficient=not dominated,
            )
        )
    return tuple(sorted(points, key=lambda p: (p.fill_model.value, p.mean_time_to_fill_s)))
