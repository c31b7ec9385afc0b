"""`repeg runs`, `repeg show RUN_ID`, `repeg resume RUN_ID`: the journal from the command line.

`show` rebuilds a run from its journal alone: the events in order, then the same results table `repeg run`
prints, built by the same fold (`domain.run.fold_run`) and result builder (`report.result.build_result`).
`resume` reconciles an unfinished run with its broker and finishes it (`repeg.journal.resume`); a run that ended
is answered from the journal, after its order left open at the broker, if any, was closed.

Heavy imports happen inside the commands so that `repeg --help` stays fast.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from repeg.cli.exit_codes import (
    INTERRUPTED_MESSAGE,
    ExitCode,
    exit_code_for_error,
    exit_code_for_status,
    one_line,
)
from repeg.cli.interrupts import CtrlCWatch
from repeg.cli.stdout import StdoutConsole, not_written, unwritten
from repeg.errors import ConfigError, RepegError
from repeg.journal.factory import DEFAULT_JOURNAL

if TYPE_CHECKING:
    from repeg.config import ExecutionConfig
    from repeg.domain.events import RunEvent
    from repeg.domain.plan import Plan
    from repeg.journal.base import Journal
    from repeg.report.result import ExecutionResult

JournalOption = Annotated[
    str,
    typer.Option("--journal", help="Journal: a SQLite file or a postgresql:// DSN.", envvar="REPEG_JOURNAL"),
]
SIM_REMOTE = "sim-remote"
_RESUMABLE = f"{SIM_REMOTE} (with --sim-url), alpaca-paper, or alpaca-live (with --confirm)"


def _fail(error: RepegError) -> typer.Exit:
    """The one line on stderr (a library's text may span several: libpq adds a hint) and exit code of `error`."""
    typer.echo(f"error: {one_line(str(error))}", err=True)
    return typer.Exit(int(exit_code_for_error(error)))


def _open(spec: str, *, create: bool = False) -> Journal:
    """The journal `spec` names. A SQLite file that does not exist is bad input (exit 2, as `repeg report` has
    it), not a journal that failed (4): the path was mistyped, or repeg runs in another directory. An unusable
    `spec` (or an empty `REPEG_JOURNAL`) is refused first, naming what was given rather than a file never named."""
    from repeg.cli.journal_run import refuse_unusable_journal
    from repeg.journal.factory import is_postgres, open_journal

    try:
        refuse_unusable_journal(spec)
    except RepegError as exc:
        raise _fail(exc) from exc
    if not create and not is_postgres(spec) and not Path(spec).exists():
        raise _fail(ConfigError("--journal", spec, f"no journal at {spec}"))
    try:
        return open_journal(spec, create=create)
    except RepegError as exc:
        raise _fail(exc) from exc


# --- runs ----------------------------------------------------------------------------------------------------


def runs(journal: JournalOption = DEFAULT_JOURNAL) -> None:
    """List the runs of a journal: id, started, plan file, broker, status, legs and notional traded."""
    store = _open(journal)
    try:
        summaries = store.runs()
    except RepegError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    # The title is rich markup too: a journal path's "[old]" is escaped to show as written.
    table = Table(title=f"runs in {escape(store.location)}", title_justify="left")
    for name in ("run", "started", "plan", "broker", "status", "legs", "notional"):
        table.add_column(
            name,
            justify="right" if name in ("legs", "notional") else "left",
            overflow="fold" if name == "plan" else "ellipsis",  # a long plan path is wrapped whole, not cut
        )
    for run in summaries:  # cells are rich markup: a plan path's "[b]" is escaped to show as written
        table.add_row(
            escape(run.run_id),
            run.started.isoformat(timespec="seconds"),
            escape(run.plan_file),
            escape(run.broker),
            run.status,
            str(run.legs),
            f"{run.notional:,.2f}",
        )
    try:
        StdoutConsole().print(table)
    except OSError as exc:  # stdout refused it (a full disk); a reader that went away is no error (`pipes`)
        raise not_written(f"the runs of {store.location}", exc) from None


# --- show ----------------------------------------------------------------------------------------------------


def _event_detail(event: RunEvent) -> str:
    """The payload of an event without the fields every event has (they have their own columns)."""
    data = event_document(event, exclude={"run_id", "ts", "correlation_id", "leg_index", "kind"})
    return json.dumps(data, separators=(",", ":"))


def event_document(event: RunEvent, *, exclude: set[str] | None = None) -> dict[str, object]:
    """The event as `show` prints it: its JSON, with the values a `run_started` journals as JSON text (its
    `config`, and its synthetic market's `settings`) given as JSON values, not as text to parse a second time."""
    data: dict[str, object] = event.model_dump(mode="json", exclude=exclude)
    config, market = data.get("config"), data.get("market")
    if isinstance(config, dict):
        data["config"] = _json_values(config)
    if isinstance(market, dict) and isinstance(market.get("settings"), dict):
        data["market"] = {**market, "settings": _json_values(market["settings"])}
    return data


def _json_values(record: dict[str, str]) -> dict[str, object]:
    """Each JSON text decoded, but a number kept as its exact text (as every decimal of the document) and a
    plain string (a journaled `on_no_quote`, say) kept as it is."""
    return {key: _json_value(text) for key, text in record.items()}


def _json_value(text: str) -> object:
    try:
        value: object = json.loads(text)
    except json.JSONDecodeError:
        return text
    return text if isinstance(value, int | float) and not isinstance(value, bool) else value


def events_table(events: list[RunEvent]) -> Table:
    table = Table(title="events", title_justify="left")
    for name in ("seq", "ts", "leg", "correlation", "kind", "detail"):
        table.add_column(name, overflow="fold")
    for seq, event in enumerate(events, start=1):
        leg = "" if event.leg_index is None else str(event.leg_index)
        detail = escape(_event_detail(event))  # rich markup: a plan path's "[b]" shows as written
        table.add_row(str(seq), event.ts.isoformat(), leg, escape(event.correlation_id), event.kind, detail)
    return table


def show(
    run_id: Annotated[str, typer.Argument(help="The run id (see `repeg runs`).")],
    journal: JournalOption = DEFAULT_JOURNAL,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="One JSON document: the events (unless --no-events) and the result."),
    ] = False,
    events: Annotated[bool, typer.Option(help="List every event before the results.")] = True,
) -> None:
    """The market data a run ran on and every event in order, then its results table, from the journal alone."""
    store = _open(journal)
    try:
        recorded = store.events(run_id)
    except RepegError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    from repeg.report.result import result_from_events

    result = result_from_events(recorded)
    try:
        _print_shown(run_id, recorded, result, as_json=as_json, events=events)
    except OSError as exc:  # stdout refused it (a full disk); a reader that went away is no error (`pipes`)
        raise not_written(f"run {run_id}", exc) from None


