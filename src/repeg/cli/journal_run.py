"""What `repeg run` needs from the journal: the journal sink, the same-run-id rule, and remote-simulator runs.

- Every run journals (default `./repeg.db`); the sink is wrapped by the crash test's fault injection when
  `REPEG_KILL_AT` is set (`repeg.journal.faults`), and inert otherwise.
- `repeg run --run-id ID` for an ID already in the journal never executes the plan twice: a finished run's
  result is rebuilt from the journal, an unfinished one is resumed (on a broker that outlives the process), and
  so is one that ended with an order still open at such a broker (the resume closes it, sending nothing). On
  the simulator, the ID must be asked for on the market it ran on (`refuse_another_market`).
- On the remote simulator (`--broker sim-remote --sim-url ...`) the run executes in real time, and SIGINT or
  SIGTERM stop it gracefully (`repeg.journal.shutdown`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from repeg.errors import JournalError, RunStoppedError

if TYPE_CHECKING:
    from repeg.brokers.base import Broker
    from repeg.config import ExecutionConfig
    from repeg.domain.events import EventSink, MarketSource, RunEvent, RunStarted, SyntheticSource
    from repeg.domain.plan import Plan
    from repeg.engine.clock import Clock
    from repeg.journal.base import Journal
    from repeg.market.base import QuoteFeed
    from repeg.report.result import ExecutionResult


@contextmanager
def opened_journal(spec: str) -> Iterator[Journal]:
    """The run's journal, closed (everything committed) when the block ends, even on error (a `JournalError` of the
    block is the one raised, not the failure the close raises again). A SQLite path in a directory that does not
    exist is bad input naming `--journal` (`ConfigError`), not a journal that failed."""
    from repeg.errors import ConfigError
    from repeg.journal.factory import is_postgres, open_journal

    refuse_unusable_journal(spec)
    if not is_postgres(spec) and not Path(spec).parent.is_dir():
        raise ConfigError("--journal", spec, f"no directory {Path(spec).parent} to create the journal in")
    journal = open_journal(spec)
    try:
        yield journal
    except JournalError:
        # The journal failed in the block: its error (naming the orders cancelled, see `journal_failed`) is the one
        # told; closing the broken writer raises that failure again, which must not replace it.
        with suppress(JournalError):
            journal.close()
        raise
    except BaseException:
        journal.close()
        raise
    journal.close()


def refuse_unusable_journal(spec: str) -> None:
    """`--journal` (or `REPEG_JOURNAL`) empty or naming a directory is bad input naming it (`ConfigError`), not
    a journal that failed to open: SQLite cannot open a directory, and an empty path read as `.`."""
    from repeg.cli.journal_variable import refuse_an_empty_journal_variable
    from repeg.errors import ConfigError
    from repeg.journal.factory import is_postgres, journal_path_is, refuse_a_url_of_no_journal

    refuse_an_empty_journal_variable()
    if not spec.strip():
        raise ConfigError("--journal", spec, "empty: give a SQLite file or a postgresql:// DSN")
    refuse_a_url_of_no_journal(spec)
    if not is_postgres(spec) and journal_path_is(spec, Path.is_dir):
        raise ConfigError("--journal", spec, "a directory, not a journal file")


def journal_sink(journal: Journal) -> EventSink:
    """The sink a run emits into: the journal, behind the fault-injection hook when it is armed."""
    from repeg.journal.faults import with_fault_injection

    return with_fault_injection(journal)


def finished_result(journal: Journal, run_id: str | None) -> ExecutionResult | None:
    """For an in-process run: the result of `run_id` if it already ended; None when the id is new.

    Raises `JournalError` for an unfinished run: the in-process simulator's orders died with that process, so
    there is nothing to resume against (remote brokers resume instead, see `run_remote`). An unfinished run of
    another broker is refused naming that broker (`ConfigError`): its orders may still work there; so is one that
    ended with an order still open there (`left_open`: a resume on that broker closes it).
    """
    from repeg.domain.run import fold_run
    from repeg.journal.resume import left_open
    from repeg.report.result import journaled_result

    if run_id is None or not journal.has_run(run_id):
        return None
    events = journal.events(run_id)
    state = fold_run(events)
    if state.status is None or left_open(state):
        _check_same_broker(run_id, events, "simulator")
    if state.status is None:
        raise JournalError(
            f"run {run_id} is unfinished, and the in-process simulator it ran on is gone; use a new --run-id"
        )
    return journaled_result(state)


def answered_from_journal(
    journal: Journal, run_id: str, broker: str, *, dry_run: bool = False
) -> ExecutionResult | None:
    """`repeg run --run-id ID` of a run that ended is answered from the journal: on the in-process simulator
    `finished_result`, on a broker that outlives the process `ended_result`; None when `run` goes on (a new id,
    an unfinished run to resume, or a dry run: refused when the journal knows the id, never answered for one)."""
    if broker == "simulator":
        return finished_result(journal, run_id)
    return None if dry_run else ended_result(journal, run_id, broker)


def ended_result(journal: Journal, run_id: str, broker: str) -> ExecutionResult | None:
    """For a broker that outlives the process: the journaled result of `run_id` when it ended, which is all a
    resume of it answers (`resume_run`), without contacting the broker first (its credentials, clock, market
    hours), whether or not it announced orders (a run that ended is never executed again); refused as that resume
    refuses it when it ran on another broker or was a dry run. None for a new id, an unfinished run, or one that
    ended with an order still open at the broker (`left_open`: the resume closes it)."""
    from repeg.domain.run import fold_run
    from repeg.journal.resume import left_open
    from repeg.report.result import journaled_result

    if not journal.has_run(run_id):
        return None
    events = journal.events(run_id)
    state = fold_run(events)
    if state.status is None or left_open(state):
        return None
    _check_same_broker(run_id, events, broker)
    return journaled_result(state)


def start_in_effect(events: Sequence[RunEvent]) -> RunStarted | None:
    """The run's start in effect: the last `run_started` journaled. A run that announced no order and did not end
    may be started afresh under its id (another configuration, broker or feed, or for real after a dry run), and one
    that did either is never started again, so its orders work under this start."""
    from repeg.domain.events import RunStarted

    return next((event for event in reversed(events) if isinstance(event, RunStarted)), None)


def _check_same_broker(run_id: str, events: Sequence[RunEvent], broker: str) -> None:
    """Refuse to resume a run on another broker than it started on: none of its orders exists there, so every
    leg would be sent afresh to the wrong account (e.g. a paper run resumed on alpaca-live)."""
    from repeg.errors import ConfigError

    start = start_in_effect(events)
    if start is None:
        return
    refuse_a_dry_run("--run-id", run_id, start.broker)
    if start.broker != broker:
        started = start.broker
        advice = f"resume it on {started}" if _outlives_process(started) else _not_resumable(run_id, events)
        raise ConfigError(
            "--broker", broker, f"run {run_id} was started on {started}, not {broker}: {advice}"
        )


def _outlives_process(broker: str) -> bool:
    """Whether `broker`'s orders outlive the process that sent them (sim-remote, Alpaca): a run on it resumes."""
    return broker == "sim-remote" or broker.startswith("alpaca-")


