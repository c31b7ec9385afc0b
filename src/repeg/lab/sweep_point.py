"""One sweep point = one real backtest (`repeg.lab.backtest.run_backtest`), reduced to a `SweepRecord`.

`run_point` is a module-level function so that process pools and Ray can ship it by reference. Each worker
process keeps the last few symbol-days it loaded (quote files are read once per process, not once per point);
the cache holds parsed tapes only, so it cannot make a result depend on which points a worker ran before.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from repeg.errors import ConfigError, SweepError
from repeg.lab.backtest import DayData, day_basket, load_day, run_backtest
from repeg.lab.compare import adaptive_params_for
from repeg.lab.fit import AdaptiveParams
from repeg.lab.models import BacktestResult
from repeg.lab.policies import AdaptiveSpec, PolicySpec, said, spec_refused
from repeg.lab.sweep import SweepRecord
from repeg.lab.sweep_grid import SweepPoint, variant_spec

_DAYS_PER_WORKER = 4


@lru_cache(maxsize=_DAYS_PER_WORKER)
def _day(quotes_file: str, trades_file: str | None) -> DayData:
    trades = None if trades_file is None else Path(trades_file)
    return load_day(Path(quotes_file), trades, one_per_file=True)


def point_spec(point: SweepPoint) -> PolicySpec:
    """The policy specification of a point: its kind, its label as name, its parameters."""
    try:
        return variant_spec(point.kind, point.policy, point.params)
    except ValidationError as exc:  # shown as a policy file's error is; not chained (pydantic prints it)
        raise SweepError(f"point {point.point_id} ({point.policy})", said(spec_refused(exc))) from None


def _adaptive_params(point: SweepPoint, spec: PolicySpec, day: DayData) -> AdaptiveParams | None:
    """A params file's parameters, refused (as `compare` and `backtest` do) when fitted on the point's own day."""
    if not isinstance(spec, AdaptiveSpec) or spec.params_file is None:
        return None
    try:
        return adaptive_params_for(spec, point.fill_model, day, None)
    except ConfigError as exc:
        raise SweepError(f"point {point.point_id} ({point.policy})", str(exc)) from exc


def record_of(point: SweepPoint, result: BacktestResult) -> SweepRecord:
    s = result.summary
    return SweepRecord(
        point_id=point.point_id,
        policy=point.policy,
        kind=point.kind,
        params_json=json.dumps(point.params, sort_keys=True, separators=(",", ":")),
        fill_model=point.fill_model.value,
        quotes_file=point.data.quotes_file,
        trades_file=point.data.trades_file,
        symbol=result.data.symbol,
        day=result.data.day.isoformat(),
        seed=point.seed,
        n_orders=s.n_orders,
        completion_rate=s.completion_rate,
        cost_bps_mean=s.cost_bps.mean,
        cost_bps_low=s.cost_bps.low,
        cost_bps_high=s.cost_bps.high,
        cost_half_spreads_mean=s.cost_half_spreads.mean,
        cost_half_spreads_low=s.cost_half_spreads.low,
        cost_half_spreads_high=s.cost_half_spreads.high,
        cost_vs_oracle_half_spreads_mean=s.cost_vs_oracle_half_spreads.mean,
        half_spread_saved=s.half_spread_saved,
        fill_rate_before_escalation=s.fill_rate_before_escalation,
        escalation_rate=s.escalation_rate,
        time_to_fill_s_mean=s.time_to_fill_s.mean,
        repegs_mean=s.repegs_mean,
    )


def run_point(point: SweepPoint) -> SweepRecord:
    """Backtest one grid point; deterministic given the point (its seed fixes basket and simulator)."""
    spec = point_spec(point)
    day = _day(point.data.quotes_file, point.data.trades_file)
    basket = day_basket(day, point.basket, seed=point.seed)
    result = run_backtest(
        day,
        basket,
        spec,
        fill_model=point.fill_model,
        seed=point.seed,
        adaptive_params=_adaptive_params(point, spec, day),
    )
    return record_of(point, result)
