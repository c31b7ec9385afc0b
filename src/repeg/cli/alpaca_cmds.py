"""Alpaca on the command line: `repeg check --broker alpaca-paper|alpaca-live [PLAN]`, and the function that
`repeg run --broker alpaca-paper|alpaca-live` calls (`run_on_alpaca`).

`check` reads the account, the market clock, the positions and the asset flags of a plan's symbols, and sends
no order (so it needs no `--confirm`, even live). A run on `alpaca-live` refuses to start without `--confirm`;
on a closed market it refuses unless `--allow-closed`; `--dry-run` prices and prints every order it would send
and sends none. Credentials come from `APCA_API_KEY_ID`/`APCA_API_SECRET_KEY` (see docs/ALPACA.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repeg.cli.exit_codes import ExitCode, exit_code_for_error, one_line
from repeg.errors import ConfigError, RepegError

if TYPE_CHECKING:
    from repeg.brokers.alpaca.adapter import AlpacaBroker
    from repeg.brokers.alpaca.dryrun import DryRunOrder
    from repeg.brokers.alpaca.settings import AlpacaSettings, AlpacaUrls
    from repeg.config import ExecutionConfig
    from repeg.domain.events import EventSink
    from repeg.domain.plan import Plan
    from repeg.journal.base import Journal
    from repeg.report.result import ExecutionResult, LegResult

#: `--broker` values served by this module, and the Alpaca mode each one means.
ALPACA_BROKERS: dict[str, str] = {"alpaca-paper": "paper", "alpaca-live": "live"}

Echo = Callable[[str], None]


def _stderr(text: str) -> None:
    typer.echo(text, err=True)


def mode_for(broker: str) -> str:
    """The Alpaca mode of a `--broker` value; `ConfigError` naming `--broker` for anything else."""
    if broker not in ALPACA_BROKERS:
        raise ConfigError("--broker", broker, f"not an Alpaca broker (known: {', '.join(ALPACA_BROKERS)})")
    return ALPACA_BROKERS[broker]


async def execute_on_alpaca(
    plan: Plan,
    config: ExecutionConfig,
    *,
    broker: str,
    confirm: bool,
    allow_closed: bool,
    dry_run: bool,
    feed: str = "iex",
    run_id: str | None = None,
    sinks: Sequence[EventSink] = (),
    echo: Echo = _stderr,
    urls: AlpacaUrls | None = None,
    settings: AlpacaSettings | None = None,
    journal: Journal | None = None,
) -> ExecutionResult:
    """Run `plan` on Alpaca (paper or live) through `repeg.api.execute_async`, closing every connection after.

    With a `journal` (and not a dry run) the run goes through `journaled_session`: journaled write-ahead, resumed
    rather than repeated if the journal knows `run_id`, and stopped gracefully on SIGINT/SIGTERM (its own
    working orders cancelled and confirmed; a second signal leaves a resumable run).

    Refusals before any order: `LiveTradingNotConfirmedError` (live without `confirm`), `MarketClosedError`
    (closed, without `allow_closed`), `AuthenticationError`, plus everything `execute_async` refuses. With
    `dry_run`, a `DryRunBroker` wraps the adapter and the orders it would have sent are printed with `echo`.
    """
    from repeg.api import execute_async
    from repeg.brokers.alpaca.dryrun import DryRunBroker
    from repeg.brokers.alpaca.factory import build_alpaca
    from repeg.brokers.base import Broker
    from repeg.domain.events import AlpacaFeedSource
    from repeg.engine.clock import RealClock

    clock = RealClock()
    alpaca, quotes = await build_alpaca(
        mode_for(broker),
        confirm_live=confirm,
        allow_closed=allow_closed,
        clock=clock,
        feed=feed,
        urls=urls,
        settings=settings,
    )
    try:
        say_if_closed(alpaca, echo, dry_run=dry_run)
        if journal is not None and not dry_run:
            from repeg.cli.journal_run import journaled_session

            if run_id is None:
                raise ConfigError(
                    "--run-id", None, "a journaled Alpaca run needs its run id before it starts"
                )
            return await journaled_session(
                plan,
                config,
                run_id,
                journal=journal,
                broker=alpaca,
                feed=quotes,
                clock=clock,
                sinks=sinks,
                market=AlpacaFeedSource(feed=feed),
                on_stop=alpaca.stopping,
            )
        target: Broker = DryRunBroker(alpaca) if dry_run else alpaca
        result = await execute_async(
            plan,
            target,
            quotes,
            clock,
            config,
            run_id=run_id,
            sinks=sinks,
            market_source=AlpacaFeedSource(feed=feed),
        )
        if isinstance(target, DryRunBroker):
            echo_dry_run(target.recorded, echo)
            for leg in unpriced_legs(result):
                echo(f"  {leg.symbol:<8} not priced: {leg.error or leg.reason or leg.status.value}")
        return result
    finally:
        await quotes.aclose()
        await alpaca.aclose()


def say_if_closed(alpaca: AlpacaBroker, echo: Echo = _stderr, *, dry_run: bool = False) -> None:
    """Tell the user (stderr by default: stdout is the result) that the market `build_alpaca` found closed, with
    `--allow-closed`, queues the run's DAY orders until its next open; a fresh run and a resume alike. A dry run,
    which queues nothing, is told only that the market is closed and when it opens."""
    if alpaca.market_clock is not None and not alpaca.market_clock.is_open:
        opens = alpaca.market_clock.next_open.isoformat()
        echo(
            f"market closed (next open {opens})"
            if dry_run
            else f"market closed: DAY orders queue until {opens}"
        )


def run_on_alpaca(
    plan: Plan,
    config: ExecutionConfig,
    *,
    broker: str,
    confirm: bool,
    allow_closed: bool,
    dry_run: bool,
    feed: str = "iex",
    run_id: str | None = None,
    sinks: Sequence[EventSink] = (),
    echo: Echo = _stderr,
    journal: Journal | None = None,
) -> ExecutionResult:
    """Synchronous entry point of `execute_on_alpaca` for `repeg run --broker alpaca-paper|alpaca-live`."""
    return asyncio.run(
        execute_on_alpaca(
            plan,
            config,
            broker=broker,
            confirm=confirm,
            allow_closed=allow_closed,
            dry_run=dry_run,
            feed=feed,
            run_id=run_id,
            sinks=sinks,
            echo=echo,
            journal=journal,
        )
    )


def echo_dry_run(recorded: Sequence[DryRunOrder], echo: Echo) -> None:
    echo(f"dry run: {len(recorded)} order(s) priced, none sent")
    for order in recorded:
        price = "market" if order.limit_price is None else f"limit {order.limit_price}"
        echo(f"  {order.symbol:<8} {order.side.value:<4} {order.qty:>12} {price}  [{order.client_order_id}]")


def unpriced_legs(result: ExecutionResult) -> list[LegResult]:
    """The legs of a dry run whose first order was never priced (refused by a safety rail, e.g. the price collar,
    or failed otherwise): neither skipped, as a real run skips them, nor refused by the dry run (`DRY_RUN_REFUSAL`)."""
    from repeg.brokers.alpaca.dryrun import DRY_RUN_REFUSAL
    from repeg.domain.lifecycle import LegStatus

    return [
        leg
        for leg in result.legs
        if leg.status is not LegStatus.SKIPPED and not (leg.error or "").endswith(DRY_RUN_REFUSAL)
    ]


def dry_run_exit_code(result: ExecutionResult) -> ExitCode:
    """A dry run's exit code: the real run's, had each order it priced filled. 0 when every leg not skipped had its
    first order priced; else 3 if one was (the real run would end partial), 4 if none (it would end failed)."""
    from repeg.domain.lifecycle import LegStatus

    unpriced = unpriced_legs(result)
    if not unpriced:
        return ExitCode.OK
    needed = [leg for leg in result.legs if leg.status is not LegStatus.SKIPPED]
    return ExitCode.PARTIAL if len(unpriced) < len(needed) else ExitCode.FAILED


# --- repeg check ---------------------------------------------------------------------------------------------


async def check_alpaca(
    broker: str,
    plan_path: Path | None,
    echo: Echo,
    *,
    urls: AlpacaUrls | None = None,
    settings: AlpacaSettings | None = None,
) -> None:
    """Print account, market clock, positions and (for a plan) each symbol's asset flags. Sends no order; the
    broker is closed at the end, as on every other path, whether the reads succeed or fail."""
    from repeg.brokers.alpaca.factory import build_readonly_broker
    from repeg.engine.clock import RealClock

    alpaca = build_readonly_broker(mode_for(broker), clock=RealClock(), urls=urls, settings=settings)
    try:
        account = await alpaca.get_account()
        echo(
            f"{alpaca.name}: cash {account.cash}  buying power {account.buying_power}  equity {account.equity}"
        )
        market = await alpaca.get_market_clock()
        state = "open" if market.is_open else f"closed (next open {market.next_open.isoformat()})"
        echo(f"market: {state}; next close {market.next_close.isoformat()}")
        for position in await alpaca.get_positions():
            echo(f"position {position.symbol:<8} {position.qty:>14} avg {position.avg_entry_price}")
        if plan_path is not None:
            await _check_plan_assets(alpaca, plan_path, echo)
    finally:
        await alpaca.aclose()


async def _check_plan_assets(alpaca: AlpacaBroker, plan_path: Path, echo: Echo) -> None:
    """Print each plan symbol's flags; then, as `repeg run` refuses the plan, refuse the first symbol not
    tradable (`NotTradableError`, exit 2), naming the plan's file and row."""
    from repeg.errors import NotTradableError, UnknownSymbolError
    from repeg.planning.derive import plan_symbols
    from repeg.planning.parse import load_plan

    plan = load_plan(plan_path)
    refused: list[str] = []
    for symbol in plan_symbols(plan):
        try:
            asset = await alpaca.get_asset(symbol)
        except UnknownSymbolError as exc:  # named as `repeg run` names it: the plan's file and row
            raise UnknownSymbolError(symbol, plan.source, plan.row_of(symbol)) from exc
        flags = f"tradable={'yes' if asset.tradable else 'NO'} fractionable={'yes' if asset.fractionable else 'no'}"
        echo(f"asset {symbol:<8} {flags}")
        if not asset.tradable:
            refused.append(symbol)
    if refused:
        raise NotTradableError(refused[0], plan.source, plan.row_of(refused[0]))


BrokerOpt = Annotated[str, typer.Option("--broker", help="alpaca-paper or alpaca-live.")]
PlanOpt = Annotated[
    Path | None, typer.Argument(help="Plan whose symbols' asset flags to check.", show_default=False)
]


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def check(plan: PlanOpt = None, broker: BrokerOpt = "alpaca-paper") -> None:
    """Read the Alpaca account, market clock, positions and a plan's assets: sends no orders."""
    try:
        asyncio.run(check_alpaca(broker, plan, typer.echo))
    except RepegError as exc:
        _stderr(f"error: {one_line(str(exc))}")
        raise typer.Exit(int(exit_code_for_error(exc))) from None
    raise typer.Exit(int(ExitCode.OK))
