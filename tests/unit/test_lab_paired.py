"""Paired comparisons against the baseline: same orders, same fill model, verdict only beyond the interval."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import repeg.lab.compare as compare_module
from repeg.config import EscalationStyle
from repeg.domain.orders import Side
from repeg.errors import ConfigError
from repeg.lab.compare import paired_comparisons
from repeg.lab.models import (
    BacktestResult,
    CompareResult,
    DataRef,
    FillModelName,
    OrderTca,
    PairedComparison,
    ParentOrder,
    Verdict,
)
from repeg.lab.policies import LadderSpec, MarketSpec
from repeg.lab.tca import summarize

T0 = datetime(2018, 1, 3, 15, tzinfo=UTC)
REF = DataRef(symbol="XXX", day=date(2018, 1, 3), quotes_file="q", trades_file=None, digest="d")


def _order(index: int, cost: float | None) -> OrderTca:
    return OrderTca(
        index=index,
        symbol="XXX",
        side=Side.BUY,
        qty=Decimal(100),
        arrival=T0,
        deadline=T0,
        arrival_bid=Decimal("100.00"),
        arrival_ask=Decimal("100.02"),
        arrival_mid=Decimal("100.01"),
        filled_qty=Decimal(0 if cost is None else 100),
        avg_price=None if cost is None else Decimal("100.02"),
        completed=cost is not None,
        escalated=False,
        filled_before_escalation=Decimal(0),
        time_to_fill_s=None if cost is None else 1.0,
        repegs=0,
        cost_bps=None if cost is None else cost,
        cost_half_spreads=cost,
        oracle_price=Decimal("100.00"),
        oracle_cost_half_spreads=-1.0,
        cost_vs_oracle_half_spreads=None if cost is None else cost + 1.0,
        half_spread_saved=None if cost is None else 1.0 - cost,
    )


def _run(
    policy: str, costs: list[float | None], model: FillModelName = FillModelName.PAPER
) -> BacktestResult:
    orders = tuple(_order(i, c) for i, c in enumerate(costs))
    return BacktestResult(
        data=REF,
        policy=policy,
        policy_params={},
        fill_model=model,
        seed=0,
        basket=(),
        orders=orders,
        summary=summarize(policy, model, orders, seed=0),
    )


#: Thirty orders: a verdict needs at least `repeg.lab.stats.MIN_PAIRS_FOR_VERDICT` pairs.
MARKET = [1.0, 0.5, 1.5, 1.0, 0.8, 1.2, 1.0, 0.9, 1.1, 1.0] * 3


def test_policy_cheaper_on_every_order_is_better() -> None:
    cheaper = [c - 0.3 for c in MARKET]
    (comparison,) = paired_comparisons(
        [_run("market", MARKET), _run("p", cheaper)], baseline="market", seed=1
    )
    assert comparison.verdict is Verdict.BETTER
    assert abs(comparison.diff_half_spreads.mean + 0.3) < 1e-9


def test_noisy_policy_with_no_mean_difference_is_indistinguishable() -> None:
    noisy = [c + (0.5 if i % 2 else -0.5) for i, c in enumerate(MARKET)]
    (comparison,) = paired_comparisons([_run("market", MARKET), _run("p", noisy)], baseline="market", seed=1)
    assert comparison.verdict is Verdict.INDISTINGUISHABLE


def test_orders_unfilled_in_either_run_are_left_out_of_the_pairs() -> None:
    with_gap: list[float | None] = [None, *[c + 0.2 for c in MARKET[1:]]]
    (comparison,) = paired_comparisons(
        [_run("market", MARKET), _run("p", with_gap)], baseline="market", seed=1
    )
    assert comparison.diff_half_spreads.n == len(MARKET) - 1


def test_each_fill_model_is_compared_with_its_own_baseline() -> None:
    runs = [
        _run("market", MARKET),
        _run("p", [c + 0.3 for c in MARKET]),
        _run("market", [c + 1.0 for c in MARKET], FillModelName.QUEUE),
        _run("p", MARKET, FillModelName.QUEUE),
    ]
    verdicts = {c.fill_model: c.verdict for c in paired_comparisons(runs, baseline="market", seed=1)}
    assert verdicts == {FillModelName.PAPER: Verdict.WORSE, FillModelName.QUEUE: Verdict.BETTER}


def test_interval_is_shown_as_mean_and_bounds() -> None:
    from repeg.lab.models import Interval
    from repeg.lab.tables import fmt_interval

    assert fmt_interval(Interval(mean=0.5, low=-0.25, high=1.0, n=3)) == "+0.50 [-0.25, +1.00]"


def test_a_mean_that_rounds_to_zero_reads_plus_zero_in_the_terminal_tables() -> None:
    # A mean of -0.002 read "-0.00" (a sign it does not carry at the precision shown), where the run tables and
    # the JSON read +0.00 (signed_text, fe95add5); the bounds keep their sign: -0.00 is an interval ending below 0.
    from rich.console import Console

    from repeg.lab.models import FrontierPoint, Interval
    from repeg.lab.tables import fmt_interval, frontier_table

    assert fmt_interval(Interval(mean=-0.002, low=-0.004, high=-0.001, n=3)) == "+0.00 [-0.00, -0.00]"
    assert fmt_interval(Interval(mean=float("inf"), low=-1.0, high=1.0, n=3)) == "+inf [-1.00, +1.00]"
    point = FrontierPoint(
        fill_model=FillModelName.PAPER,
        policy="p",
        mean_time_to_fill_s=1.0,
        mean_cost_half_spreads=-0.0004,
        completion_rate=1.0,
        efficient=True,
    )
    console = Console(width=200, record=True)
    console.print(frontier_table([point]))
    assert "+0.000" in console.export_text()
    assert "-0.000" not in console.export_text()


def test_summary_table_shows_the_paired_verdict_only_when_asked() -> None:
    from repeg.lab.tables import summary_table

    runs = [_run("market", MARKET), _run("p", [c - 0.3 for c in MARKET])]
    comparisons = paired_comparisons(runs, baseline="market", seed=1)
    summaries = [r.summary for r in runs]
    with_verdict = summary_table(summaries, comparisons, title="t")
    without = summary_table(summaries, comparisons, title="t", with_verdict=False)
    assert len(with_verdict.columns) == len(without.columns) + 1
    verdict_cells = list(with_verdict.columns[-1].cells)
    assert verdict_cells[0] == "baseline"
    assert "better" in str(verdict_cells[1])


def test_without_the_baseline_run_no_policy_is_labelled_the_baseline() -> None:
    # `repeg compare --policies ladder,adaptive`: no market run, so no comparison; no row may claim to be it.
    from repeg.lab.tables import compare_tables

    runs = [_run("ladder", MARKET), _run("adaptive", [c - 0.3 for c in MARKET])]
    table = compare_tables(_compared(runs))[0]
    assert "baseline" not in [str(cell) for cell in table.columns[-1].cells]


def test_compare_refuses_a_policy_its_run_configuration_refuses_before_any_backtest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A collared ladder wider than the price collar is refused only when its backtest builds the configuration:
    # compare ran every policy listed before it first (each a whole backtest), then failed.
    ran: list[str] = []

    def backtest(day: object, basket: object, spec: MarketSpec | LadderSpec, **_: object) -> BacktestResult:
        ran.append(spec.name)
        raise AssertionError("a backtest ran")

    monkeypatch.setattr(compare_module, "run_backtest", backtest)
    basket = [
        ParentOrder(index=0, symbol="XXX", side=Side.BUY, qty=Decimal(100), arrival=T0, budget_seconds=60)
    ]
    wide = LadderSpec(
        name="wide", escalation=EscalationStyle.COLLARED_LIMIT, escalation_collar_bps=Decimal(600)
    )
    with pytest.raises(ConfigError) as caught:
        compare_module.compare(
            object(),  # type: ignore[arg-type] - never read before the refusal
            basket,
            [MarketSpec(name="market"), wide],
            [FillModelName.PAPER],
            seed=0,
        )
    assert (caught.value.key, caught.value.value) == ("escalation_collar_bps", Decimal(600))
    assert ran == []


def _compare_without_backtests(
    monkeypatch: pytest.MonkeyPatch, policies: list[MarketSpec], models: list[FillModelName]
) -> ConfigError:
    def backtest(*_: object, **__: object) -> BacktestResult:
        raise AssertionError("a backtest ran")

    monkeypatch.setattr(compare_module, "run_backtest", backtest)
    basket = [
        ParentOrder(index=0, symbol="XXX", side=Side.BUY, qty=Decimal(100), arrival=T0, budget_seconds=60)
    ]
    with pytest.raises(ConfigError) as caught:
        compare_module.compare(object(), basket, policies, models, seed=0)  # type: ignore[arg-type]
    return caught.value


def test_compare_refuses_a_fill_model_given_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    # `--fill-models paper,paper` ran every policy twice and printed each row, verdict and frontier point twice.
    error = _compare_without_backtests(
        monkeypatch, [MarketSpec(name="market")], [FillModelName.PAPER, FillModelName.PAPER]
    )
    assert error.key == "fill-models"


def test_compare_refuses_an_empty_list_of_fill_models_or_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    # `--fill-models ,` compared nothing and exited 0 with empty tables.
    assert _compare_without_backtests(monkeypatch, [MarketSpec(name="market")], []).key == "fill-models"
    assert _compare_without_backtests(monkeypatch, [], [FillModelName.PAPER]).key == "policies"


def test_a_comparison_on_too_few_pairs_says_in_its_saved_result_why_it_has_no_verdict() -> None:
    # ad13504 withheld verdicts under 30 pairs but said so only in the terminal table's title: the JSON read
    # "indistinguishable" next to an interval excluding zero, with nothing telling a reader why.
    runs = [_run("market", [1.0, 0.5, 1.5, 1.0]), _run("p", [-1.0, -1.5, -0.5, -1.0])]
    (comparison,) = paired_comparisons(runs, baseline="market", seed=1)
    saved = comparison.model_dump(mode="json")
    assert saved["diff_half_spreads"]["high"] < 0.0
    assert saved["verdict"] == "indistinguishable"
    assert saved["verdict_withheld"] is not None
    assert "no verdict: 4 paired orders, fewer than the 30" in saved["verdict_withheld"]


def test_a_comparison_on_enough_pairs_has_no_withheld_reason() -> None:
    runs = [_run("market", MARKET), _run("p", [c - 0.3 for c in MARKET])]
    (comparison,) = paired_comparisons(runs, baseline="market", seed=1)
    assert (comparison.verdict, comparison.verdict_withheld) == (Verdict.BETTER, None)


def _saved_rule(monkeypatch: pytest.MonkeyPatch, costs: dict[str, list[float]]) -> str:
    """The saved verdict_rule of a compare of market-spec policies named as `costs`, their runs stubbed."""
    runs = {name: _run(name, c) for name, c in costs.items()}
    monkeypatch.setattr(compare_module, "run_backtest", lambda _d, _b, spec, **_: runs[spec.name])
    basket = [
        ParentOrder(index=0, symbol="XXX", side=Side.BUY, qty=Decimal(100), arrival=T0, budget_seconds=60)
    ]
    result = compare_module.compare(
        SimpleNamespace(ref=REF),  # type: ignore[arg-type] - only its reference is read past the stubs
        basket,
        [MarketSpec(name=name) for name in costs],
        [FillModelName.PAPER],
        seed=0,
    )
    rule = result.model_dump(mode="json")["verdict_rule"]
    assert isinstance(rule, str)
    return rule


def test_a_saved_comparison_states_the_verdict_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    # `repeg compare --json` carried the verdicts but not the rule they follow (30 pairs, paired 95% interval).
    rule = _saved_rule(monkeypatch, {"market": MARKET, "p": [c - 0.3 for c in MARKET]})
    assert "at least 30 paired orders" in rule
    assert "excludes 0" in rule


def test_the_table_row_of_a_comparison_on_too_few_pairs_says_no_verdict_and_why() -> None:
    # The row read "indistinguishable -1.75 [-2.00, -1.50]" for 4 pairs, where the docs promise "no verdict".
    from repeg.lab.tables import summary_row

    runs = [_run("market", [1.0, 0.5, 1.5, 1.0]), _run("p", [-1.0, -1.5, -0.5, -1.0])]
    (comparison,) = paired_comparisons(runs, baseline="market", seed=1)
    cell = summary_row(runs[1].summary, comparison, "market")[-1]
    assert cell.startswith("[yellow]no verdict (4 pairs < 30)[/] ")


def test_a_policy_cheaper_on_small_orders_but_dearer_on_large_ones_is_not_called_better() -> None:
    # Paired per order with equal weights, many small orders 0.5 hs cheaper outvoted fewer large orders 0.5 hs
    # dearer: "better", for a policy that cost the basket about 0.47 hs a share more than market. (100 small and 35
    # large orders weigh as about 37 pairs: enough for a verdict under the effective-count rule.)
    sizes = [100] * 100 + [10_000] * 35
    market = [_order(i, 1.0).model_copy(update={"qty": Decimal(q)}) for i, q in enumerate(sizes)]
    costs = [0.5 + 0.01 * (i % 3) if q == 100 else 1.5 for i, q in enumerate(sizes)]
    policy = [
        o.model_copy(update={"cost_half_spreads": c, "cost_bps": c})
        for o, c in zip(market, costs, strict=True)
    ]

    def run(name: str, orders: list[OrderTca]) -> BacktestResult:
        return _run(name, [1.0] * len(sizes)).model_copy(update={"orders": tuple(orders)})

    (comparison,) = paired_comparisons([run("market", market), run("p", policy)], baseline="market", seed=1)
    assert comparison.diff_half_spreads.mean > 0.4
    assert comparison.verdict is Verdict.WORSE


def _sized_runs(sizes: list[int], diffs: list[float]) -> list[BacktestResult]:
    """Market at 1.0 hs on every order and a policy at 1.0 + diff, the orders of the given sizes."""
    market = [_order(i, 1.0).model_copy(update={"qty": Decimal(q)}) for i, q in enumerate(sizes)]
    policy = [
        o.model_copy(update={"cost_half_spreads": 1.0 + d, "cost_bps": 1.0 + d})
        for o, d in zip(market, diffs, strict=True)
    ]

    def run(name: str, orders: list[OrderTca]) -> BacktestResult:
        return _run(name, [1.0] * len(sizes)).model_copy(update={"orders": tuple(orders)})

    return [run("market", market), run("p", policy)]


def test_thirty_pairs_whose_weight_is_one_order_get_no_verdict() -> None:
    # Share-weighted (31bea28), the rule still counted orders: 29 one-share orders and one of a million shares
    # passed "30 pairs" and were called better, on what is in effect a single observation (Kish n_eff ~ 1).
    sizes = [1] * 29 + [1_000_000]
    diffs = [-0.5 - 0.01 * (i % 5) for i in range(29)] + [-0.3]
    (comparison,) = paired_comparisons(_sized_runs(sizes, diffs), baseline="market", seed=1)
    assert comparison.diff_half_spreads.high < 0.0
    assert comparison.verdict is Verdict.INDISTINGUISHABLE
    assert comparison.verdict_withheld is not None


def test_the_saved_reason_for_no_verdict_gives_the_effective_number_of_pairs() -> None:
    sizes = [1] * 29 + [1_000_000]
    (comparison,) = paired_comparisons(_sized_runs(sizes, [-0.5] * 30), baseline="market", seed=1)
    saved = comparison.model_dump(mode="json")
    assert saved["diff_half_spreads"]["n_eff"] == pytest.approx(1.0, abs=1e-3)
    assert (
        "30 paired orders weighted by their shares count as 1.0 (effective number)"
        in saved["verdict_withheld"]
    )


def test_the_table_row_of_pairs_that_weigh_as_few_says_no_verdict_and_the_effective_count() -> None:
    from repeg.lab.tables import summary_row

    runs = _sized_runs([1] * 29 + [1_000_000], [-0.5] * 30)
    (comparison,) = paired_comparisons(runs, baseline="market", seed=1)
    cell = summary_row(runs[1].summary, comparison, "market")[-1]
    assert cell.startswith("[yellow]no verdict (30 pairs, 1.0 effective < 30)[/] ")


def test_the_verdict_rule_per_share_says_pairs_are_counted_by_their_effective_number() -> None:
    from repeg.lab.stats import verdict_rule

    assert "counted by their effective number (sum of shares)^2 / sum of squared shares" in verdict_rule()
    assert "effective" not in verdict_rule(per="order")


def test_a_saved_comparison_says_its_verdicts_are_not_corrected_for_the_comparisons_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each verdict is its own 95% test; a compare of 4 policies under 2 fill models makes 8, so a table with no
    # true difference shows a verdict by chance about a third of the time. Only docs/EXECUTION_QUALITY.md said so:
    # the JSON (and the terminal and HTML) stated a per-comparison rule a reader takes as the table's.
    costs = {"market": MARKET, "p": [c - 0.3 for c in MARKET], "q": [c + 0.01 for c in MARKET]}
    rule = _saved_rule(monkeypatch, costs)
    assert "no correction for the 2 comparisons made" in rule
    assert "10%" in rule  # 1 - 0.95^2 = 9.75%


def _compared(runs: list[BacktestResult], *, seed: int = 1) -> CompareResult:
    """A comparison of `runs` with market (paired with seed 1), as `compare` builds it; `seed` is the result's."""
    from repeg.lab.tca import frontier

    return CompareResult(
        data=REF,
        seed=seed,
        baseline="market",
        runs=tuple(runs),
        comparisons=paired_comparisons(runs, baseline="market", seed=1),
        frontier=frontier([r.summary for r in runs]),
    )