def _print_shown(
    run_id: str, recorded: list[RunEvent], result: ExecutionResult, *, as_json: bool, events: bool
) -> None:
    """What `show` prints: the JSON document, or the market line and events (unless --no-events), then the
    results."""
    if as_json:  # --no-events: the run id and the result alone, as for the tables
        listed = {"events": [event_document(event) for event in recorded]} if events else {}
        document = {"run_id": run_id, **listed, "result": result.model_dump(mode="json")}
        StdoutConsole().write_raw(json.dumps(document, indent=2) + "\n")
        return
    console = StdoutConsole(highlight=False, soft_wrap=False)
    if events:  # the market line belongs to the event listing: --no-events prints the results table alone
        console.print(market_line(recorded), markup=False, soft_wrap=True)  # one line, never cut
        console.print(events_table(recorded))
    print_result(console, result)


NOT_RECORDED = "not recorded (the remote simulator's own market, or a run journaled before repeg recorded it)"


def market_line(events: list[RunEvent]) -> str:
    """The market data the run ran on, from its start in effect (the last one journaled)."""
    from repeg.cli.journal_run import start_in_effect

    started = start_in_effect(events)
    source = None if started is None else started.market
    return f"market data: {NOT_RECORDED if source is None else source.describe()}"


def print_result(console: Console, result: ExecutionResult) -> None:
    """The results table and quality summary, exactly as `repeg run` prints them."""
    from repeg.cli.render import quality_table, results_table

    console.print(results_table(result))
    console.print(quality_table(result))


# --- resume --------------------------------------------------------------------------------------------------


def config_from_record(record: dict[str, str]) -> ExecutionConfig:
    """The `ExecutionConfig` a run journaled in `RunStarted.config` (values are JSON text or plain strings)."""
    from repeg.config import config_from_mapping

    values: dict[str, object] = {}
    for key, text in record.items():
        try:
            values[key] = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError:
            values[key] = text
    return config_from_mapping(values, journaled=True)