def _not_resumable(run_id: str, events: Sequence[RunEvent]) -> str:
    """What to do with a run of the in-process simulator, which no broker resumes (its orders died with it)."""
    from repeg.domain.run import fold_run

    ended = fold_run(events).status
    again = "run its plan again under a new --run-id"
    if ended is not None:
        again = f"it ended {ended}: `repeg show {run_id}` prints its result"
    return f"its orders died with the process it ran in, so it cannot be resumed; {again}"


def refuse_a_dry_run(option: str, run_id: str, started_on: str) -> None:
    """A run started on a dry-run broker sent nothing, so it is never resumed: refused (`ConfigError` naming
    `option`), saying so, rather than resumed on a broker of that name."""
    from repeg.brokers.alpaca.dryrun import DRY_RUN_SUFFIX
    from repeg.errors import ConfigError

    if started_on.endswith(DRY_RUN_SUFFIX):
        was = f"was a dry run on {started_on.removesuffix(DRY_RUN_SUFFIX)}"
        raise ConfigError(
            option, run_id, f"run {run_id} {was}: it sent nothing; use a new --run-id for a real run"
        )


async def journaled_session(
    plan: Plan,
    config: ExecutionConfig,
    run_id: str,
    *,
    journal: Journal,
    broker: Broker,
    feed: QuoteFeed,
    clock: Clock,
    sinks: Sequence[EventSink] = (),
    market: MarketSource | None = None,
    on_stop: Callable[[], AbstractContextManager[object]] | None = None,
) -> ExecutionResult:
    """Run `plan` as `run_id` on a broker that outlives this process, stopping gracefully on SIGINT/SIGTERM
    (the stop runs within `on_stop()`'s context: the Alpaca adapter's bounds its waits for that stop only, see
    `AlpacaBroker.stopping`).

    A run the journal already knows is resumed when it announced orders or ended (reconciled first, never executed
    twice), and started afresh under the same id when it did neither (nothing can have reached the broker); a run
    started here records `market` (an Alpaca run's feed) in its `RunStarted`.
    Raises `RunStoppedError` (with the stop's summary) when a signal stopped it, and `JournalError` before anything
    else when another process works the run (`Journal.claim`; the claim is held until the journal is closed); a
    `JournalError` mid-run is raised after the run's working orders were cancelled, unjournaled (`journal_failed`).
    """
    from repeg.api import execute_async
    from repeg.domain.run import fold_run
    from repeg.journal.resume import has_orders, resume_run
    from repeg.journal.shutdown import KeptEvents, StopReport, journal_failed, run_stoppable, stop_run

    # Claimed before it is read: a run another process still works would be taken for a crashed one.
    journal.claim(run_id)
    journaled = journal.events(run_id) if journal.has_run(run_id) else []
    # Every event, kept as the journal takes it: should the journal fail, the run's orders are known from it.
    emitted = KeptEvents(journaled, journal_sink(journal))
    all_sinks = (emitted, *sinks)
    # A run that ended is never executed again, even one that sent nothing: `resume_run` answers it.
    resuming = has_orders(journaled) or fold_run(journaled).status is not None
    if resuming:
        _check_same_broker(run_id, journaled, broker.name)
    work = (
        resume_run(run_id, journal, broker, feed, clock, config=config, sinks=all_sinks)
        if resuming
        else execute_async(
            plan, broker, feed, clock, config, run_id=run_id, sinks=all_sinks, market_source=market
        )
    )

    def stopping() -> AbstractContextManager[object]:
        return on_stop() if on_stop is not None else nullcontext()

    async def stop() -> StopReport:
        with stopping():
            return await stop_run(run_id, journal, broker, clock, config=config)

    try:
        outcome = await run_stoppable(work, stop)
    except JournalError as failed:
        with stopping():
            stopped = await journal_failed(failed, run_id, emitted, broker, clock, config=config)
        raise stopped from failed
    if isinstance(outcome, StopReport):
        raise RunStoppedError(run_id, outcome.summary())
    return outcome