def _table_title(runs: list[BacktestResult]) -> str:
    """The compare summary table's title over `runs`, compared with market (seed 1)."""
    from repeg.lab.tables import compare_tables

    title = compare_tables(_compared(runs, seed=0))[0].title
    assert isinstance(title, str)
    return title


def test_the_terminal_title_says_the_verdicts_are_not_corrected_for_the_comparisons_made() -> None:
    title = _table_title([_run("market", MARKET), _run("p", [c - 0.3 for c in MARKET])])
    assert "no correction for the 1 comparison made" in title


def _spaced_orders(count: int, spacing_s: float, budget_s: float) -> list[OrderTca]:
    """Orders at 1.0 hs, `spacing_s` apart with `budget_s` budgets."""
    from datetime import timedelta

    out = []
    for i in range(count):
        arrival = T0 + timedelta(seconds=i * spacing_s)
        deadline = arrival + timedelta(seconds=budget_s)
        out.append(_order(i, 1.0).model_copy(update={"arrival": arrival, "deadline": deadline}))
    return out


def _false_verdict_rate(spacing_s: float, trials: int = 200) -> float:
    """No true difference; each order's difference shares the price moves of the 5 orders before it (a moving
    sum of noise), as orders 10 s apart with 60 s budgets do on the same side. The run length is the one
    `paired_comparisons` takes (`resampling_order`); 1,000 resamples a trial keep the 200 trials under a second
    (the rate is that of 4,000, 11.0%, within a trial of 200)."""
    from repeg.lab.stats import paired_difference, verdict_of
    from repeg.lab.tca import resampling_order

    rng = np.random.default_rng(11)
    _, block = resampling_order(_spaced_orders(200, spacing_s, 60.0))
    wrong = 0
    for trial in range(trials):
        noise = rng.normal(0.0, 1.0, 205)
        policy = [1.0 + float(noise[i : i + 6].sum()) for i in range(200)]
        diff = paired_difference(policy, [1.0] * 200, seed=trial, resamples=1000, block=block)
        wrong += verdict_of(diff) is not Verdict.INDISTINGUISHABLE
    return wrong / trials


