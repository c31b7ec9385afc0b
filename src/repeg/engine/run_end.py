"""The run's end: before a run (fresh or resumed) reports, it asks the broker about every order not known closed.

A cancel at the last phase's end may be unconfirmed, an update undelivered, a submit never answered: the run asks
for each such order once (a submit by its client order id), records what the broker says (a fill that raced the
cancel, the order the submit created), cancels what it still reads open or could not read, and waits for those
cancels to be confirmed (`repeg.engine.phases.settled_by`, as between the sells and the buys), so that the result
holds every fill the broker made and no order keeps working unnoticed after the run reported.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine, Iterable
from datetime import datetime, timedelta

import structlog

from repeg.engine.bounded_broker import BoundedBroker
from repeg.engine.monitor import EngineContext
from repeg.engine.phases import (
    cancel_left_open,
    look_up_unknown,
    open_orders_of,
    record_late_updates,
    settled_by,
    unknown_submits,
)
from repeg.engine.task_groups import one_error_raised_as_is

_log = structlog.get_logger("repeg.engine")
#: The least time a broker call at the run's end is given, once its window has passed (or with none): ample for a
#: healthy broker's answer (Alpaca's round trip is well under a second), short of a broker slow to fail.
CALL_FLOOR = timedelta(seconds=2)


async def look_up_open_orders(ctx: EngineContext) -> None:
    """Before a run ends: for each order of the run not known closed (and each submit never answered), one lookup;
    then, for each it still reads open or could not read (`_cancel_at_run_end`: it may be one the run first reads
    here, a replacement it never knew of or the order of a submit never answered, that no cancel ever reached),
    one cancel (unless one is pending); then it waits, within `grace_window`, for the cancels' confirmation (an
    update, or a read finding the order closed), recording any fill that lands meanwhile. An order still open
    then, or never read, stays open in the result (so the run is not `completed`), named in its leg's error.

    That first lookup and cancel go out whatever the window (even `grace_window = 0`); so that a broker slow to
    fail (retries, backoff) cannot hold the run's end for each order, the legs are handled at once and each call
    is given up at the later of the window's end and `CALL_FLOOR` after it started (`BoundedBroker`), its wait for
    a turn under the client's own request pacing not counted: every order is asked and cancelled, however many
    queue under the broker's rate."""
    give_up = ctx.clock.now() + ctx.config.grace
    legs = [index for index in sorted(ctx.bus.folder.legs) if _may_be_open(ctx, index)]
    if legs:
        bounded = BoundedBroker(ctx.broker, ctx.clock, give_up, CALL_FLOOR)
        at_end = dataclasses.replace(ctx, broker=bounded)
        with ctx.gateway.calling(bounded):
            await _all_at_once(_close_at_run_end(at_end, index, give_up) for index in legs)
    await record_late_updates(ctx)


def _may_be_open(ctx: EngineContext, index: int) -> bool:
    return bool(open_orders_of(ctx, (index,)) or unknown_submits(ctx, (index,), set()))


async def _all_at_once(calls: Iterable[Coroutine[object, object, None]]) -> None:
    """Run `calls` concurrently; an error of one is raised as is (typed), not wrapped in an `ExceptionGroup`."""
    with one_error_raised_as_is():
        async with asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(call)


async def _close_at_run_end(ctx: EngineContext, index: int, give_up: datetime) -> None:
    """One leg at the run's end: ask for each of its orders not known closed (and a submit never answered), cancel
    what is still open, then wait until `give_up` for the cancels to be confirmed."""
    leg = (index,)
    absent: set[str] = set()
    for _, order_id in open_orders_of(ctx, leg):
        await ctx.gateway.reconcile(index, order_id)
    for _, cid in unknown_submits(ctx, leg, absent):
        await look_up_unknown(ctx, index, cid, absent)
    await record_late_updates(ctx)
    for _, order_id in open_orders_of(ctx, leg):
        await _cancel_at_run_end(ctx, index, order_id)
    await settled_by(ctx, leg, give_up, absent)


async def _cancel_at_run_end(ctx: EngineContext, index: int, order_id: str) -> None:
    """Cancel an order the run's last lookup left open (unless a cancel of it is pending), as a phase's hard stop
    cancels what still works: left working, a DAY order could fill after the run has reported. The outcome is
    logged and the order read once more, so that the journal records it (canceled, or a fill that raced it)."""
    accepted = await cancel_left_open(ctx, index, order_id)
    if accepted is None:
        return
    _log.info(
        "run_end_cancel",
        run_id=ctx.bus.run_id,
        correlation_id=ctx.bus.correlation(index),
        symbol=ctx.bus.leg(index).symbol,
        order_id=order_id,
        accepted=accepted,
    )
    await ctx.gateway.reconcile(index, order_id)
