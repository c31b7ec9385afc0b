"""Entry points of the engine: execute a set of legs (sells, then buys), or a basket of timed parent orders.

Both wire one run: an `EventBus` (fold + sinks), one broker subscription routed to the phase monitors, the
write-ahead `OrderGateway` and the policy (`LadderPolicy` unless another is given). They announce the run
(`RunStarted`, `LegPlanned`, `LegSkipped`), run the phases, close it (`RunEnded`) and return the result built from
the folded events. Before closing, the broker is asked once for each order of the run not known closed (e.g. a
cancel at the last phase's hard stop still unconfirmed), so that a fill that raced it is in the result, and one it
still reads open is cancelled, its confirmation awaited (`repeg.engine.run_end`). Leg-level troubles (refusals,
missing quotes, deadlines) end up in the result, not raised; an engine failure (e.g. the broker's account cannot be
read for the buys) ends the run as failed and is raised.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal

import structlog
from pydantic import BaseModel, ConfigDict, Field

import repeg
from repeg.brokers.base import Broker
from repeg.config import ExecutionConfig
from repeg.domain.events import (
    EventSink,
    LegFinished,
    LegPlanned,
    LegSkipped,
    MarketSource,
    RunEnded,
    RunStarted,
)
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import Side
from repeg.domain.plan import LegSpec, Plan, PlanKind, SkippedTrade, TradeIntent
from repeg.domain.ticks import ZERO
from repeg.engine.bus import EventBus, UpdateRouter
from repeg.engine.clock import Clock
from repeg.engine.gateway import OrderGateway
from repeg.engine.monitor import EngineContext
from repeg.engine.phases import orders_settled, run_buy_phase, run_phase
from repeg.engine.run_end import look_up_open_orders
from repeg.engine.task_groups import one_error_raised_as_is
from repeg.errors import PlanError
from repeg.market.base import QuoteFeed
from repeg.policy.decide import ExecutionPolicy, LadderPolicy
from repeg.report.result import ExecutionResult, RunStatus, build_result, run_status

_log = structlog.get_logger("repeg.engine")
_SELLS_STILL_WORKING = (
    "a sell order was still open at the broker, or not yet reported closed, after max_total_wait: "
    "buys not started"
)


class ParentOrder(BaseModel):
    """One order of a basket: executed as its own one-leg window starting at `arrival`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arrival: datetime
    symbol: str = Field(min_length=1)
    side: Side
    qty: Decimal = Field(gt=ZERO)
    whole_shares: bool = False


def _plan_of(specs: Sequence[LegSpec]) -> Plan:
    """A trade-list plan equivalent to `specs`, for runs started from the API without a plan file."""
    if not specs:
        raise PlanError("nothing to execute: no legs")
    trades = tuple(
        TradeIntent(symbol=spec.symbol, side=spec.side, qty=spec.qty, notional=spec.notional)
        for spec in specs
    )
    return Plan(source="<api>", kind=PlanKind.TRADES, trades=trades)


def _config_record(config: ExecutionConfig) -> dict[str, str]:
    dumped = config.model_dump(mode="json")
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in dumped.items()}


def engine_context(
    bus: EventBus,
    *,
    broker: Broker,
    feed: QuoteFeed,
    clock: Clock,
    config: ExecutionConfig,
    policy: ExecutionPolicy | None,
) -> EngineContext:
    """Wire one run around `bus`: route the broker's updates into its fold, and gate orders through it.

    Shared by new runs and resumed ones (whose bus is seeded with the journal's events). The run's end closes
    the router (`UpdateRouter.close`), unsubscribing it from the broker.
    """
    router = UpdateRouter(bus.folder)
    router.listen(broker)
    return EngineContext(
        broker=broker,
        feed=feed,
        clock=clock,
        config=config,
        policy=policy or LadderPolicy(config),
        bus=bus,
        gateway=OrderGateway(broker, bus, config),
        router=router,
    )


def _context(
    *,
    broker: Broker,
    feed: QuoteFeed,
    clock: Clock,
    config: ExecutionConfig,
    run_id: str,
    sinks: Sequence[EventSink],
    policy: ExecutionPolicy | None,
) -> EngineContext:
    bus = EventBus(run_id, clock, sinks)
    return engine_context(bus, broker=broker, feed=feed, clock=clock, config=config, policy=policy)


async def _announce(
    ctx: EngineContext,
    specs: Sequence[LegSpec],
    skipped: Sequence[SkippedTrade],
    plan: Plan,
    market: MarketSource | None = None,
) -> None:
    """Subscribe the feed and record the run's start. If that fails (the feed, a sink), the run ends before its
    phases: its router is unsubscribed here, as `_run` does for a run that started."""
    bus = ctx.bus
    try:
        await ctx.feed.subscribe(sorted({spec.symbol for spec in specs}))
        await bus.emit(
            RunStarted(
                **bus.stamp(),
                plan=plan,
                config=_config_record(ctx.config),
                broker=ctx.broker.name,
                code_version=repeg.__version__,
                market=market,
            )
        )
        for spec in specs:
            await bus.emit(LegPlanned(**bus.stamp(spec.index), spec=spec))
        for trade in skipped:
            await bus.emit(LegSkipped(**bus.stamp(), skipped=trade))
    except BaseException:
        ctx.router.close()
        raise


