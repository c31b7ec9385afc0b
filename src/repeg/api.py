"""The facade: run a plan against a broker, from the account as it stands, to an `ExecutionResult`.

`execute_async` is the one entry point every front end uses (the CLI, `execute`, tests). It is the imperative
shell around the pure planning core:

1. read the account, positions and asset facts from the broker (unknown symbol -> `UnknownSymbolError`);
2. take arrival prices (valid quote mids) from the feed, waiting at most `config.quote_wait` for them;
3. derive the legs (`planning.derive`) and apply the safety rails (`planning.checks`);
4. hand the legs to the engine (`engine.runner.run_execution`).

Every refusal in steps 1-3 is a typed error raised before any order is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, localcontext
from pathlib import Path

import structlog

from repeg.brokers.base import Broker, ExpectsSent
from repeg.config import ExecutionConfig, as_config
from repeg.domain.account import Asset
from repeg.domain.events import EventSink, MarketSource
from repeg.domain.ids import client_order_id, new_run_id, validate_run_id
from repeg.domain.plan import Plan, PlanKind
from repeg.domain.quote import Quote, QuoteVerdict, assess_quote
from repeg.engine.clock import Clock, run_virtual
from repeg.engine.runner import run_execution
from repeg.errors import ConfigError, RunIdInUseError, UnknownSymbolError
from repeg.logging import bind_run, configure_logging
from repeg.market.base import QuoteFeed
from repeg.planning.checks import check_safety
from repeg.planning.derive import derive_legs, plan_symbols
from repeg.planning.parse import load_plan
from repeg.report.quality import DECIMAL_CONTEXT
from repeg.report.result import ExecutionResult

log = structlog.get_logger("repeg.api")


def plan_digest(plan: Plan) -> str:
    """A stable digest of a plan's content (its rows, not its file name)."""
    rows = plan.model_dump_json(include={"kind", "trades", "weights"})
    return hashlib.sha256(rows.encode()).hexdigest()


def default_run_id(plan: Plan, now: datetime) -> str:
    """A run id derived from the start time and the plan: deterministic, no hidden randomness."""
    return new_run_id(f"{now.isoformat()}|{plan_digest(plan)}")


def _checked_run_id(run_id: str) -> str:
    try:
        return validate_run_id(run_id)
    except ValueError as exc:
        raise ConfigError("run_id", run_id, str(exc)) from exc


def as_plan(plan: Plan | str | Path) -> Plan:
    """Accept a parsed plan or the path of a plan file."""
    return plan if isinstance(plan, Plan) else load_plan(Path(plan))


def valid_mid(quote: Quote | None, now: datetime, config: ExecutionConfig) -> Decimal | None:
    """The quote's mid if it may be priced from now (see `assess_quote`), else None."""
    verdict = assess_quote(quote, now, config.quote_age_limit, config.max_spread_pct)
    return quote.mid if quote is not None and verdict is QuoteVerdict.VALID else None


async def arrival_prices(
    feed: QuoteFeed, clock: Clock, symbols: Sequence[str], config: ExecutionConfig
) -> dict[str, Decimal]:
    """Mid of the first valid quote of each symbol, waiting up to `config.quote_wait` for the missing ones.

    Symbols still without a valid quote at the deadline are absent from the result (their trades are skipped).
    """
    deadline = clock.now() + config.quote_wait_limit
    wanted = list(dict.fromkeys(symbols))  # a basket may repeat a symbol: one price serves all its rows
    prices: dict[str, Decimal] = {}
    while True:
        now = clock.now()
        for symbol in wanted:
            mid = prices.get(symbol) or valid_mid(feed.latest(symbol), now, config)
            if mid is not None:
                prices[symbol] = mid
        if len(prices) == len(wanted) or now >= deadline:
            return prices
        await clock.sleep_until(min(now + config.check_interval, deadline))


async def _refuse_a_used_run_id(broker: Broker, run_id: str) -> None:
    """A broker whose orders outlive the run (`ExpectsSent`: Alpaca, both simulators) may hold an earlier run's orders under
    this run id (another journal, or a deleted one), under the very client order ids this run would send. It cannot
    be asked by id prefix: the first id the run would use (leg 0, attempt 0) is looked up, and found, the run is
    refused (`RunIdInUseError`). A resume never gets here (`resume_run`)."""
    if not isinstance(broker, ExpectsSent):
        return
    first = client_order_id(run_id, 0, 0)
    found = await broker.get_order_by_client_id(first)
    if found is not None:
        raise RunIdInUseError(run_id, first, found.order_id)


async def _assets(broker: Broker, plan: Plan, symbols: Iterable[str]) -> dict[str, Asset]:
    """The broker's facts for `symbols`; a symbol it does not know is refused naming the plan's file and row."""
    assets: dict[str, Asset] = {}
    for symbol in symbols:
        try:
            assets[symbol] = await broker.get_asset(symbol)
        except UnknownSymbolError as exc:
            raise UnknownSymbolError(symbol, plan.source, plan.row_of(symbol)) from exc
    return assets


