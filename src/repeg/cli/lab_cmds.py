"""`repeg backtest`, `repeg compare` and `repeg fit`: the execution-quality lab on the command line.

`backtest` and `compare` replay a symbol-day of quotes (and trades, for the queue model) with a basket of parent orders through the
real engine and simulator, and print costs with bootstrap intervals; `--json` prints the saved result shape
(`repeg.lab.models`) instead, `--out` also writes it to a file for `repeg report`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape

from repeg.cli.exit_codes import ExitCode, exit_code_for_error, one_line
from repeg.errors import ConfigError, RepegError

if TYPE_CHECKING:
    from repeg.brokers.simulator.latency import LatencyModel
    from repeg.lab.backtest import DayData
    from repeg.lab.models import FillModelName, ParentOrder
    from repeg.lab.policies import PolicySpec

_FILL_MODELS = ("paper", "queue")
#: The command-line option that sets each generated basket's field, to name a refused value by it.
_BASKET_OPTIONS = {"count": "--basket", "qty": "--qty", "budget_seconds": "--budget"}


def _fail(error: Exception) -> typer.Exit:
    code = exit_code_for_error(error) if isinstance(error, RepegError) else ExitCode.BAD_INPUT
    # One line (no wrapping), and a refused value may hold [markup] or :emoji: codes: print it verbatim.
    Console(stderr=True, soft_wrap=True, emoji=False).print(f"[red]error:[/] {escape(one_line(str(error)))}")
    return typer.Exit(int(code))


def _refuse_unwritable(out: Path | None) -> None:
    """`--out` in a directory that does not exist, or a directory itself, refused before the work it would save
    is done (it was otherwise found only once that work had run)."""
    if out is None:
        return
    if out.is_dir():
        raise ConfigError("--out", str(out), "cannot write: Is a directory")
    if not out.parent.is_dir():
        raise ConfigError("--out", str(out), f"cannot write: no directory {out.parent}")


def _refuse_out_over_input(out: Path | None, inputs: list[Path | str | None]) -> None:
    """`--out` naming a file the command reads (quotes, trades, fit data, arrivals, a policy TOML or the
    `params_file` it names) refused before the work runs: the JSON was written over it once the work was done."""
    from repeg.cli.report_cmds import _refuse_overwriting

    if out is None:
        return
    for name in inputs:
        _refuse_overwriting(out, name, option="--out", reader="command")


def _policy_files(texts: list[str], specs: list[PolicySpec]) -> list[Path | str | None]:
    """The files the policies are read from: the TOML files named (not a policy name) and their `params_file`."""
    from repeg.lab.policies import NAMED, AdaptiveSpec

    named: list[Path | str | None] = [text for text in texts if text not in NAMED]
    return named + [spec.params_file for spec in specs if isinstance(spec, AdaptiveSpec)]


def _emit(result: BaseModel, *, as_json: bool, out: Path | None) -> None:
    text = result.model_dump_json(indent=1)
    if out is not None:
        try:
            out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise _fail(ConfigError("--out", str(out), f"cannot write: {exc.strerror or exc}")) from exc
    if as_json:
        sys.stdout.write(text + "\n")


QuotesOpt = Annotated[
    Path, typer.Option("--quotes", help="Quote file (CSV, CSV.gz or Parquet) of one symbol-day.")
]
TradesOpt = Annotated[
    Path | None, typer.Option("--trades", help="Trade prints of the same day (queue model).")
]
SymbolOpt = Annotated[
    str | None, typer.Option("--symbol", help="Symbol to trade when the quote file holds several.")
]
BasketOpt = Annotated[
    int, typer.Option("--basket", min=1, help="Number of parent orders spread over the day (at most 23,400).")
]
ArrivalsOpt = Annotated[
    Path | None, typer.Option("--arrivals", help="CSV of arrivals (ts,side,qty[,budget_seconds]).")
]
QtyOpt = Annotated[str, typer.Option("--qty", help="Shares per generated order.")]
BudgetOpt = Annotated[float, typer.Option("--budget", min=1.0, help="Seconds each order has to complete.")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Seed of the simulator, basket and bootstrap.")]
FitQuotesOpt = Annotated[
    Path | None, typer.Option("--fit-quotes", help="Quotes of the FIT day (adaptive policy).")
]
FitTradesOpt = Annotated[
    Path | None, typer.Option("--fit-trades", help="Trades of the FIT day (queue-rule fit).")
]
LatencyOpt = Annotated[
    float, typer.Option("--latency", min=0.0, help="Simulated submit, cancel and replace latency in seconds.")
]
PrintShareOpt = Annotated[
    int,
    typer.Option(
        "--print-share",
        min=1,
        max=100,
        help="Queue model: percent of each print that could have traded with us.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Also write the JSON result to this file.")]


def _basket(
    day: DayData, *, count: int, arrivals: Path | None, qty: str, budget: float, seed: int
) -> tuple[ParentOrder, ...]:
    from decimal import Decimal, InvalidOperation

    from repeg.lab.backtest import day_basket
    from repeg.lab.baskets import BasketSpec, load_arrivals

    if arrivals is not None:
        if not arrivals.is_file():
            reason = "a directory, not a file" if arrivals.is_dir() else "no such file"
            raise ConfigError("--arrivals", str(arrivals), reason)
        return load_arrivals(arrivals, day.symbol, default_budget_seconds=budget)
    from repeg.domain.plan import plain_number_text

    if not plain_number_text(qty):  # Decimal reads "١٠٠" and "1_00" as 100
        raise ConfigError("--qty", qty, "not a number")
    try:
        shares = Decimal(qty)
    except InvalidOperation as exc:
        raise ConfigError("--qty", qty, "not a number") from exc
    try:
        spec = BasketSpec(count=count, qty=shares, budget_seconds=budget)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = _BASKET_OPTIONS.get(str(first["loc"][0]), str(first["loc"][0]))
        value = qty if option == "--qty" else first.get("input")  # as typed, not as Decimal('1E-10')
        raise ConfigError(option, value, first["msg"].removeprefix("Value error, ")) from exc
    return day_basket(day, spec, seed=seed)


def _without_unfittable(specs: list[PolicySpec], *, has_fit_data: bool) -> list[PolicySpec]:
    """Drop adaptive specs that have neither fit data nor a params file, saying so (never fit in-sample)."""
    from repeg.lab.policies import AdaptiveSpec

    kept = [s for s in specs if has_fit_data or not isinstance(s, AdaptiveSpec) or s.params_file is not None]
    if len(kept) < len(specs):
        Console(stderr=True).print(
            "[yellow]note:[/] adaptive skipped: it needs parameters fitted on another day "
            "(--fit-quotes/--fit-trades, or a spec with params_file)"
        )
    return kept


def _note_paper_rule_fit(
    specs: list[PolicySpec], models: list[FillModelName], fit_day: DayData | None
) -> None:
    """Say so when an adaptive run under the queue model is fitted with the paper rule (no fit-day trades)."""
    from repeg.lab.models import FillModelName
    from repeg.lab.policies import AdaptiveSpec

    fitted_here = any(isinstance(s, AdaptiveSpec) and s.params_file is None for s in specs)
    if fitted_here and FillModelName.QUEUE in models and fit_day is not None and fit_day.trades is None:
        Console(stderr=True).print(
            "[yellow]note:[/] adaptive under the queue model is fitted with the paper rule: "
            "the queue rule needs the fit day's trades (--fit-trades)"
        )


def _note_queue_without_prints(models: list[FillModelName], day: DayData) -> None:
    """Say so when the queue model ran without trade prints: resting orders then fill on crossing quotes only.
    Said once the run is done: some inputs are refused only by the run (a basket of two budgets, in-sample
    parameters), and a refusal is one line on stderr."""
    from repeg.lab.backtest import QUEUE_WITHOUT_PRINTS
    from repeg.lab.models import FillModelName

    if FillModelName.QUEUE in models and day.trades is None:
        Console(stderr=True, soft_wrap=True).print(f"[yellow]note:[/] {QUEUE_WITHOUT_PRINTS}")


def _refuse_nothing_to_compare(
    specs: list[PolicySpec], models: list[FillModelName], *, policies: str, fill_models: str
) -> None:
    """No policy left (none named, or only an adaptive one without fit data), no fill model, or one named twice:
    refused naming the option and the value given (`repeg.lab.compare` would name neither)."""
    if not specs:
        raise ConfigError("--policies", policies, "no policy to compare")
    if not models:
        raise ConfigError("--fill-models", fill_models, "no fill model to compare under")
    names = [spec.name or spec.kind for spec in specs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError("--policies", policies, f"policy names must be unique; repeated: {repeated}")
    if len(set(models)) != len(models):
        raise ConfigError("--fill-models", fill_models, "each fill model at most once")


def _fit_day(quotes: Path | None, trades: Path | None, symbol: str | None) -> DayData | None:
    """The FIT day's data, or None without `--fit-quotes`; `--fit-trades` alone is refused (it was dropped without
    a word, the adaptive policy then told to get fit data the user had half given)."""
    from repeg.lab.backtest import load_day

    if quotes is None:
        if trades is not None:
            raise ConfigError(
                "--fit-trades", str(trades), "needs --fit-quotes, the quotes of the same fit day"
            )
        return None
    return load_day(quotes, trades, symbol=symbol)


def _latency(seconds: float) -> LatencyModel:
    """The same delay for submit, cancel and replace, bounded as `[simulator.latency]` is (a bad one named)."""
    from repeg.brokers.simulator.latency import LatencyModel

    try:
        return LatencyModel.from_mapping({"submit_ack": seconds, "cancel": seconds, "replace": seconds})
    except ConfigError as exc:
        raise ConfigError("--latency", seconds, exc.reason) from exc


def _fill_model(name: str, option: str = "--fill-model") -> FillModelName:
    from repeg.lab.models import FillModelName

    if name not in _FILL_MODELS:
        raise ConfigError(option, name, f"must be one of {', '.join(_FILL_MODELS)}")
    return FillModelName(name)


def backtest(
    *,
    quotes: QuotesOpt,
    trades: TradesOpt = None,
    symbol: SymbolOpt = None,
    basket: BasketOpt = 200,
    arrivals: ArrivalsOpt = None,
    qty: QtyOpt = "100",
    budget: BudgetOpt = 60.0,
    policy: Annotated[str, typer.Option("--policy", help="Policy name or TOML spec file.")] = "default",
    fill_model: Annotated[str, typer.Option("--fill-model", help="paper | queue")] = "paper",
    seed: SeedOpt = 0,
    fit_quotes: FitQuotesOpt = None,
    fit_trades: FitTradesOpt = None,
    latency: LatencyOpt = 0.0,
    print_share: PrintShareOpt = 100,
    as_json: JsonOpt = False,
    out: OutOpt = None,
) -> None:
    """Backtest one policy on one symbol-day with a basket of parent orders."""
    from repeg.lab.backtest import load_day, run_backtest
    from repeg.lab.compare import adaptive_params_for, fit_order_qty
    from repeg.lab.policies import policy_spec
    from repeg.lab.tables import summary_table
    from repeg.logging import configure_logging

    configure_logging(level="warning")
    try:
        _refuse_unwritable(out)
        model = _fill_model(fill_model)
        spec = policy_spec(policy)
        inputs = [quotes, trades, fit_quotes, fit_trades, arrivals, *_policy_files([policy], [spec])]
        _refuse_out_over_input(out, inputs)
        day = load_day(quotes, trades, symbol=symbol)
        fit_day = _fit_day(fit_quotes, fit_trades, symbol)
        orders = _basket(day, count=basket, arrivals=arrivals, qty=qty, budget=budget, seed=seed)
        _note_paper_rule_fit([spec], [model], fit_day)
        params = adaptive_params_for(
            spec, model, day, fit_day, print_share_pct=print_share, order_qty=fit_order_qty(orders)
        )
        result = run_backtest(
            day,
            orders,
            spec,
            fill_model=model,
            seed=seed,
            adaptive_params=params,
            latency=_latency(latency),
            print_share_pct=print_share,
        )
        _note_queue_without_prints([model], day)
    except (RepegError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    _emit(result, as_json=as_json, out=out)
    if not as_json:
        title = (
            # The orders' own budget: an --arrivals file's budget_seconds column overrides --budget.
            f"{day.symbol} {day.ref.day}: {len(orders)} orders, {orders[0].budget_seconds:g}s budget, seed {seed}; "
            "costs per share (orders weighted by size)"
        )
        Console(width=max(Console().width, 200)).print(
            summary_table([result.summary], [], title=title, with_verdict=False)
        )


def compare(
    *,
    quotes: QuotesOpt,
    trades: TradesOpt = None,
    symbol: SymbolOpt = None,
    policies: Annotated[
        str,
        typer.Option(
            "--policies", help="Comma-separated policy names or TOML files; 'market' is the baseline."
        ),
    ] = "market,touch-then-market,ladder,default,adaptive",
    fill_models: Annotated[
        str, typer.Option("--fill-models", help="Comma-separated: paper,queue")
    ] = "paper,queue",
    basket: BasketOpt = 200,
    arrivals: ArrivalsOpt = None,
    qty: QtyOpt = "100",
    budget: BudgetOpt = 60.0,
    seed: SeedOpt = 0,
    fit_quotes: FitQuotesOpt = None,
    fit_trades: FitTradesOpt = None,
    latency: LatencyOpt = 0.0,
    print_share: PrintShareOpt = 100,
    as_json: JsonOpt = False,
    out: OutOpt = None,
) -> None:
    """Compare policies under each fill model on one symbol-day, with paired verdicts against market."""
    from repeg.lab.backtest import load_day
    from repeg.lab.compare import compare as run_compare
    from repeg.lab.policies import policy_spec
    from repeg.lab.tables import compare_tables
    from repeg.logging import configure_logging

    configure_logging(level="warning")
    try:
        _refuse_unwritable(out)
        models = [
            _fill_model(name.strip(), "--fill-models") for name in fill_models.split(",") if name.strip()
        ]
        names = [name.strip() for name in policies.split(",") if name.strip()]
        specs = [policy_spec(name, "--policies") for name in names]
        inputs = [quotes, trades, fit_quotes, fit_trades, arrivals, *_policy_files(names, specs)]
        _refuse_out_over_input(out, inputs)
        day = load_day(quotes, trades, symbol=symbol)
        fit_day = _fit_day(fit_quotes, fit_trades, symbol)
        specs = _without_unfittable(specs, has_fit_data=fit_day is not None)
        _refuse_nothing_to_compare(specs, models, policies=policies, fill_models=fill_models)
        _note_paper_rule_fit(specs, models, fit_day)
        orders = _basket(day, count=basket, arrivals=arrivals, qty=qty, budget=budget, seed=seed)
        result = run_compare(
            day,
            orders,
            specs,
            models,
            seed=seed,
            fit_day=fit_day,
            latency=_latency(latency),
            print_share_pct=print_share,
        )
        _note_queue_without_prints(models, day)
    except (RepegError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    _emit(result, as_json=as_json, out=out)
    if not as_json:
        console = Console(width=max(Console().width, 230))
        for table in compare_tables(result):
            console.print(table)


def fit(
    *,
    quotes: QuotesOpt,
    trades: Annotated[
        Path | None,
        typer.Option("--trades", help="Trades of the fit day: fit the queue rule (else the paper rule)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the fitted parameters (JSON).")],
    symbol: SymbolOpt = None,
) -> None:
    """Fit the adaptive policy's parameters on one (FIT) symbol-day and save them with the data's digest."""
    from repeg.lab.backtest import load_day
    from repeg.lab.compare import fit_trades_of
    from repeg.lab.fit import fit_adaptive, save_params

    try:
        _refuse_unwritable(out)
        _refuse_out_over_input(out, [quotes, trades])
        day = load_day(quotes, trades, symbol=symbol)
        symbol_trades = fit_trades_of(day, option="--trades")
        params = fit_adaptive(day.quotes.columns(day.symbol), day.ref, trades=symbol_trades)
        try:
            save_params(params, out)
        except OSError as exc:
            raise ConfigError("--out", str(out), f"cannot write: {exc.strerror or exc}") from exc
    except (RepegError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    # Plain text: a path is neither rich markup nor to be wrapped.
    typer.echo(
        f"fitted {params.rule.value} rule on {day.symbol} {day.ref.day} ({params.samples} samples) -> {out}"
    )


def register(app: typer.Typer) -> None:
    """Add `backtest`, `compare` and `fit` to the `repeg` app."""
    app.command("backtest")(backtest)
    app.command("compare")(compare)
    app.command("fit")(fit)