def test_orders_whose_budgets_overlap_are_not_called_different_more_often_than_the_level_says() -> None:
    # Orders 10 s apart with 60 s budgets live through the same price moves: their differences are correlated,
    # and resampling them one at a time took 200 such orders for 200 independent ones (the interval about 0.4
    # times as wide as it should be): 40% of comparisons with no true difference got a verdict. Resampled in
    # runs of 11 orders, about 11% do in this worst case (every overlapping order shares the moves in full);
    # runs of 6 (the m + 1 orders one order overlaps) would give 14.5%, runs of 3 22%.
    assert _false_verdict_rate(10.0) <= 0.13


def test_orders_whose_budgets_do_not_overlap_are_resampled_one_at_a_time() -> None:
    runs = [
        _run("market", [1.0] * 40).model_copy(update={"orders": tuple(_spaced_orders(40, 60.0, 60.0))}),
        _run("p", [0.5] * 40).model_copy(update={"orders": tuple(_spaced_orders(40, 60.0, 60.0))}),
    ]
    (comparison,) = paired_comparisons(runs, baseline="market", seed=1)
    assert comparison.diff_half_spreads.block is None


def test_the_table_title_says_overlapping_orders_were_resampled_in_runs() -> None:
    orders = tuple(_spaced_orders(40, 10.0, 60.0))
    runs = [
        _run("market", [1.0] * 40).model_copy(update={"orders": orders}),
        _run("p", [0.5] * 40).model_copy(update={"policy": "p", "orders": orders}),
    ]
    assert paired_comparisons(runs, baseline="market", seed=1)[0].diff_half_spreads.block == 11
    title = _table_title(runs)
    assert "pairs are resampled in runs of 11 consecutive orders" in title


