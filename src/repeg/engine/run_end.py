"""The run's end: before a run (fresh or resumed) reports, it asks the broker about every order not known closed.

A cancel at the last phase's end may be unconfirmed, an update undelivered, a submit never answered: the run asks
for each such order (a submit by its client order id), records what the broker says (a fill that raced the
cancel, the order the submit created), cancels what it still reads open or could not read and waits for those
cancels to be confirmed (`repeg.engine.phases.settled_by`, as between the sells and the buys), so that the result
holds every fill the broker made and no order keeps working unnoticed after the run reported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import structlog

from repeg.engine.monitor import EngineContext
from repeg.engine.phases import (
    cancel_left_open,
    look_up_unknown,
    open_orders_of,
    record_late_updates,
    settled_by,
    unknown_submits,
)

_log = structlog.get_logger("repeg.engine")


async def look_up_open_orders(ctx: EngineContext) -> None:
    """Before a run ends: ask the broker once for each order of the run not known closed (a cancel at the last
    phase's end not yet confirmed, an update not yet delivered; a submit never answered, by its client order id),
    record what it says (a fill that raced the cancel, the order the submit created), then every update waiting.
    The result then holds every fill the broker had made. An order the broker still reads open, or that it could
    not be asked about (logged `reconcile_failed`), is then cancelled (`_cancel_at_run_end`: it may be one the run
    first reads here, e.g. a replacement it never knew of, or the order of a submit never answered, that no cancel
    ever reached), and its confirmation awaited within `grace_window` (an update, or a read finding it closed; a
    fill meanwhile is recorded): Alpaca answers a DELETE at once and confirms it later (`pending_cancel`). One still
    open then stays open in the result (so the run is not `completed`).
    One leg at a time (its lookups, its cancels, their confirmation); lookups and cancels start only within `grace_window` of
    the first, so that a broker slow to fail (retries, backoff) does not hold the run's end for each order: the
    rest are logged, unasked or not cancelled."""
    give_up = ctx.clock.now() + ctx.config.grace
    left = _LeftAtRunEnd()
    for index in sorted(ctx.bus.folder.legs):
        await _close_at_run_end(ctx, index, give_up, left)
    if left.unasked or left.unsought:
        _log.warning(
            "run_end_lookups_skipped",
            run_id=ctx.bus.run_id,
            order_ids=left.unasked,
            client_order_ids=left.unsought,
        )
    if left.uncancelled:
        _log.warning("run_end_cancels_skipped", run_id=ctx.bus.run_id, order_ids=left.uncancelled)
    await record_late_updates(ctx)


@dataclass
class _LeftAtRunEnd:
    """What the run's last lookups left undone, the window past: orders not asked, submits not sought by their
    client order id, orders not cancelled."""

    unasked: list[str] = field(default_factory=list)
    unsought: list[str] = field(default_factory=list)
    uncancelled: list[str] = field(default_factory=list)


async def _close_at_run_end(ctx: EngineContext, index: int, give_up: datetime, left: _LeftAtRunEnd) -> None:
    """One leg at the run's end: ask for each of its orders not known closed (and a submit never answered), then
    cancel what is still open and wait, within the window, for those cancels to be confirmed (`settled_by`, as
    between the sells and the buys), before moving to the next leg, so that an order found open (a replacement
    first learned here) is cancelled even when the window runs out on later legs."""
    leg = (index,)
    absent: set[str] = set()
    found, unknown = open_orders_of(ctx, leg), unknown_submits(ctx, leg, absent)
    if not found and not unknown:
        return
    left.unasked += await _while_before(ctx, give_up, found, ctx.gateway.reconcile)
    left.unsought += await _while_before(ctx, give_up, unknown, partial(look_up_unknown, ctx, absent=absent))
    await record_late_updates(ctx)
    cancel = partial(_cancel_at_run_end, ctx)
    left.uncancelled += await _while_before(ctx, give_up, open_orders_of(ctx, leg), cancel)
    await settled_by(ctx, leg, give_up, absent)  # its cancels confirmed (or fills recorded) within the window


async def _while_before(
    ctx: EngineContext,
    give_up: datetime,
    orders: Sequence[tuple[int, str]],
    act: Callable[[int, str], Awaitable[object]],
) -> list[str]:
    """`act` on each (leg, order id) of `orders` while the clock is not past `give_up`; the ids of those left."""
    left: list[str] = []
    for index, order_id in orders:
        if ctx.clock.now() > give_up:
            left.append(order_id)
        else:
            await act(index, order_id)
    return left


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