def _journaled_start(events: list[RunEvent], config: Path | None) -> tuple[Plan, ExecutionConfig, str]:
    """The plan and broker a run journaled when it started, and its configuration: the journaled one, or the
    `[execution]` of `config` when given (the journaled one is then not read: it may hold what repeg no longer
    reads, and must not stop the resume the replacement was given for). The start in effect is the last one
    journaled: a run that announced no order and did not end may be started afresh under its id, with another
    configuration or broker, and its orders then work under that start."""
    from repeg.cli.journal_run import start_in_effect

    started = start_in_effect(events)
    if started is None:
        raise ConfigError("run_started", None, "the journal holds no run_started event to resume from")
    if config is not None:
        from repeg.cli.settings import load_settings

        return started.plan, load_settings(config).execution, started.broker
    return started.plan, config_from_record(started.config), started.broker


def _session(
    plan: Plan, execution: ExecutionConfig, run_id: str, store: Journal, target: _Target
) -> Coroutine[object, object, ExecutionResult]:
    """The coroutine that resumes `run_id` on the broker `_target` chose (one that outlives a process)."""
    from repeg.cli.journal_run import alpaca_session, remote_session

    if target.broker == SIM_REMOTE and target.sim_url is not None:
        return remote_session(plan, execution, run_id, journal=store, sim_url=target.sim_url)
    # `_refuse_unresumable` let only Alpaca through otherwise (another name: `mode_for` refuses it, naming it)
    return alpaca_session(
        plan,
        execution,
        run_id,
        journal=store,
        broker=target.broker,
        confirm=target.confirm,
        allow_closed=target.allow_closed,
        feed=target.feed,
    )


class _Target(NamedTuple):
    broker: str
    sim_url: str | None
    confirm: bool
    allow_closed: bool
    feed: str


class _Asked(NamedTuple):
    """The broker options `resume` was given; None where the run's own journaled one is meant."""

    broker: str | None
    sim_url: str | None
    confirm: bool
    allow_closed: bool
    feed: str | None


def _target(run_id: str, asked: _Asked, started_on: str, events: list[RunEvent]) -> _Target:
    """Where to resume: what was asked, else the broker the run started on and the feed it recorded (else IEX;
    `journal_run.resume_feed`). A dry run, which sent nothing, has nothing to resume: refused, saying so."""
    from repeg.cli.journal_run import refuse_a_dry_run, resume_feed
    from repeg.domain.run import fold_run
    from repeg.journal.resume import left_open

    refuse_a_dry_run("RUN_ID", run_id, started_on)  # whatever --broker says: no order of it exists anywhere
    broker = asked.broker or started_on
    state = fold_run(events)
    # An ended run of this broker that left nothing open is answered from the journal (`ended_result`): no broker.
    answered = state.status is not None and not left_open(state) and broker == started_on
    _refuse_unresumable(run_id, broker, asked, ended=state.status, answered=answered)
    feed = resume_feed(asked.feed, events)
    return _Target(broker, asked.sim_url, asked.confirm, asked.allow_closed, feed)


def _refuse_unresumable(
    run_id: str, broker: str, asked: _Asked, *, ended: str | None = None, answered: bool = False
) -> None:
    """Refuse, naming what the user gave, a resume on `broker` that cannot be: a broker whose orders died with
    its process (named by `--broker`, or by RUN_ID when it is the run's own: one that `ended` is pointed to its
    result, not told to run its plan again), `sim-remote` without `--sim-url` (unless the run is `answered` from
    the journal, never reaching the broker), or an option `broker` does not read (as `repeg run` refuses it)."""
    from repeg.cli.run import OPTION_BROKERS

    if broker != SIM_REMOTE and not broker.startswith("alpaca-"):
        if asked.broker is None:
            again = "run its plan again under a new --run-id"
            if ended is not None:
                again = f"it ended {ended}: `repeg show {run_id}` prints its result"
            raise ConfigError(
                "RUN_ID",
                run_id,
                f"run {run_id} ran on the in-process {broker}, whose orders died with its process: it cannot be "
                f"resumed; {again}",
            )
        raise ConfigError(
            "--broker", broker, f"resume needs a broker that outlives the process: {_RESUMABLE}"
        )
    if broker == SIM_REMOTE and asked.sim_url is None and not answered:
        raise ConfigError(
            "--sim-url", None, f"resuming on {SIM_REMOTE} needs --sim-url sim://127.0.0.1:PORT/SESSION"
        )
    given = {"--sim-url": asked.sim_url is not None, "--confirm": asked.confirm}
    given |= {"--allow-closed": asked.allow_closed, "--feed": asked.feed is not None}
    for option, read in given.items():
        if read and broker not in OPTION_BROKERS[option]:
            brokers = " or ".join(OPTION_BROKERS[option])
            raise ConfigError(option, None, f"applies to --broker {brokers} only, not {broker}")