def _policy_versus_market(market: list[OrderTca], policy: tuple[OrderTca, ...]) -> PairedComparison:
    """Policy "p" paired against "market", order by order, in runs otherwise alike (seed 1)."""
    template = _run("market", [1.0] * len(market)).model_copy(update={"orders": tuple(market)})
    runs = [template, template.model_copy(update={"policy": "p", "orders": policy})]
    (comparison,) = paired_comparisons(runs, baseline="market", seed=1)
    return comparison


def test_orders_that_all_overlap_one_another_get_no_verdict() -> None:
    # 60 orders 1 s apart with 10-minute budgets all live through the same ten minutes of prices: one
    # observation of the market, however many orders. Resampled one at a time they were called better.
    market = _spaced_orders(60, 1.0, 600.0)
    policy = tuple(
        o.model_copy(update={"cost_half_spreads": 0.5 + 0.01 * (i % 7), "cost_bps": 0.5})
        for i, o in enumerate(market)
    )
    comparison = _policy_versus_market(market, policy)
    assert comparison.diff_half_spreads.high < 0.0
    assert comparison.verdict is Verdict.INDISTINGUISHABLE
    assert "60 paired orders with overlapping budgets count as 2.0" in (comparison.verdict_withheld or "")


def _quotes_file(path: Path, days: list[str]) -> Path:
    rows = [f"{day}T15:00:0{k}.000000Z,XXX,157.01,100,157.05,200" for day in days for k in range(2)]
    path.write_text("ts,symbol,bid,bid_size,ask,ask_size\n" + "\n".join(rows) + "\n")
    return path


