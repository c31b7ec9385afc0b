"""The lab end to end on the real quotes and trades of ../shared: backtests through the engine and simulator,
the adaptive policy fitted on 2018-01-02 and evaluated on 2018-01-03, and the `repeg compare` command.

Small baskets keep it fast; the full 200-order figures are in docs/EXECUTION_QUALITY.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from repeg.cli.app import build_app
from repeg.domain.orders import Side
from repeg.errors import ConfigError
from repeg.lab.backtest import DayData, day_basket, load_day, run_backtest
from repeg.lab.baskets import BasketSpec
from repeg.lab.compare import compare
from repeg.lab.models import BacktestResult, CompareResult, FillModelName, PathEventKind
from repeg.lab.policies import policy_spec

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "quotes"
FIT_Q, FIT_T = DATA / "xxx_20180102_nyse_bbo.csv.gz", DATA / "xxx_20180102_trades.csv.gz"
EVAL_Q, EVAL_T = DATA / "xxx_20180103_nyse_bbo.csv.gz", DATA / "xxx_20180103_trades.csv.gz"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(
        not all(p.exists() for p in (FIT_Q, FIT_T, EVAL_Q, EVAL_T)), reason="../shared data absent"
    ),
]


@pytest.fixture(scope="module")
def eval_day() -> DayData:
    return load_day(EVAL_Q, EVAL_T)


@pytest.fixture(scope="module")
def fit_day() -> DayData:
    return load_day(FIT_Q, FIT_T)


@pytest.fixture(scope="module")
def comparison(eval_day: DayData, fit_day: DayData) -> CompareResult:
    basket = day_basket(eval_day, BasketSpec(count=24), seed=3)
    specs = [policy_spec(name) for name in ("market", "default", "adaptive")]
    return compare(
        eval_day, basket, specs, [FillModelName.PAPER, FillModelName.QUEUE], seed=3, fit_day=fit_day
    )


def test_every_policy_runs_under_both_fill_models_and_completes(comparison: CompareResult) -> None:
    assert {(r.policy, r.fill_model) for r in comparison.runs} == {
        (p, m) for p in ("market", "default", "adaptive") for m in FillModelName
    }
    assert all(r.summary.completion_rate == 1.0 for r in comparison.runs)


def test_adaptive_is_fitted_on_the_fit_day_and_evaluated_on_another(comparison: CompareResult) -> None:
    assert comparison.fits
    assert all(str(fit.fit_data.day) == "2018-01-02" for fit in comparison.fits)
    assert str(comparison.data.day) == "2018-01-03"


def test_the_saved_result_names_the_fit_each_fill_model_used(comparison: CompareResult) -> None:
    # The adaptive policy is fitted once per fill model (paper rule, queue rule), but the result's one `fit` was
    # overwritten in the loop: it named the queue fit (rule, samples) as the fit of every run, paper's included.
    saved = json.loads(comparison.model_dump_json())
    fits = {(f["policy"], f["fill_model"]): f for f in saved["fits"]}
    adaptive = [r for r in comparison.runs if r.policy == "adaptive"]
    assert set(fits) == {("adaptive", r.fill_model.value) for r in adaptive}
    for run in adaptive:
        fit = fits[("adaptive", run.fill_model.value)]
        assert fit["params"]["rule"] == run.policy_params["fit_rule"] == run.fill_model.value
        assert fit["params"]["samples"] == run.policy_params["fit_samples"]
        assert fit["fit_data"]["day"] == run.policy_params["fit_day"] == "2018-01-02"


def test_default_policy_is_not_worse_than_market_under_paper(comparison: CompareResult) -> None:
    # On the fixture's 24 orders no verdict is drawn (too few pairs): the interval itself must reach zero or below.
    diffs = {(c.policy, c.fill_model): c.diff_half_spreads for c in comparison.comparisons}
    assert diffs[("default", FillModelName.PAPER)].low <= 0.0


def test_market_orders_cost_about_one_half_spread(comparison: CompareResult) -> None:
    market = next(r for r in comparison.runs if r.policy == "market" and r.fill_model is FillModelName.PAPER)
    assert 0.5 < market.summary.cost_half_spreads.mean < 1.5
    assert market.summary.fill_rate_before_escalation == 0.0


def test_every_fill_lies_within_the_quote_at_its_time_or_at_the_order_limit(
    comparison: CompareResult, eval_day: DayData
) -> None:
    tape = eval_day.quotes
    for run in comparison.runs:
        for order in run.orders:
            limits = [e.price for e in order.path if e.kind in (PathEventKind.SUBMIT, PathEventKind.REPLACE)]
            for fill in (e for e in order.path if e.kind is PathEventKind.FILL):
                quote = tape.quote_at(order.symbol, fill.ts)
                assert quote is not None
                assert fill.price is not None
                at_limit = fill.price in limits
                inside = quote.bid <= fill.price <= quote.ask
                assert at_limit or inside, (run.policy, run.fill_model, order.index, fill)
                if order.side is Side.BUY and not at_limit:
                    assert fill.price == quote.ask


def test_adaptive_fitted_on_the_evaluation_day_is_refused(eval_day: DayData) -> None:
    basket = day_basket(eval_day, BasketSpec(count=2), seed=0)
    with pytest.raises(ConfigError, match="in-sample"):
        compare(eval_day, basket, [policy_spec("adaptive")], [FillModelName.PAPER], seed=0, fit_day=eval_day)


def test_backtest_is_deterministic_given_its_seed(eval_day: DayData) -> None:
    basket = day_basket(eval_day, BasketSpec(count=6), seed=1)
    a = run_backtest(eval_day, basket, policy_spec("default"), fill_model=FillModelName.PAPER, seed=5)
    b = run_backtest(eval_day, basket, policy_spec("default"), fill_model=FillModelName.PAPER, seed=5)
    assert a == b


def test_compare_command_prints_the_table_for_both_fill_models() -> None:
    result = CliRunner().invoke(
        build_app(("repeg.cli.lab_cmds",)),
        [
            "compare",
            "--quotes",
            str(EVAL_Q),
            "--trades",
            str(EVAL_T),
            "--policies",
            "market,default",
            "--basket",
            "6",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "paper" in result.output
    assert "queue" in result.output
    assert "default" in result.output


def test_backtest_command_writes_the_saved_schema(tmp_path: Path) -> None:
    out = tmp_path / "bt.json"
    result = CliRunner().invoke(
        build_app(("repeg.cli.lab_cmds",)),
        [
            "backtest",
            "--quotes",
            str(EVAL_Q),
            "--trades",
            str(EVAL_T),
            "--basket",
            "4",
            "--policy",
            "ladder",
            "--fill-model",
            "queue",
            "--json",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = BacktestResult.model_validate_json(out.read_text(encoding="utf-8"))
    assert saved.fill_model is FillModelName.QUEUE
    assert len(saved.orders) == 4
    assert json.loads(result.stdout)["policy"] == "ladder"


def test_compare_command_refuses_an_unknown_fill_model() -> None:
    result = CliRunner().invoke(
        build_app(("repeg.cli.lab_cmds",)),
        ["compare", "--quotes", str(EVAL_Q), "--fill-models", "magic", "--basket", "2"],
    )
    assert result.exit_code == 2


def test_fit_command_saves_parameters_that_a_policy_file_uses(tmp_path: Path) -> None:
    params = tmp_path / "adaptive.json"
    app = build_app(("repeg.cli.lab_cmds",))
    fitted = CliRunner().invoke(app, ["fit", "--quotes", str(FIT_Q), "--out", str(params)])
    assert fitted.exit_code == 0, fitted.output
    saved = json.loads(params.read_text(encoding="utf-8"))
    assert (saved["rule"], saved["fit_data"]["day"]) == ("paper", "2018-01-02")
    spec = tmp_path / "adaptive.toml"
    spec.write_text(f'[policy]\nkind = "adaptive"\nparams_file = "{params}"\n', encoding="utf-8")
    run = CliRunner().invoke(
        app, ["backtest", "--quotes", str(EVAL_Q), "--basket", "4", "--policy", str(spec), "--json"]
    )
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["summary"]["completion_rate"] == 1.0


def _patched_to_overflow(monkeypatch: pytest.MonkeyPatch, module: str, name: str) -> None:
    def overflow(*_: object, **__: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(f"{module}.{name}", overflow)


def _assert_the_bug_is_not_blamed_on_input(result: Result) -> None:
    """An unexpected RecursionError surfaces as the bug it is (exit 1), not as 'nested too deeply' (exit 2)."""
    assert "nested too deeply" not in result.output
    assert result.exit_code != 2
    assert isinstance(result.exception, RecursionError)


def test_a_recursion_error_inside_a_backtest_is_not_blamed_on_the_policy_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The RecursionError catch wrapped the whole command: a bug deep in the backtest was printed as
    # "--policy='market': nested too deeply", exit 2, blaming a built-in policy name. The parsers guard themselves.
    _patched_to_overflow(monkeypatch, "repeg.lab.backtest", "run_backtest")
    args = ["backtest", "--quotes", str(EVAL_Q), "--basket", "2", "--policy", "market"]
    result = CliRunner().invoke(build_app(("repeg.cli.lab_cmds",)), args)
    _assert_the_bug_is_not_blamed_on_input(result)


def test_a_recursion_error_inside_a_comparison_is_not_blamed_on_the_policies_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _patched_to_overflow(monkeypatch, "repeg.lab.compare", "compare")
    args = ["compare", "--quotes", str(EVAL_Q), "--basket", "2", "--policies", "market,default"]
    result = CliRunner().invoke(build_app(("repeg.cli.lab_cmds",)), args)
    _assert_the_bug_is_not_blamed_on_input(result)


def test_a_recursion_error_while_drawing_a_report_is_not_blamed_on_the_result_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `repeg report` caught RecursionError around loading, drawing and writing alike: "<result>: nested too deeply".
    out = tmp_path / "bt.json"
    args = ["backtest", "--quotes", str(EVAL_Q), "--basket", "2", "--policy", "market", "--out", str(out)]
    assert CliRunner().invoke(build_app(("repeg.cli.lab_cmds",)), args).exit_code == 0
    _patched_to_overflow(monkeypatch, "repeg.lab.report_html", "write_report")
    report = ["report", str(out), "--html", str(tmp_path / "r.html"), "--no-market"]
    result = CliRunner().invoke(build_app(("repeg.cli.report_cmds",)), report)
    _assert_the_bug_is_not_blamed_on_input(result)


def test_a_recursion_error_inside_a_sweep_is_not_blamed_on_the_grid_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text('[basket]\ncount = 2\n[[policy]]\nname = "m"\nkind = "market"\n', encoding="utf-8")
    _patched_to_overflow(monkeypatch, "repeg.lab.sweep", "run_sweep")
    args = ["sweep", "--quotes", str(EVAL_Q), "--grid", str(grid), "--out", str(tmp_path / "o.parquet")]
    result = CliRunner().invoke(build_app(("repeg.cli.report_cmds",)), [*args, "--no-progress"])
    _assert_the_bug_is_not_blamed_on_input(result)


#: An adaptive backtest of a 2-order basket on the evaluation day (its fit options are each test's own).
_ADAPTIVE_BACKTEST = [
    "backtest",
    "--quotes",
    str(EVAL_Q),
    "--trades",
    str(EVAL_T),
    "--basket",
    "2",
    "--policy",
    "adaptive",
]


def test_an_adaptive_fit_without_fit_trades_under_the_queue_model_says_it_used_the_paper_rule(
    tmp_path: Path,
) -> None:
    # The queue model's adaptive is fitted under the queue rule from the fit day's trades; without --fit-trades it
    # silently fell back to the paper rule, and nothing but a field of the JSON told the queue figures apart.
    out = tmp_path / "bt.json"
    fit = ["--fill-model", "queue", "--fit-quotes", str(FIT_Q), "--out", str(out)]
    result = CliRunner().invoke(build_app(("repeg.cli.lab_cmds",)), [*_ADAPTIVE_BACKTEST, *fit])
    assert result.exit_code == 0, result.output
    assert BacktestResult.model_validate_json(out.read_text()).policy_params["fit_rule"] == "paper"
    assert "fitted with the paper rule" in result.stderr
    assert "--fit-trades" in result.stderr


def _trades_of_another_symbol(tmp_path: Path) -> Path:
    other = tmp_path / "yyy_trades.csv"
    other.write_text(
        "ts,symbol,price,size,exchange,conditions\n2018-01-02T14:30:00.500000Z,YYY,157.03,300,N,@\n"
    )
    return other


def test_an_adaptive_fit_on_a_trade_file_without_the_symbol_is_refused_naming_it(tmp_path: Path) -> None:
    # --fit-trades holding another symbol's prints only: the queue-rule fit read its columns of the symbol and
    # ended in a KeyError traceback (exit 1), nothing naming the file.
    other = _trades_of_another_symbol(tmp_path)
    fit = ["--fill-model", "queue", "--fit-quotes", str(FIT_Q), "--fit-trades", str(other)]
    result = CliRunner().invoke(build_app(("repeg.cli.lab_cmds",)), [*_ADAPTIVE_BACKTEST, *fit])
    assert result.exit_code == 2, result.output
    assert str(other) in result.output
    assert "no prints of XXX" in result.output


def test_fit_on_a_trade_file_without_the_symbol_is_refused_naming_it(tmp_path: Path) -> None:
    # 'repeg fit --trades' holding another symbol's prints only: a KeyError traceback (exit 1).
    other = _trades_of_another_symbol(tmp_path)
    args = ["fit", "--quotes", str(FIT_Q), "--trades", str(other), "--out", str(tmp_path / "p.json")]
    result = CliRunner().invoke(build_app(("repeg.cli.lab_cmds",)), args)
    assert result.exit_code == 2, result.output
    assert "--trades" in result.output
    assert "no prints of XXX" in result.output


def _quotes_of_two_symbols(tmp_path: Path) -> Path:
    quotes = tmp_path / "two_20180102_bbo.csv"
    quotes.write_text(
        "ts,symbol,bid,bid_size,ask,ask_size\n"
        "2018-01-02T14:30:00.000000Z,AAA,10.00,100,10.02,100\n"
        "2018-01-02T14:30:01.000000Z,BBB,20.00,100,20.02,100\n"
    )
    return quotes


def test_backtest_on_a_quote_file_of_several_symbols_without_symbol_names_the_symbol_option(
    tmp_path: Path,
) -> None:
    # It said "config symbol: ... name one", naming no option the user could give.
    quotes = _quotes_of_two_symbols(tmp_path)
    result = CliRunner().invoke(
        build_app(("repeg.cli.lab_cmds",)), ["backtest", "--quotes", str(quotes), "--policy", "market"]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(
        f"error: config --symbol: not given, and {quotes} holds 2 symbols ('AAA', 'BBB'): name one"
    ), result.stderr


def test_backtest_title_states_the_budget_the_arrivals_file_gave(tmp_path: Path) -> None:
    # Every order of this arrivals file has 30 s; the title printed --budget's default ("60s budget") instead.
    arrivals = tmp_path / "arrivals.csv"
    arrivals.write_text(
        "ts,side,qty,budget_seconds\n2018-01-03T15:00:00Z,buy,100,30\n2018-01-03T15:05:00Z,sell,100,30\n"
    )
    args = ["backtest", "--quotes", str(EVAL_Q), "--arrivals", str(arrivals), "--policy", "market"]
    result = CliRunner().invoke(build_app(("repeg.cli.lab_cmds",)), args)
    assert result.exit_code == 0, result.output
    assert "2 orders, 30s budget" in result.output


@pytest.mark.parametrize("command", ["backtest", "compare"])
def test_the_queue_model_without_trades_says_it_fills_on_crossing_quotes_only(command: str) -> None:
    # Without --trades the queue model has no print to fill a resting order from: its figures (printed as
    # "queue", the default of `compare`) are then more pessimistic than paper's, and nothing said so.
    models = ["--fill-model", "queue"] if command == "backtest" else ["--fill-models", "queue"]
    policy = ["--policy", "market"] if command == "backtest" else ["--policies", "market"]
    args = [command, "--quotes", str(EVAL_Q), "--basket", "2", *policy, *models]
    result = CliRunner().invoke(build_app(("repeg.cli.lab_cmds",)), args)
    assert result.exit_code == 0, result.output
    assert "queue model has no trade prints" in result.stderr
    assert "--trades" in result.stderr


@pytest.mark.parametrize("command", ["backtest", "compare"])
def test_a_basket_refused_by_the_run_prints_its_error_without_the_queue_note(
    tmp_path: Path, command: str
) -> None:
    # Two budgets in one arrivals file are refused only when the run starts (the engine runs one budget per
    # basket): the no-trade-prints note came first, so stderr held a note and then the error, not the one line.
    arrivals = tmp_path / "arrivals.csv"
    arrivals.write_text(
        "ts,side,qty,budget_seconds\n2018-01-03T15:00:00Z,buy,100,30\n2018-01-03T15:05:00Z,sell,100,60\n"
    )
    models = ["--fill-model", "queue"] if command == "backtest" else ["--fill-models", "queue"]
    policy = ["--policy", "market"] if command == "backtest" else ["--policies", "market"]
    args = [command, "--quotes", str(EVAL_Q), "--arrivals", str(arrivals), *policy, *models]
    result = CliRunner().invoke(build_app(("repeg.cli.lab_cmds",)), args)
    assert result.exit_code == 2, result.output
    assert (
        result.stderr
        == "error: config budget_seconds=[30.0, 60.0]: the engine runs one time budget per basket\n"
    )