def resume(
    run_id: Annotated[str, typer.Argument(help="The unfinished run to finish (see `repeg runs`).")],
    *,
    journal: JournalOption = DEFAULT_JOURNAL,
    broker: Annotated[
        str | None,
        typer.Option(
            help=f"Broker of the run: {SIM_REMOTE}, alpaca-paper or alpaca-live (default: the one it started on)."
        ),
    ] = None,
    sim_url: Annotated[
        str | None, typer.Option("--sim-url", help="sim://127.0.0.1:PORT/SESSION of the remote simulator.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help=r"TOML whose \[execution] replaces the run's journaled config."),
    ] = None,
    confirm: Annotated[bool, typer.Option("--confirm", help="Required to resume on alpaca-live.")] = False,
    allow_closed: Annotated[
        bool, typer.Option("--allow-closed", help="Alpaca: queue DAY orders while the market is closed.")
    ] = False,
    feed: Annotated[
        str | None,
        typer.Option(
            "--feed", help="Alpaca market data feed: iex or sip (default: the one the run recorded)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")] = False,
    log_json: Annotated[bool, typer.Option("--log-json", help="Log JSON lines to stderr.")] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level", help="debug, info, warning or error (default: warning; info with --log-json)."
        ),
    ] = None,
) -> None:
    """Reconcile an interrupted run with its broker, then finish its remaining legs."""
    watch = CtrlCWatch()  # Ctrl-C while loading, before any order: see `repeg.cli.interrupts`
    try:
        with watch:
            result = _resume(
                run_id,
                journal,
                config=config,
                asked=_Asked(broker, sim_url, confirm, allow_closed, feed),
                logs=(log_json, log_level),
                loaded=watch.done,
            )
    except KeyboardInterrupt:
        raise _interrupted() from None
    except Exception:
        if watch.seen:  # a library turned the Ctrl-C into its own error
            raise _interrupted() from None
        raise
    try:
        if as_json:
            StdoutConsole().write_raw(result.model_dump_json(indent=2) + "\n")
        else:
            print_result(StdoutConsole(highlight=False, soft_wrap=False), result)
    except OSError as exc:  # stdout refused it (a full disk); a reader that went away is no error (`pipes`)
        err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        raise unwritten(err, result.run_id, str(result.status), exc) from None
    raise typer.Exit(int(exit_code_for_status(result.status.value)))


def _resume(
    run_id: str,
    journal: str,
    *,
    config: Path | None,
    asked: _Asked,
    logs: tuple[bool, str | None],
    loaded: Callable[[], None],
) -> ExecutionResult:
    """Load the run from the journal, call `loaded`, then resume it where `asked` says (`_target`)."""
    from repeg.cli.journal_run import ended_result
    from repeg.logging import configure_logging

    log_json, log_level = logs
    try:
        configure_logging(json_output=log_json, level=log_level or ("info" if log_json else "warning"))
    except ConfigError as exc:
        raise _fail(exc) from exc
    store = _open(journal)
    failing = True
    try:
        events = store.events(run_id)
        plan, execution, started_on = _journaled_start(events, config)
        chosen = _target(run_id, asked, started_on, events)
        loaded()
        # A run that ended: its journaled result, all resuming it answers, without contacting the broker (after
        # hours, without keys, in an outage)
        ended = ended_result(store, run_id, chosen.broker)
        result = ended if ended is not None else asyncio.run(_session(plan, execution, run_id, store, chosen))
    except RepegError as exc:
        raise _fail(exc) from exc
    else:
        failing = False
        return result
    finally:
        _close(store, failing=failing)


def _close(store: Journal, *, failing: bool) -> None:
    """Close the journal (committing what was emitted): a failure is a journal error (exit 4), not a traceback;
    when the command fails already, it is that failure again (a refused commit refuses the close too), not news."""
    try:
        store.close()
    except RepegError as exc:
        if not failing:
            raise _fail(exc) from exc


def _interrupted() -> typer.Exit:
    typer.echo(INTERRUPTED_MESSAGE, err=True)
    return typer.Exit(int(ExitCode.INTERRUPTED))


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)
    app.command("show")(show)
    app.command("resume")(resume)