def test_adaptive_parameters_fitted_on_history_that_includes_the_evaluation_day_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the fit file's first day was checked: a history of 2018-01-02 and 2018-01-03 in one file passed as
    # out of sample for an evaluation on 2018-01-03, which it holds.
    from repeg.lab.backtest import load_day
    from repeg.lab.policies import AdaptiveSpec

    history = load_day(_quotes_file(tmp_path / "fit.csv", ["2018-01-02", "2018-01-03"]))
    evaluation = load_day(_quotes_file(tmp_path / "eval.csv", ["2018-01-03"]))
    monkeypatch.setattr(
        compare_module, "fit_adaptive", lambda *_a, **_k: SimpleNamespace(fit_data=history.ref, fit_span=None)
    )
    with pytest.raises(ConfigError, match="in-sample"):
        compare_module.adaptive_params_for(
            AdaptiveSpec(name="adaptive"), FillModelName.PAPER, evaluation, history
        )


def test_a_saved_parameter_file_fitted_on_history_that_includes_the_evaluation_day_is_refused(
    tmp_path: Path,
) -> None:
    # A parameter file records the day its fit began: fitted on 2018-01-02 and 2018-01-03 it passed as out of
    # sample for an evaluation on 2018-01-03 (repeg fit --out, then a policy file naming it, or repeg sweep).
    from repeg.lab.backtest import load_day
    from repeg.lab.fit import fit_adaptive, save_params
    from repeg.lab.policies import AdaptiveSpec

    rows = [
        f"{day}T15:{m:02d}:{s:02d}.000000Z,XXX,157.01,100,157.05,200"
        for day in ("2018-01-02", "2018-01-03")
        for m in range(4)
        for s in range(0, 60, 5)
    ]
    fit_file = tmp_path / "fit.csv"
    fit_file.write_text("ts,symbol,bid,bid_size,ask,ask_size\n" + "\n".join(rows) + "\n")
    history = load_day(fit_file)
    params_file = tmp_path / "params.json"
    save_params(fit_adaptive(history.quotes.columns("XXX"), history.ref), params_file)
    evaluation = load_day(_quotes_file(tmp_path / "eval.csv", ["2018-01-03"]))
    spec = AdaptiveSpec(name="adaptive", params_file=str(params_file))
    with pytest.raises(ConfigError, match="in-sample"):
        compare_module.adaptive_params_for(spec, FillModelName.PAPER, evaluation, None)