async def remote_session(
    plan: Plan,
    config: ExecutionConfig,
    run_id: str,
    *,
    journal: Journal,
    sim_url: str,
    sinks: Sequence[EventSink] = (),
) -> ExecutionResult:
    """`journaled_session` on the remote simulator (real time)."""
    from repeg.brokers.remote.client import RemoteBroker, RemoteFeed
    from repeg.engine.clock import RealClock

    broker = RemoteBroker(sim_url)
    clock = RealClock()
    feed = RemoteFeed(broker, clock)
    try:
        return await journaled_session(
            plan, config, run_id, journal=journal, broker=broker, feed=feed, clock=clock, sinks=sinks
        )
    finally:
        await feed.close()
        await broker.close()


async def alpaca_session(
    plan: Plan,
    config: ExecutionConfig,
    run_id: str,
    *,
    journal: Journal,
    broker: str,
    confirm: bool,
    allow_closed: bool,
    feed: str,
    sinks: Sequence[EventSink] = (),
) -> ExecutionResult:
    """`journaled_session` on Alpaca (`alpaca-paper`, or `alpaca-live` with `confirm`); used to resume there,
    on the quote `feed` given and, with `allow_closed` False, refusing a closed market like a fresh run (both
    required: a default once resumed every run on IEX into a closed market). A run that ended is only closed
    (`resume_run`: its orders left open cancelled, nothing sent), which Alpaca takes on a closed market too: no
    `--allow-closed` needed, and no orders are said to queue."""
    from repeg.brokers.alpaca.factory import build_alpaca
    from repeg.cli.alpaca_cmds import mode_for, say_if_closed
    from repeg.domain.events import AlpacaFeedSource
    from repeg.domain.run import fold_run
    from repeg.engine.clock import RealClock

    clock = RealClock()
    ended = journal.has_run(run_id) and fold_run(journal.events(run_id)).status is not None
    alpaca, quotes = await build_alpaca(
        mode_for(broker), confirm_live=confirm, allow_closed=allow_closed or ended, clock=clock, feed=feed
    )
    try:
        if not ended:
            say_if_closed(alpaca)  # the orders queue (allow_closed): told as a fresh run tells it
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
    finally:
        await quotes.aclose()
        await alpaca.aclose()