async def _run(ctx: EngineContext, body: Callable[[], Awaitable[None]]) -> ExecutionResult:
    """Run the phases; close the run with its status, or as failed if the engine itself broke."""
    bus = ctx.bus
    log = _log.bind(run_id=bus.run_id)
    try:
        await body()
        await look_up_open_orders(ctx)  # the last updates recorded: nothing can land before the router closes
    except Exception:
        log.exception("run_failed")
        await bus.emit(RunEnded(**bus.stamp(), status=RunStatus.FAILED.value))
        raise
    finally:
        ctx.router.close()
    status = run_status(tuple(bus.folder.legs.values()), bus.folder.skipped_count)
    await bus.emit(RunEnded(**bus.stamp(), status=status.value))
    log.info("run_ended", status=status.value, events=bus.count, legs=len(bus.folder.legs))
    return build_result(bus.folder.snapshot())


async def run_execution(  # noqa: PLR0917 - the positional shape is the engine's published contract
    specs: Sequence[LegSpec],
    skipped: Sequence[SkippedTrade],
    broker: Broker,
    feed: QuoteFeed,
    clock: Clock,
    config: ExecutionConfig,
    *,
    run_id: str,
    sinks: Sequence[EventSink] = (),
    policy: ExecutionPolicy | None = None,
    plan: Plan | None = None,
    market_source: MarketSource | None = None,
) -> ExecutionResult:
    """Execute `specs`: every sell first, then the buys, sized to the buying power left after the sells.

    The buy phase starts only once no sell order is open at the broker: after the sell phase the run waits up to
    `max_total_wait` for the last cancels to be confirmed, and if a sell order is still open then, every buy ends
    skipped, nothing sent. The buys are then sized from the account's buying power as the broker reports it and
    from a valid quote of each buy symbol, waiting up to `quote_wait` for the missing ones. Every buy needs one,
    a quantity as much as a notional, since a buy without a valid ask cannot be costed: it ends skipped whatever
    `on_no_quote` says. A notional becomes a quantity at that ask (rounded down, to whole shares for a
    `whole_shares` leg). When the estimated cost, qty * ask * (1 + `escalation_collar_bps` / 10000), exceeds
    the buying power, every buy is scaled down by one factor (reported in `PhaseStarted.scale`), and a buy scaled to
    nothing or under `min_notional` ends skipped. See `repeg.engine.phases.run_buy_phase`.

    `market_source` (the simulator's quote file or synthetic market) is recorded in `RunStarted.market`.
    """
    plan = plan or _plan_of(specs)  # before the router subscribes: a refusal here leaves the broker as it was
    ctx = _context(
        broker=broker, feed=feed, clock=clock, config=config, run_id=run_id, sinks=sinks, policy=policy
    )
    await _announce(ctx, specs, skipped, plan, market_source)
    sells = [spec.index for spec in specs if spec.side is Side.SELL]
    buys = [spec.index for spec in specs if spec.side is Side.BUY]

    async def phases() -> None:
        if sells:
            await run_phase(ctx, Side.SELL, sells)
        if not buys:
            return
        if await orders_settled(ctx, sells):
            await run_buy_phase(ctx, buys)
            return
        for index in buys:
            await ctx.bus.emit(
                LegFinished(
                    **ctx.bus.stamp(index), status=LegStatus.SKIPPED.value, reason=_SELLS_STILL_WORKING
                )
            )

    return await _run(ctx, phases)


async def run_basket(
    orders: Sequence[ParentOrder],
    broker: Broker,
    feed: QuoteFeed,
    clock: Clock,
    config: ExecutionConfig,
    *,
    run_id: str,
    sinks: Sequence[EventSink] = (),
    policy: ExecutionPolicy | None = None,
) -> ExecutionResult:
    """Execute parent orders that arrive over time (e.g. a basket over a replayed day) as one run.

    Order i becomes leg i; at its `arrival` (clock time) it gets its own window (`PhaseStarted` with
    `leg_index=i`, deadline `max_total_wait` later) and its own monitor, so orders overlap freely. No phase
    ordering, buy sizing or scaling applies: each order is executed as given, never bounded by the buying power.
    An order window that breaks raises its own error and ends the whole run as failed.
    """
    specs = [
        LegSpec(index=i, symbol=o.symbol, side=o.side, qty=o.qty, whole_shares=o.whole_shares)
        for i, o in enumerate(orders)
    ]
    plan = _plan_of(specs)  # before the router subscribes: a refusal here leaves the broker as it was
    ctx = _context(
        broker=broker, feed=feed, clock=clock, config=config, run_id=run_id, sinks=sinks, policy=policy
    )
    await _announce(ctx, specs, (), plan)

    async def all_orders() -> None:
        # One dispatcher sleeps to each arrival in turn; only orders already arrived hold tasks and timers.
        schedule = sorted(enumerate(orders), key=lambda item: (item[1].arrival, item[0]))
        # One order's window that breaks the run raises its own (typed) error, as `run_execution` would.
        with one_error_raised_as_is():
            async with asyncio.TaskGroup() as group:
                for index, order in schedule:
                    await clock.sleep_until(order.arrival)
                    group.create_task(run_phase(ctx, order.side, [index], leg_index=index))

    return await _run(ctx, all_orders)