def test_one_long_budget_among_independent_orders_does_not_withhold_the_verdict() -> None:
    # 200 orders 2 minutes apart with 60 s budgets are independent; one of them with a one-hour budget overlaps
    # the next 30. The run length came from that one order (the most later arrivals inside any budget): every
    # order was counted as one in 31, "200 paired orders with overlapping budgets count as 6.5", and a clear
    # difference got no verdict. The one long order correlates little with each short one it overlaps.
    from datetime import timedelta

    market = _spaced_orders(200, 120.0, 60.0)
    market[0] = market[0].model_copy(update={"deadline": market[0].arrival + timedelta(hours=1)})
    noise = np.random.default_rng(3).normal(0.0, 1.0, 200)
    policy = tuple(
        o.model_copy(update={"cost_half_spreads": 0.5 + float(noise[i]), "cost_bps": 0.5})
        for i, o in enumerate(market)
    )
    comparison = _policy_versus_market(market, policy)
    assert comparison.diff_half_spreads.high < 0.0
    assert comparison.verdict is Verdict.BETTER


def test_parameters_fitted_on_quotes_ending_at_midnight_utc_are_out_of_sample_for_that_day(
    tmp_path: Path,
) -> None:
    # Guard for 98b25c3/222c738: the refusal is by time span, so a fit whose last quote is at midnight UTC opening
    # the evaluation's (UTC) date, from the day before, is not taken as holding the evaluation's quotes.
    from repeg.lab.backtest import load_day
    from repeg.lab.fit import fit_adaptive, save_params
    from repeg.lab.policies import AdaptiveSpec

    rows = [
        f"2018-01-02T23:{m:02d}:{s:02d}.000000Z,XXX,157.01,100,157.05,200"
        for m in range(56, 60)
        for s in (0, 30)
    ]
    rows.append("2018-01-03T00:00:00.000000Z,XXX,157.01,100,157.05,200")
    fit_file = tmp_path / "fit.csv"
    fit_file.write_text("ts,symbol,bid,bid_size,ask,ask_size\n" + "\n".join(rows) + "\n")
    history = load_day(fit_file)
    params_file = tmp_path / "params.json"
    save_params(fit_adaptive(history.quotes.columns("XXX"), history.ref), params_file)
    evaluation = load_day(_quotes_file(tmp_path / "eval.csv", ["2018-01-03"]))
    spec = AdaptiveSpec(name="adaptive", params_file=str(params_file))
    params = compare_module.adaptive_params_for(spec, FillModelName.PAPER, evaluation, None)
    assert params is not None
    assert params.fit_span is not None
    assert params.fit_span[1] == datetime(2018, 1, 3, tzinfo=UTC)
    fitted_here = AdaptiveSpec(name="adaptive")
    assert (
        compare_module.adaptive_params_for(fitted_here, FillModelName.PAPER, evaluation, history) is not None
    )


def test_a_comparison_saved_with_one_fit_for_all_fill_models_still_reads(tmp_path: Path) -> None:
    # Results saved before `fits` hold one top-level `fit` (the last fill model's) and no `fits`: `repeg report`
    # must still read them, and say nothing new about which fill model that fit was for.
    import json

    from repeg.lab.report_data import load_result

    runs = [_run("market", MARKET), _run("adaptive", [c - 0.3 for c in MARKET])]
    saved = _compared(runs).model_dump(mode="json")
    del saved["fits"]
    fit_day = REF.model_copy(update={"day": date(2018, 1, 2)}).model_dump(mode="json")
    saved["fit"] = {"fit_data": fit_day, "params_file": None, "params": {"rule": "queue", "samples": "7"}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(saved))
    loaded = load_result(path).compare
    assert loaded is not None
    assert loaded.fits == ()
    assert loaded.fit is not None
    assert (loaded.fit.params["rule"], loaded.fit.fill_model, loaded.fit.policy) == ("queue", None, None)