async def execute_async(
    plan: Plan | str | Path,
    broker: Broker,
    feed: QuoteFeed,
    clock: Clock,
    config: ExecutionConfig | Mapping[str, object] | None = None,
    *,
    run_id: str | None = None,
    sinks: Sequence[EventSink] = (),
    market_source: MarketSource | None = None,
) -> ExecutionResult:
    """Execute `plan` against `broker`, pricing from `feed`, timed by `clock`.

    `market_source` names the market data the run prices from, for the journal's `RunStarted.market`: the quote
    file or synthetic market of a simulated run, the feed of an Alpaca run (`AlpacaFeedSource`); None when nothing
    is recorded (as for the remote simulator's own market).

    Raises `PlanError` (bad plan, unknown or non-tradable symbol), `SafetyLimitError`, `ConfigError` (a malformed
    run id, or `RunIdInUseError`: one whose orders the broker holds already) or `BrokerError` before any order is
    sent. `config` may be an `ExecutionConfig` or a mapping of its keys (validated as the `[execution]` table of
    a TOML file: a bad key is a `ConfigError` naming it). Once the engine runs, leg outcomes (refusals, missing quotes, deadlines) are reported in the result, not
    raised; a failure of the run itself (e.g. the broker's account cannot be read for the buys, or an event sink
    fails) ends it as failed and is raised (`repeg.engine.runner`). If the application has not configured structlog,
    warnings and errors are logged to stderr (never to stdout). The run computes in `DECIMAL_CONTEXT`, whatever `decimal.getcontext()` the caller set.
    """
    if not structlog.is_configured():
        configure_logging(level="warning")  # an application that configured structlog keeps its own setup
    with localcontext(DECIMAL_CONTEXT):  # the caller's own decimal context is not the run's
        plan = as_plan(plan)
        config = as_config(config)
        run_id = default_run_id(plan, clock.now()) if run_id is None else _checked_run_id(run_id)
        with bind_run(run_id):
            await _refuse_a_used_run_id(broker, run_id)
            symbols = list(dict.fromkeys(plan_symbols(plan)))  # each once: a basket may repeat one
            account = await broker.get_account()
            positions = await broker.get_positions()
            assets = await _assets(broker, plan, symbols)
            held = [position.symbol for position in positions if position.symbol not in assets]
            await feed.subscribe([*symbols, *held])
            prices = await arrival_prices(feed, clock, symbols, config)
            prices.update(_held_prices(feed, clock, held, config))
            legs, skipped = derive_legs(plan, account, positions, assets, prices, config=config)
            _tell_untouched(plan, held)
            notional = check_safety(legs, prices, config)
            log.info(
                "plan_derived",
                legs=len(legs),
                skipped=len(skipped),
                notional=str(notional),
                source=plan.source,
            )
            return await run_execution(
                legs,
                skipped,
                broker,
                feed,
                clock,
                config,
                run_id=run_id,
                sinks=tuple(sinks),
                plan=plan,
                market_source=market_source,
            )


#: Why a held symbol outside a weights plan is not traded, as the warning that names such symbols says it.
UNTOUCHED = (
    "left untouched: a weights plan trades only the symbols it names (list one with weight 0 to exit it)"
)


def _tell_untouched(plan: Plan, held: Sequence[str]) -> None:
    """Warn (on stderr, at the default level) of the held symbols a weights plan leaves as they are: a user
    rebalancing to weights may expect every other holding sold. A trade list trades only its rows anyway."""
    if plan.kind is PlanKind.WEIGHTS and held:
        log.warning("held_not_in_plan", symbols=sorted(held), outcome=UNTOUCHED, source=plan.source)


def _held_prices(
    feed: QuoteFeed, clock: Clock, symbols: Iterable[str], config: ExecutionConfig
) -> Mapping[str, Decimal]:
    """Valid mids of held symbols outside the plan, as they stand now (used only to value equity)."""
    now = clock.now()
    mids = {symbol: valid_mid(feed.latest(symbol), now, config) for symbol in symbols}
    return {symbol: mid for symbol, mid in mids.items() if mid is not None}


def execute(
    plan: Plan | str | Path,
    broker: Broker,
    feed: QuoteFeed,
    clock: Clock,
    config: ExecutionConfig | Mapping[str, object] | None = None,
    *,
    run_id: str | None = None,
    sinks: Sequence[EventSink] = (),
) -> ExecutionResult:
    """`execute_async` on a fresh virtual-time event loop: for simulated brokers, whose clock is virtual."""

    async def main() -> ExecutionResult:
        return await execute_async(plan, broker, feed, clock, config, run_id=run_id, sinks=sinks)

    return run_virtual(main)