def usable_sim_url(sim_url: str | None) -> str:
    """`--sim-url` of `--broker sim-remote`, refused (`ConfigError`) when missing or malformed: checked before
    the journal is opened, so that a refused run leaves no journal file and no claimed run behind."""
    from repeg.brokers.remote.client import parse_sim_url
    from repeg.errors import ConfigError

    if sim_url is None:
        raise ConfigError(
            "--sim-url", None, "--broker sim-remote needs --sim-url sim://127.0.0.1:PORT/SESSION"
        )
    parse_sim_url(sim_url)
    return sim_url


def run_remote(
    plan: Plan,
    config: ExecutionConfig,
    *,
    run_id: str | None,
    journal: Journal,
    sim_url: str | None,
    sinks: Sequence[EventSink] = (),
) -> ExecutionResult:
    """Execute (or, for a known `run_id` unfinished or ended with an order left open, resume) `plan` on the remote
    simulator in real time."""
    import asyncio
    from datetime import UTC, datetime

    from repeg.api import default_run_id

    sim_url = usable_sim_url(sim_url)
    # The run id must be known before the run starts so that a graceful stop can find the run in the journal.
    chosen = run_id or default_run_id(plan, datetime.now(UTC))
    typer.echo(f"run {chosen} (journal {journal.location})", err=True)
    return asyncio.run(remote_session(plan, config, chosen, journal=journal, sim_url=sim_url, sinks=sinks))


def resume_feed(asked: str | None, events: Sequence[RunEvent]) -> str:
    """The Alpaca feed to resume a run on: the one `asked` (`--feed`), else the one the run's start in effect (the
    last journaled) recorded, else `iex` (a run journaled before repeg recorded it). One Alpaca does not have is
    refused naming `--feed` (`ConfigError`), before anything is contacted."""
    from repeg.cli.run import FEEDS
    from repeg.domain.events import AlpacaFeedSource
    from repeg.errors import ConfigError

    started = start_in_effect(events)
    market = None if started is None else started.market
    recorded = market.feed if isinstance(market, AlpacaFeedSource) else None
    feed = asked or recorded or "iex"
    if feed not in FEEDS:
        raise ConfigError("--feed", feed, f"unknown feed (known: {', '.join(FEEDS)})")
    return feed


def resume_on_alpaca(
    plan: Plan,
    config: ExecutionConfig,
    *,
    run_id: str,
    journal: Journal,
    broker: str,
    confirm: bool,
    allow_closed: bool,
    feed: str | None,
    sinks: Sequence[EventSink] = (),
) -> ExecutionResult:
    """`repeg run --broker alpaca-* --run-id ID` for an ID the journal knows: resume it, never trade it twice
    (with the run's own `--allow-closed`, and its `--feed`, else the feed the run recorded)."""
    import asyncio

    chosen = resume_feed(feed, journal.events(run_id))
    typer.echo(f"run {run_id} is in {journal.location}: resuming it", err=True)
    session = alpaca_session(
        plan,
        config,
        run_id,
        journal=journal,
        broker=broker,
        confirm=confirm,
        sinks=sinks,
        allow_closed=allow_closed,
        feed=chosen,
    )
    return asyncio.run(session)


