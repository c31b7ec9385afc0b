"""Compare policies on one evaluation symbol-day, under each fill model, with paired bootstrap verdicts.

Every policy runs the *same* basket on the same data with the same seed, so per-order costs pair up and the
comparison against the baseline (market at arrival) is a paired bootstrap (`repeg.lab.stats`). A policy is called
better or worse only when the interval of its mean paired difference excludes zero, on enough pairs
(`repeg.lab.stats.MIN_PAIRS_FOR_VERDICT`).

The adaptive policy's parameters come from a different day (`fit_day`), fitted under the rule of the fill model it
is evaluated with (paper rule for `paper`; queue rule, using that day's trades, for `queue`; the paper rule when
the fit day has no trades, which `repeg backtest`/`compare` then say), or from a saved parameter file. Fitting on the evaluation day itself is refused: the reported figures must be out of sample.
The result names the fit of every adaptive policy under every fill model (`CompareResult.fits`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from itertools import accumulate
from pathlib import Path

from repeg.brokers.simulator.latency import LatencyModel
from repeg.config import ExecutionConfig
from repeg.errors import ConfigError
from repeg.lab.backtest import DayData, backtest_config, refuse_unusable_trades, run_backtest
from repeg.lab.fit import AdaptiveParams, FitConfig, fit_adaptive, load_params
from repeg.lab.models import (
    BacktestResult,
    CompareResult,
    FillModelName,
    FitInfo,
    PairedComparison,
    ParentOrder,
)
from repeg.lab.policies import AdaptiveSpec, PolicySpec
from repeg.lab.stats import paired_difference, verdict_of, verdict_rule, verdict_withheld
from repeg.lab.tca import frontier, resampling_order
from repeg.market.tape import SymbolTrades


def fit_trades_of(fit_day: DayData, *, option: str = "--fit-trades") -> SymbolTrades | None:
    """The fit day's prints of its symbol, for the queue rule; None (the paper rule) when it has no trade file.
    A trade file without the symbol's prints, or with another day's (`trades_problem`), is refused naming it (by
    `option`), as a quote file without the symbol is."""
    if fit_day.trades is None:
        return None
    refuse_unusable_trades(fit_day, option)
    return fit_day.trades.columns(fit_day.symbol)


def adaptive_params_for(
    spec: PolicySpec,
    fill_model: FillModelName,
    eval_day: DayData,
    fit_day: DayData | None,
    *,
    print_share_pct: int = 100,
    order_qty: int | None = None,
) -> AdaptiveParams | None:
    """Fitted parameters for an adaptive spec (None for any other kind); refuses in-sample parameters. A fit made
    here assumes orders of `order_qty` shares (`fit_order_qty` of the basket; the fit's default when None)."""
    if not isinstance(spec, AdaptiveSpec):
        return None
    if spec.params_file is not None:
        params = load_params(Path(spec.params_file))
    elif fit_day is None:
        raise ConfigError(
            "fit", None, "the adaptive policy needs fit data (--fit-quotes/--fit-trades) or a params_file"
        )
    else:
        trades = fit_trades_of(fit_day) if fill_model is FillModelName.QUEUE else None
        sized = {} if order_qty is None else {"order_qty": order_qty}
        config = FitConfig(print_share_pct=print_share_pct, **sized)
        params = fit_adaptive(
            fit_day.quotes.columns(fit_day.symbol), fit_day.ref, trades=trades, config=config
        )
    fitted_on = fit_day if spec.params_file is None else None
    _refuse_in_sample(params, fitted_on, eval_day)
    return params


def fit_order_qty(basket: Sequence[ParentOrder]) -> int:
    """The order size a fit for `basket` assumes (the queue rule's own place in line): the size of the order
    holding the basket's median share, since the lab's costs weight every order by its shares (a plain median
    of mixed sizes names the small orders the figures barely read); in whole shares rounded up (every order,
    when they are all one size)."""
    sizes = sorted(order.qty for order in basket)
    if not sizes:
        return FitConfig().order_qty
    half = sum(sizes, Decimal(0)) / 2
    median = next(size for size, held in zip(sizes, accumulate(sizes), strict=True) if held >= half)
    return max(1, math.ceil(median))


def _refuse_in_sample(params: AdaptiveParams, fitted_on: DayData | None, eval_day: DayData) -> None:
    """Refuse parameters fitted on the evaluation data: the same bytes, the same (first) day, or fit quotes that
    run into the evaluation's time span (a history of several days holding it): the span the parameters record,
    else, for a fit made here, its quote file's."""
    evaluated = eval_day.quotes
    fitted = params.fit_span
    if fitted is None and fitted_on is not None:
        fitted = (fitted_on.quotes.start, fitted_on.quotes.end)
    overlap = fitted is not None and fitted[0] <= evaluated.end and evaluated.start <= fitted[1]
    if params.fit_data.digest == eval_day.ref.digest or params.fit_data.day == eval_day.ref.day or overlap:
        span = "" if fitted is None else f" (fit data {fitted[0]} to {fitted[1]})"
        raise ConfigError(
            "fit",
            str(params.fit_data.day),
            f"adaptive parameters fitted on data holding the evaluation day {eval_day.ref.day}{span} would be "
            "in-sample",
        )


def paired_comparisons(
    runs: Sequence[BacktestResult], *, baseline: str, seed: int
) -> tuple[PairedComparison, ...]:
    """Each run against the baseline run of the same fill model, over the orders both have a cost for (every
    order: unfilled quantity is charged its clean-up, see `repeg.lab.tca`)."""
    out: list[PairedComparison] = []
    base_by_model = {r.fill_model: r for r in runs if r.policy == baseline}
    for run in runs:
        base = base_by_model.get(run.fill_model)
        if base is None or run.policy == baseline:
            continue
        pairs = [
            (a, b)
            for a, b in zip(run.orders, base.orders, strict=True)
            if a.cost_half_spreads is not None and b.cost_half_spreads is not None
        ]
        if not pairs:
            continue
        _, block = resampling_order([b for _, b in pairs])  # overlapping budgets: resampled in runs
        if block > 1:
            pairs.sort(key=lambda pair: pair[1].arrival)
        shares = [float(b.qty) for _, b in pairs]  # the basket's sizes: costs per share, as in the summaries
        diff_hs = paired_difference(
            [a.cost_half_spreads or 0.0 for a, _ in pairs],
            [b.cost_half_spreads or 0.0 for _, b in pairs],
            seed=seed,
            weights=shares,
            block=block,
        )
        diff_bps = paired_difference(
            [a.cost_bps or 0.0 for a, _ in pairs],
            [b.cost_bps or 0.0 for _, b in pairs],
            seed=seed,
            weights=shares,
            block=block,
        )
        out.append(
            PairedComparison(
                policy=run.policy,
                baseline=baseline,
                fill_model=run.fill_model,
                diff_half_spreads=diff_hs,
                diff_bps=diff_bps,
                verdict=verdict_of(diff_hs),
                verdict_withheld=verdict_withheld(diff_hs),
            )
        )
    return tuple(out)


def longest_run(comparisons: Sequence[PairedComparison]) -> int | None:
    """The longest run the comparisons' pairs were resampled in (`repeg.lab.stats.overlap_block`), None if none."""
    return max((c.diff_half_spreads.block or 1 for c in comparisons), default=None)


def _refuse_duplicate_names(policies: Sequence[PolicySpec]) -> None:
    """Runs, comparisons and the frontier are keyed by policy name: each policy needs its own."""
    if not policies:
        raise ConfigError("policies", "", "no policy to compare")
    names = [spec.name or spec.kind for spec in policies]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError("policies", ",".join(names), f"policy names must be unique; repeated: {repeated}")


def _refuse_bad_fill_models(fill_models: Sequence[FillModelName]) -> None:
    """At least one fill model, each once: a repeated one would run, and report, every policy twice."""
    given = ",".join(model.value for model in fill_models)
    if not fill_models:
        raise ConfigError("fill-models", given, "no fill model to compare under")
    if len(set(fill_models)) != len(fill_models):
        raise ConfigError("fill-models", given, "each fill model at most once")


def _fit_info(spec: PolicySpec, fill_model: FillModelName, params: AdaptiveParams) -> FitInfo:
    """The fit the runs of adaptive `spec` under `fill_model` used, for the result."""
    return FitInfo(
        fit_data=params.fit_data,
        params_file=spec.params_file if isinstance(spec, AdaptiveSpec) else None,
        params={
            "rule": params.rule.value,
            "samples": str(params.samples),
            "config": params.config.model_dump_json(),
        },
        policy=spec.name,
        fill_model=fill_model,
    )


def compare(
    eval_day: DayData,
    basket: Sequence[ParentOrder],
    policies: Sequence[PolicySpec],
    fill_models: Sequence[FillModelName],
    *,
    seed: int,
    fit_day: DayData | None = None,
    baseline: str = "market",
    base_config: ExecutionConfig | None = None,
    latency: LatencyModel | None = None,
    print_share_pct: int = 100,
) -> CompareResult:
    """Backtest every policy under every fill model on `eval_day`, then compare each with `baseline`.

    Every policy's run configuration is built first, and the trade file the queue model would read is checked,
    so that one the engine or the queue model refuses fails the comparison before any backtest runs.
    """
    _refuse_duplicate_names(policies)
    _refuse_bad_fill_models(fill_models)
    if FillModelName.QUEUE in fill_models:
        refuse_unusable_trades(eval_day)
    for spec in policies:
        backtest_config(spec, basket, base_config)
    runs: list[BacktestResult] = []
    fits: list[FitInfo] = []
    for model in fill_models:
        for spec in policies:
            params = adaptive_params_for(
                spec,
                model,
                eval_day,
                fit_day,
                print_share_pct=print_share_pct,
                order_qty=fit_order_qty(basket),
            )
            if params is not None:
                fits.append(_fit_info(spec, model, params))
            runs.append(
                run_backtest(
                    eval_day,
                    basket,
                    spec,
                    fill_model=model,
                    seed=seed,
                    base_config=base_config,
                    adaptive_params=params,
                    latency=latency,
                    print_share_pct=print_share_pct,
                )
            )
    comparisons = paired_comparisons(runs, baseline=baseline, seed=seed)
    return CompareResult(
        data=eval_day.ref,
        seed=seed,
        baseline=baseline,
        runs=tuple(runs),
        comparisons=comparisons,
        frontier=frontier([r.summary for r in runs]),
        fits=tuple(fits),
        verdict_rule=verdict_rule(comparisons=len(comparisons), block=longest_run(comparisons)),
    )
