"""`repeg run PLAN`: execute a plan on the simulator, with a live view, a results table and an exit code.

stdout carries results only: the tables, or with `--json` exactly one JSON document (the `ExecutionResult`).
Logs and errors go to stderr; an error is one line naming what was wrong (file, row, field and value for a
plan defect). The exit code says how the run ended (see `repeg.cli.exit_codes`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import structlog
import typer
from rich.console import Console

from repeg.cli.exit_codes import (
    INTERRUPTED_MESSAGE,
    ExitCode,
    exit_code_for_error,
    exit_code_for_status,
    one_line,
)
from repeg.cli.interrupts import CtrlCWatch
from repeg.cli.stdout import StdoutConsole, unwritten
from repeg.errors import ConfigError, RepegError
from repeg.logging import configure_logging

if TYPE_CHECKING:
    from repeg.cli.live import LiveView
    from repeg.cli.settings import RunSettings
    from repeg.config import ExecutionConfig
    from repeg.domain.events import EventSink, MarketSource, QuoteFileSource, SyntheticSource
    from repeg.domain.plan import Plan
    from repeg.journal.base import Journal
    from repeg.market.tape import QuoteTape
    from repeg.report.result import ExecutionResult

BROKERS: tuple[str, ...] = ("simulator", "sim-remote", "alpaca-paper", "alpaca-live")
#: Alpaca market data feeds (`repeg.brokers.alpaca.settings.DataFeed`).
FEEDS: tuple[str, ...] = ("iex", "sip")

log = structlog.get_logger("repeg.cli")

PlanArg = Annotated[
    Path, typer.Argument(help="Trade list or target weights (.csv or .json).", show_default=False)
]
QuotesOpt = Annotated[
    Path | None,
    typer.Option(
        "--quotes", help="Replay this quote file (CSV, CSV.gz or Parquet) instead of a synthetic market."
    ),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help=r"TOML with \[execution] and \[simulator] tables.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document on stdout.")]
LogJsonOpt = Annotated[bool, typer.Option("--log-json", help="Log JSON lines to stderr.")]
LogLevelOpt = Annotated[
    str | None,
    typer.Option(
        "--log-level", help="debug, info, warning or error (default: warning; info with --log-json)."
    ),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed", min=0, help="Seed of the synthetic market and partial fills (default: \\[simulator] seed)."
    ),
]
RunIdOpt = Annotated[
    str | None, typer.Option("--run-id", help="Run id (default: derived from plan and start time).")
]
BrokerOpt = Annotated[
    str,
    typer.Option("--broker", help="Where to execute: simulator, sim-remote, alpaca-paper or alpaca-live."),
]
ConfirmOpt = Annotated[bool, typer.Option("--confirm", help="Required with --broker alpaca-live.")]
AllowClosedOpt = Annotated[
    bool, typer.Option("--allow-closed", help="Alpaca: queue DAY orders while the market is closed.")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Alpaca: price and print every order, send none.")]
FeedOpt = Annotated[
    str | None,
    typer.Option(
        "--feed",
        help="Alpaca market data feed: iex or sip (default: iex; for a known --run-id, the one it recorded).",
    ),
]
JournalOpt = Annotated[
    str,
    typer.Option("--journal", help="Journal: a SQLite file or a postgresql:// DSN.", envvar="REPEG_JOURNAL"),
]
SimUrlOpt = Annotated[
    str | None, typer.Option("--sim-url", help="sim://127.0.0.1:PORT/SESSION (with --broker sim-remote).")
]


@dataclass(frozen=True)
class AlpacaFlags:
    """The `run` options that only the Alpaca brokers read."""

    confirm: bool = False
    allow_closed: bool = False
    dry_run: bool = False
    #: None: `iex` for a new run, the feed it recorded for a run resumed by its --run-id.
    feed: str | None = None


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    plan: PlanArg,
    *,
    quotes: QuotesOpt = None,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    log_json: LogJsonOpt = False,
    log_level: LogLevelOpt = None,
    seed: SeedOpt = None,
    run_id: RunIdOpt = None,
    broker: BrokerOpt = "simulator",
    journal: JournalOpt = "repeg.db",
    sim_url: SimUrlOpt = None,
    confirm: ConfirmOpt = False,
    allow_closed: AllowClosedOpt = False,
    dry_run: DryRunOpt = False,
    feed: FeedOpt = None,
) -> None:
    """Execute PLAN: sells first, then buys, with pegged limits, re-pegs and escalation."""
    out = StdoutConsole(highlight=False, soft_wrap=False)
    err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)  # errors quote values verbatim
    show_live = not json_output and out.is_terminal
    watch = CtrlCWatch()  # Ctrl-C while loading, before any order: see `repeg.cli.interrupts`
    try:
        with watch:
            configure_logging(json_output=log_json, level=log_level or ("info" if log_json else "warning"))
            result = _execute(
                plan,
                quotes=quotes,
                config=config,
                seed=seed,
                run_id=run_id,
                broker=broker,
                live_console=out if show_live else None,
                journal=journal,
                sim_url=sim_url,
                alpaca=AlpacaFlags(confirm=confirm, allow_closed=allow_closed, dry_run=dry_run, feed=feed),
                loaded=watch.done,
            )
    except KeyboardInterrupt:  # before any order, or during an in-process run: the journal is closed already
        raise _interrupted(err) from None
    except Exception as exc:
        raise _interrupted(err) if watch.seen else _failed(err, exc) from None
    try:
        _print_result(out, result, json_output=json_output)
    except OSError as exc:  # stdout refused it (a full disk); a reader that went away is no error (`pipes`)
        raise unwritten(err, result.run_id, str(result.status), exc, dry_run=dry_run) from None
    # A dry run sends nothing, so every leg it priced ends refused by design (error `dry_run`): that is its
    # success; a leg it could not price exits as the real run would end. Refusals before any order still exit 2,
    # and a broker failure 4, through the errors above.
    if dry_run and broker.startswith("alpaca-"):
        from repeg.cli.alpaca_cmds import dry_run_exit_code

        raise typer.Exit(dry_run_exit_code(result))
    raise typer.Exit(exit_code_for_status(result.status))


def _interrupted(err: Console) -> typer.Exit:
    err.print(INTERRUPTED_MESSAGE, markup=False)
    return typer.Exit(ExitCode.INTERRUPTED)


def _failed(err: Console, exc: Exception) -> typer.Exit:
    """The one line and exit code of an error that ended the run (call it while handling `exc`)."""
    if isinstance(exc, RepegError):
        err.print(f"error: {one_line(str(exc))}", markup=False)
        return typer.Exit(exit_code_for_error(exc))
    log.exception("internal_error")
    err.print(f"internal error: {type(exc).__name__}: {one_line(str(exc))}", markup=False)
    return typer.Exit(ExitCode.INTERNAL)


def _print_result(out: StdoutConsole, result: ExecutionResult, *, json_output: bool) -> None:
    """The result on stdout; cut short quietly if the reader went away (the run's exit code stays)."""
    if json_output:
        out.write_raw(result.model_dump_json(indent=2) + "\n")
        return
    from repeg.cli.render import quality_table, results_table

    out.print(results_table(result))
    out.print(quality_table(result))


def _execute(
    plan_path: Path,
    *,
    quotes: Path | None,
    config: Path | None,
    seed: int | None,
    run_id: str | None,
    broker: str,
    live_console: Console | None,
    journal: str = "repeg.db",
    sim_url: str | None = None,
    alpaca: AlpacaFlags | None = None,
    loaded: Callable[[], None] = lambda: None,
) -> ExecutionResult:
    """Load everything (refusing bad input before any order), call `loaded`, then run on the broker."""
    from repeg.api import default_run_id
    from repeg.cli.settings import load_settings
    from repeg.journal.factory import is_postgres, journal_path_is
    from repeg.market.loaders import load_quotes
    from repeg.planning.parse import load_plan
    from repeg.runtime import freeze_startup_heap
    from repeg.simulation import simulate

    if broker not in BROKERS:
        raise ConfigError("--broker", broker, f"unknown broker (known: {', '.join(BROKERS)})")
    known = run_id is not None and (is_postgres(journal) or journal_path_is(journal, Path.is_file))
    _refuse_options_of_other_brokers(broker, seed=seed, sim_url=sim_url, alpaca=alpaca, known=known)
    if alpaca is not None and alpaca.feed is not None and alpaca.feed not in FEEDS:
        raise ConfigError("--feed", alpaca.feed, f"unknown feed (known: {', '.join(FEEDS)})")
    if quotes is not None and broker != "simulator":
        raise ConfigError("--quotes", str(quotes), f"only the simulator replays a quote file, not {broker}")
    settings = load_settings(config)
    plan = load_plan(plan_path)
    # The shell names the run from the wall clock, so that two invocations never share an id (a simulated
    # run's virtual start time is the same every time); the engine itself never reads wall time.
    run_id = default_run_id(plan, datetime.now(UTC)) if run_id is None else _given_run_id(run_id)
    tape, tape_source = (None, None) if quotes is None else _replayed(quotes, load_quotes)
    freeze_startup_heap()  # start-up is over: the collector need not rescan it during the run or at exit
    with ExitStack() as stack:
        from repeg.cli.journal_run import (
            answered_from_journal,
            journal_sink,
            opened_journal,
            refuse_another_market,
            run_remote,
        )

        store = stack.enter_context(opened_journal(journal))
        # Claimed before it is read, on every broker: another process still working the run (the in-process
        # simulator's too) is refused here, exit 4, as the README says (`Journal.claim`, held until close).
        store.claim(run_id)
        _refuse_another_plan(store, run_id, plan)
        asked = _market_asked(broker, plan, settings, seed, tape_source)
        refuse_another_market(store, run_id, asked, config=config)
        sinks: list[EventSink] = []
        if live_console is not None:
            sinks.append(stack.enter_context(_live_view(live_console, store, run_id)))
        loaded()
        done = answered_from_journal(store, run_id, broker, dry_run=alpaca is not None and alpaca.dry_run)
        if done is not None:
            return done
        if broker.startswith("alpaca-") and store.has_run(run_id):
            from repeg.cli.journal_run import resume_on_alpaca

            flags = alpaca or AlpacaFlags()
            if flags.dry_run:
                # Resuming would send the run's remaining orders for real: a dry run never does that.
                raise ConfigError("--dry-run", run_id, "the journal knows this run id; use a new --run-id")
            return resume_on_alpaca(
                plan,
                _resumed_execution(store, run_id, settings.execution, config),
                run_id=run_id,
                journal=store,
                broker=broker,
                confirm=flags.confirm,
                allow_closed=flags.allow_closed,
                feed=flags.feed,
                sinks=sinks,
            )
        if broker.startswith("alpaca-"):
            flags = alpaca or AlpacaFlags()
            # A real run journals through its session (write-ahead, graceful stop); a dry run sends nothing.
            return _run_alpaca(
                plan,
                settings.execution,
                broker=broker,
                flags=flags,
                run_id=run_id,
                sinks=[journal_sink(store), *sinks] if flags.dry_run else sinks,
                journal=None if flags.dry_run else store,
            )
        if broker == "sim-remote":
            execution = _resumed_execution(store, run_id, settings.execution, config)
            return run_remote(plan, execution, run_id=run_id, journal=store, sim_url=sim_url, sinks=sinks)
        sinks.insert(0, journal_sink(store))
        return simulate(
            plan,
            account=settings.account,
            config=settings.execution,
            tape=tape,
            market=settings.market,
            seed=settings.seed if seed is None else seed,
            latency=settings.latency,
            run_id=run_id,
            sinks=sinks,
            tape_source=tape_source,
        )


_ALPACA = ("alpaca-paper", "alpaca-live")
#: The brokers that read each broker-specific option of `run` (`--quotes`: the simulator, checked with its file).
OPTION_BROKERS: dict[str, tuple[str, ...]] = {
    "--seed": ("simulator",),
    "--sim-url": ("sim-remote",),
    "--confirm": _ALPACA,
    "--allow-closed": _ALPACA,
    "--dry-run": _ALPACA,
    "--feed": _ALPACA,
}


def _refuse_options_of_other_brokers(
    broker: str, *, seed: int | None, sim_url: str | None, alpaca: AlpacaFlags | None, known: bool = False
) -> None:
    """An option given that `broker` does not read is refused (`ConfigError` naming it and the broker), not
    ignored: `--dry-run` on the simulator ran the plan, `--seed` on Alpaca chose nothing."""
    flags = alpaca or AlpacaFlags()
    given = {
        "--seed": seed is not None,
        "--sim-url": sim_url is not None,
        "--confirm": flags.confirm,
        "--allow-closed": flags.allow_closed,
        "--dry-run": flags.dry_run,
        "--feed": flags.feed is not None,
    }
    for option, brokers in OPTION_BROKERS.items():
        if given[option] and broker not in brokers:
            raise ConfigError(option, None, f"applies to --broker {' or '.join(brokers)} only, not {broker}")
    # Its own option missing or malformed: refused before the journal is touched, unless missing for a run id an
    # existing journal may answer (`known`: an ended run, `ended_result`); else `run_remote` refuses it.
    if broker == "sim-remote" and (sim_url is not None or not known):
        from repeg.cli.journal_run import usable_sim_url

        usable_sim_url(sim_url)


def _given_run_id(run_id: str) -> str:
    """`--run-id` as given, refused before the journal opens if malformed: an empty one (an unset variable) is
    no reason to run under a fresh id, which would trade the plan again on each retry."""
    from repeg.domain.ids import validate_run_id

    try:
        return validate_run_id(run_id)
    except ValueError as exc:
        raise ConfigError("--run-id", run_id, str(exc)) from exc


def _live_view(console: Console, store: Journal, run_id: str) -> LiveView:
    """The live view of the run; one the journal knows (resumed, or answered from it) starts from what the
    journal holds of it, its legs planned before an interruption included."""
    from repeg.cli.live import LiveView

    view = LiveView(console)
    if store.has_run(run_id):
        view.seed(store.events(run_id))
    return view


def _resumed_execution(
    store: Journal, run_id: str, execution: ExecutionConfig, config: Path | None
) -> ExecutionConfig:
    """The `[execution]` a run goes on under: `--config`'s when given; else, for a run the journal knows that
    announced orders (it is resumed), the configuration its start in effect journaled, as `repeg resume` has it
    (not the defaults: other waits and steps, and none of its safety limits); else `execution`."""
    from repeg.cli.journal_run import start_in_effect
    from repeg.journal.resume import has_orders

    if config is not None or not store.has_run(run_id):
        return execution
    events = store.events(run_id)
    started = start_in_effect(events)
    if started is None or not has_orders(events):
        return execution
    from repeg.cli.journal_cmds import config_from_record

    return config_from_record(started.config)


def _market_asked(
    broker: str, plan: Plan, settings: RunSettings, seed: int | None, tape_source: QuoteFileSource | None
) -> MarketSource | None:
    """The market the in-process simulator would run `plan` on, as `RunStarted.market` records it (the quote
    file, or what `simulate` generates); None on another broker (its market is its own)."""
    if broker != "simulator":
        return None
    return tape_source or _synthetic_source(plan, settings, seed)


def _synthetic_source(plan: Plan, settings: RunSettings, seed: int | None) -> SyntheticSource:
    """What `simulate` records of the synthetic market it will generate for `plan` under `settings`."""
    from repeg.planning.derive import plan_symbols
    from repeg.simulation import synthetic_source

    symbols = [*plan_symbols(plan), *settings.account.positions]
    return synthetic_source(settings.market, symbols, seed=settings.seed if seed is None else seed)


def _replayed(quotes: Path, load: Callable[[Path], QuoteTape]) -> tuple[QuoteTape, QuoteFileSource]:
    """The quote file's tape and what the journal records of it. The file is parsed, then hashed: one that
    changed in between (a writer still at work) would have the run replay quotes the recorded SHA-256 does not
    name, so it is refused (`QuoteFileError`, exit 2) when its size, time or inode moved meanwhile."""
    from repeg.errors import QuoteFileError

    before = _identity(quotes)
    tape = load(quotes)
    source = _quote_file_source(quotes)
    if before is None or _identity(quotes) != before:
        raise QuoteFileError(str(quotes), None, "changed while repeg read it; run again once it is complete")
    return tape, source


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when a file is written or replaced: size, modification time, inode and device."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_size, found.st_mtime_ns, found.st_ino, found.st_dev


def _quote_file_source(quotes: Path) -> QuoteFileSource:
    """What the journal records of the replayed file (path, size, SHA-256); it was just read, so a failure
    now (the file removed meanwhile) is a `QuoteFileError` like any unreadable quote file."""
    from repeg.errors import QuoteFileError
    from repeg.market.source import quote_file_source

    try:
        return quote_file_source(quotes)
    except OSError as exc:
        raise QuoteFileError(str(quotes), None, f"cannot be read: {exc.strerror or exc}") from exc


def _refuse_another_plan(store: Journal, run_id: str, plan: Plan) -> None:
    """A run id the journal knows names one plan: under it, another plan would be answered with that run's
    result (or resume), and never be executed. Refused before any order, naming the id."""
    from repeg.domain.events import RunStarted

    if not store.has_run(run_id):
        return
    started = next((event for event in store.events(run_id) if isinstance(event, RunStarted)), None)
    if started is None:
        return
    known = started.plan
    if (known.kind, known.trades, known.weights) != (plan.kind, plan.trades, plan.weights):
        raise ConfigError(
            "--run-id", run_id, f"already names a run of another plan ({known.source}); use a new --run-id"
        )


def _run_alpaca(
    plan: Plan,
    config: ExecutionConfig,
    *,
    broker: str,
    flags: AlpacaFlags,
    run_id: str,
    sinks: list[EventSink],
    journal: Journal | None,
) -> ExecutionResult:
    """Execute on Alpaca (live demands --confirm; a closed market refuses unless --allow-closed)."""
    from repeg.cli.alpaca_cmds import run_on_alpaca

    return run_on_alpaca(
        plan,
        config,
        broker=broker,
        confirm=flags.confirm,
        allow_closed=flags.allow_closed,
        dry_run=flags.dry_run,
        feed=flags.feed or "iex",
        run_id=run_id,
        sinks=sinks,
        journal=journal,
    )