def refuse_another_market(
    journal: Journal, run_id: str, asked: MarketSource | None, *, config: Path | None = None
) -> None:
    """A run id the journal knows names one market too: answered with that run's result (or refused as
    unfinished), a run `asked` on another market would never be executed. Refused before any order, naming the
    recorded market and the one asked; a quote file counts by its SHA-256 (it may have moved), a synthetic
    market by its seed, symbols, the settings both record and the version of the generator that makes its tape. Not checked when nothing is asked (a broker's own
    market) or nothing was recorded (a run journaled before repeg recorded its market)."""
    from repeg.domain.events import AlpacaFeedSource, RunStarted
    from repeg.errors import ConfigError

    if asked is None or not journal.has_run(run_id):
        return
    started = next((event for event in journal.events(run_id) if isinstance(event, RunStarted)), None)
    recorded = None if started is None else started.market
    # An Alpaca run's feed is no simulator market: the broker check names that run's broker instead.
    if recorded is None or isinstance(recorded, AlpacaFeedSource) or _same_market(recorded, asked):
        return
    key, value = _market_option(recorded, asked, config, run_id)
    raise ConfigError(
        key,
        value,
        f"run {run_id} ran on {recorded.describe()}, not on {asked.describe()}: use a new --run-id",
    )


def _same_market(recorded: MarketSource, asked: MarketSource) -> bool:
    from repeg.domain.events import QuoteFileSource, SyntheticSource

    if isinstance(recorded, QuoteFileSource) and isinstance(asked, QuoteFileSource):
        return recorded.sha256 == asked.sha256
    if isinstance(recorded, SyntheticSource) and isinstance(asked, SyntheticSource):
        fixed = (recorded.seed, recorded.symbols, recorded.generator_version)
        same = fixed == (asked.seed, asked.symbols, asked.generator_version)
        return same and _same_settings(recorded, asked)
    return False


def _same_settings(recorded: SyntheticSource, asked: SyntheticSource) -> bool:
    """Whether both record the same `[simulator.market]` values, compared as values (a price written "157.00" or
    157.0 makes the same tape), not as their JSON text; only the keys both record count (a later repeg may add
    some). Settings this repeg cannot read count by their text, as before."""
    common = recorded.settings.keys() & asked.settings.keys()
    if all(recorded.settings[key] == asked.settings[key] for key in common):
        return True
    values = [_settings_values(source, common) for source in (recorded, asked)]
    return values[0] is not None and values[0] == values[1]


def _settings_values(source: SyntheticSource, keys: set[str]) -> object:
    """The recorded settings of `keys` as `MarketSettings` values; None when this repeg cannot read them."""
    import json

    from repeg.errors import ConfigError
    from repeg.simulation import market_from_mapping

    try:
        return market_from_mapping({key: json.loads(source.settings[key]) for key in keys})
    except (json.JSONDecodeError, ConfigError):
        return None


def _market_option(
    recorded: MarketSource, asked: MarketSource, config: Path | None, run_id: str
) -> tuple[str, object]:
    """The option that chose the other market, and its value (the run id when no option did: the recorded market
    was made by another version of the synthetic generator, which no option of this repeg can make again)."""
    from repeg.domain.events import QuoteFileSource, SyntheticSource

    if isinstance(asked, QuoteFileSource):
        return "--quotes", asked.path
    if isinstance(recorded, QuoteFileSource):
        return "--quotes", None
    if isinstance(recorded, SyntheticSource) and isinstance(asked, SyntheticSource):
        if recorded.seed != asked.seed:
            return "--seed", asked.seed
        if recorded.generator_version != asked.generator_version:
            return "--run-id", run_id
    return "--config", None if config is None else str(config)
