"""A small, deterministic, synthetic comparison and market: to try the report without data, and to test it.

The numbers are made up but consistent with the schema's conventions (costs signed against the arrival mid,
paths in time order, limits on the penny grid); nothing here is evidence about any policy.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np

from repeg.domain.orders import Side
from repeg.domain.ticks import from_units
from repeg.lab.models import (
    BacktestResult,
    CompareResult,
    DataRef,
    FillModelName,
    FrontierPoint,
    Interval,
    OrderTca,
    PairedComparison,
    ParentOrder,
    PathEvent,
    PathEventKind,
    PolicySummary,
)
from repeg.lab.report_data import MarketSeries
from repeg.lab.stats import verdict_of, verdict_rule, verdict_withheld

START = datetime(2018, 1, 2, 14, 30, tzinfo=UTC)
_NS = 1_000_000_000
_SPREAD = 400  # $0.04 in units


def sample_market(n_quotes: int = 600, n_trades: int = 900, seed: int = 7) -> MarketSeries:
    """A random-walk mid on the penny grid, a 4-cent spread, one quote a second, prints inside the quote."""
    rng = np.random.default_rng(seed)
    start_ns = int(START.timestamp()) * _NS
    steps = rng.integers(-1, 2, size=n_quotes) * 100
    bid = (1_570_000 + np.cumsum(steps)).astype(np.int64)
    quote_ts = (start_ns + np.arange(n_quotes, dtype=np.int64) * _NS).astype(np.int64)
    trade_ts = np.sort(rng.integers(start_ns, int(quote_ts[-1]), size=n_trades)).astype(np.int64)
    at = np.searchsorted(quote_ts, trade_ts, side="right") - 1
    trade_px = (bid[at] + rng.integers(0, 5, size=n_trades) * 100).astype(np.int64)
    return MarketSeries(
        quote_ts_ns=quote_ts,
        bid_units=bid,
        ask_units=(bid + _SPREAD).astype(np.int64),
        trade_ts_ns=trade_ts,
        trade_units=trade_px,
    )


def _interval(mean: float, half_width: float, n: int) -> Interval:
    return Interval(mean=mean, low=mean - half_width, high=mean + half_width, n=n)


def _order(index: int, market: MarketSeries, aggressive: bool) -> OrderTca:
    """Order `index` arrives at quote 50*index+10, rests at the near touch, re-pegs once, then fills or escalates."""
    side = Side.BUY if index % 2 == 0 else Side.SELL
    q = 50 * index + 10
    bid, ask = from_units(int(market.bid_units[q])), from_units(int(market.ask_units[q]))
    near, far = (bid, ask) if side is Side.BUY else (ask, bid)
    mid = (bid + ask) / 2
    arrival = START + timedelta(seconds=q)
    escalated = aggressive or index % 3 == 0
    repeg = near + (far - near) / 2
    final = far if escalated else repeg
    path = [
        PathEvent(ts=arrival, kind=PathEventKind.SUBMIT, price=near, order_id=f"o{index}-0"),
        PathEvent(
            ts=arrival + timedelta(seconds=10),
            kind=PathEventKind.REPLACE,
            price=repeg,
            order_id=f"o{index}-1",
        ),
    ]
    if escalated:
        path += [
            PathEvent(ts=arrival + timedelta(seconds=20), kind=PathEventKind.CANCEL, order_id=f"o{index}-1"),
            PathEvent(ts=arrival + timedelta(seconds=20), kind=PathEventKind.ESCALATE, qty=Decimal(100)),
            # The market order for the remainder, as a backtest records it (its submit intent, no limit).
            PathEvent(ts=arrival + timedelta(seconds=20), kind=PathEventKind.SUBMIT, qty=Decimal(100)),
        ]
    done = arrival + timedelta(seconds=21 if escalated else 15)
    path += [
        PathEvent(ts=done, kind=PathEventKind.FILL, price=final, qty=Decimal(100)),
        PathEvent(ts=done, kind=PathEventKind.END),
    ]
    half = (ask - bid) / 2
    cost_hs = float(side.sign * (final - mid) / half)
    return OrderTca(
        index=index,
        symbol="XXX",
        side=side,
        qty=Decimal(100),
        arrival=arrival,
        deadline=arrival + timedelta(seconds=60),
        arrival_bid=bid,
        arrival_ask=ask,
        arrival_mid=mid,
        filled_qty=Decimal(100),
        avg_price=final,
        completed=True,
        escalated=escalated,
        filled_before_escalation=Decimal(0) if escalated else Decimal(100),
        time_to_fill_s=(done - arrival).total_seconds(),
        repegs=1,
        cost_bps=float(side.sign * (final - mid) / mid * 10_000),
        cost_half_spreads=cost_hs,
        oracle_price=near,
        oracle_cost_half_spreads=-1.0,
        cost_vs_oracle_half_spreads=cost_hs + 1.0,
        half_spread_saved=1.0 - cost_hs,
        path=tuple(path),
    )


def _summary(policy: str, model: FillModelName, orders: tuple[OrderTca, ...]) -> PolicySummary:
    n = len(orders)
    costs = [o.cost_half_spreads or 0.0 for o in orders]
    ttf = [o.time_to_fill_s or 0.0 for o in orders]
    cost = sum(costs) / n
    esc = sum(o.escalated for o in orders) / n
    return PolicySummary(
        policy=policy,
        fill_model=model,
        n_orders=n,
        completion_rate=1.0,
        cost_bps=_interval(cost * 1.3, 0.4, n),
        cost_half_spreads=_interval(cost, 0.3, n),
        cost_vs_oracle_half_spreads=_interval(cost + 1.0, 0.3, n),
        half_spread_saved=1.0 - cost,
        fill_rate_before_escalation=1.0 - esc,
        escalation_rate=esc,
        time_to_fill_s=_interval(sum(ttf) / n, 2.0, n),
        repegs_mean=1.0,
    )


DATA = DataRef(
    symbol="XXX", day=date(2018, 1, 2), quotes_file="sample_quotes.csv.gz", trades_file=None, digest="0" * 64
)


def sample_run(policy: str, model: FillModelName, market: MarketSeries, n_orders: int = 8) -> BacktestResult:
    aggressive = policy == "touch-then-market"
    orders = tuple(_order(i, market, aggressive) for i in range(n_orders))
    basket = tuple(
        ParentOrder(
            index=o.index, symbol=o.symbol, side=o.side, qty=o.qty, arrival=o.arrival, budget_seconds=60.0
        )
        for o in orders
    )
    return BacktestResult(
        data=DATA,
        policy=policy,
        policy_params={"kind": policy},
        fill_model=model,
        seed=1,
        basket=basket,
        orders=orders,
        summary=_summary(policy, model, orders),
    )


def sample_compare(market: MarketSeries | None = None) -> CompareResult:
    """Two policies under both fill models, with one paired comparison and a frontier."""
    market = market if market is not None else sample_market()
    runs = tuple(
        sample_run(policy, model, market)
        for model in (FillModelName.PAPER, FillModelName.QUEUE)
        for policy in ("ladder", "touch-then-market")
    )
    # Eight pairs: too few for a verdict (`repeg.lab.stats.MIN_PAIRS_FOR_VERDICT`), as `repeg compare` would say.
    diff = _interval(-0.5, 0.2, 8)
    comparisons = tuple(
        PairedComparison(
            policy="ladder",
            baseline="touch-then-market",
            fill_model=model,
            diff_half_spreads=diff,
            diff_bps=_interval(-0.6, 0.3, 8),
            verdict=verdict_of(diff),
            verdict_withheld=verdict_withheld(diff),
        )
        for model in (FillModelName.PAPER, FillModelName.QUEUE)
    )
    frontier = tuple(
        FrontierPoint(
            policy=r.policy,
            fill_model=r.fill_model,
            mean_cost_half_spreads=r.summary.cost_half_spreads.mean,
            mean_time_to_fill_s=r.summary.time_to_fill_s.mean,
            completion_rate=1.0,
            efficient=True,
        )
        for r in runs
    )
    return CompareResult(
        data=DATA,
        seed=1,
        baseline="touch-then-market",
        runs=runs,
        comparisons=comparisons,
        frontier=frontier,
        verdict_rule=verdict_rule(comparisons=len(comparisons)),
    )
