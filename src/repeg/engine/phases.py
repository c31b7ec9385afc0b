"""Phases: all sells, then buys sized to the buying power the sells actually left.

`size_buys` is pure: it turns buy legs (quantities or dollar notionals) into exact quantities from the quotes then
valid (a leg without one is dropped: its cost could not be bounded) and scales them all down by one factor when
their estimated cost exceeds the buying power (a leg scaled under `min_notional` is dropped). The async
functions announce a phase (`PhaseStarted`, with the scale), run its monitor and close it (`PhaseEnded`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

import structlog

from repeg.domain.events import LegFinished, LegPlanned, OrderUpdated, PhaseEnded, PhaseStarted
from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.order_record import unread_replacement
from repeg.domain.orders import OrderStatus, Side
from repeg.domain.plan import LegSpec
from repeg.domain.quote import Quote, QuoteVerdict, assess_quote
from repeg.domain.ticks import BPS, PENNY, ZERO, round_qty_down
from repeg.engine.monitor import EngineContext, PhaseMonitor
from repeg.engine.order_reads import polled_update
from repeg.errors import BrokerError, ClientOrderIdConflictError

_ONE = Decimal(1)
_log = structlog.get_logger("repeg.engine")
_SCALE_QUANTUM = Decimal("0.000001")
_NO_QUOTE_NOTIONAL = "no valid quote to size the notional"
_NO_QUOTE_QTY = "no valid quote to bound its cost by the buying power"


@dataclass(frozen=True)
class BuySizing:
    """Sized buy legs, the legs that could not be sized (with why), the scale applied and the cost estimate."""

    legs: tuple[LegSpec, ...]
    dropped: tuple[tuple[LegSpec, str], ...]
    scale: Decimal
    estimated_cost: Decimal


def _sized(spec: LegSpec, ask: Decimal | None, min_notional: Decimal) -> Decimal | str:
    """The leg's quantity before any scaling, or why it cannot be bought.

    A whole-share notional leg is held to `min_notional` by what it buys at the ask, as at planning (at the mid):
    rounded down to whole shares at a higher price it may buy less than the minimum."""
    if ask is None:
        # Without a valid ask the leg's cost cannot be bounded, so it cannot be shown to fit the buying power.
        return _NO_QUOTE_QTY if spec.qty is not None else _NO_QUOTE_NOTIONAL
    if spec.qty is not None:
        qty = spec.qty
    else:
        qty = ZERO if spec.notional is None else round_qty_down(spec.notional / ask, spec.whole_shares)
    if qty <= ZERO:
        return "sized to zero"
    if spec.notional is not None and spec.whole_shares and qty * ask < min_notional:
        shown = (qty * ask).quantize(PENNY, rounding=ROUND_DOWN)  # never rounded up to the minimum
        return f"sized to a notional of {shown}, below min_notional {min_notional}"
    return qty


def _scale_for(cost: Decimal, buying_power: Decimal) -> Decimal:
    if cost <= buying_power:
        return _ONE
    if buying_power <= ZERO:
        return ZERO
    return (buying_power / cost).quantize(_SCALE_QUANTUM, rounding=ROUND_DOWN)


def _scaled(
    spec: LegSpec, qty: Decimal, ask: Decimal, scale: Decimal, min_notional: Decimal
) -> LegSpec | str:
    """The leg at `scale`, or why it is dropped: scaled to nothing, or (scaled) under `min_notional`."""
    if scale == _ONE:
        final = qty
    else:
        final = round_qty_down(qty * scale, spec.whole_shares)
        if final <= ZERO:
            return f"scaled to zero (scale {scale})"
        if final * ask < min_notional:
            shown = (final * ask).quantize(PENNY, rounding=ROUND_DOWN)  # never rounded up to the minimum
            return f"scaled to a notional of {shown}, below min_notional {min_notional} (scale {scale})"
    return LegSpec(
        index=spec.index,
        symbol=spec.symbol,
        side=spec.side,
        qty=final,
        whole_shares=spec.whole_shares,
        full_exit=spec.full_exit and final == qty,  # a scaled cover is no longer the exact position
    )


def size_buys(
    specs: Sequence[LegSpec],
    asks: Mapping[str, Decimal],
    buying_power: Decimal,
    buffer_bps: Decimal,
    *,
    min_notional: Decimal = ZERO,
) -> BuySizing:
    """Quantities for buy legs whose total estimated cost (qty * ask * (1 + buffer)) fits `buying_power`.

    `asks` holds the far touch of each symbol with a valid quote. A leg without one is dropped, whether it has a
    notional (it cannot be sized) or a quantity (its cost cannot be bounded, so sending it could exceed the
    buying power). When the estimate exceeds the buying power every leg is scaled by the same factor (rounded
    down, whole shares for whole-share legs); a leg scaled to nothing, or to a notional under `min_notional`
    (at its ask), is dropped, like a trade too small at planning; so is a whole-share notional leg that buys
    under `min_notional` at its ask, scaled or not.
    """
    factor = _ONE + buffer_bps / BPS
    sized: list[tuple[LegSpec, Decimal, Decimal]] = []
    dropped: list[tuple[LegSpec, str]] = []
    cost = ZERO
    for spec in specs:
        ask = asks.get(spec.symbol)
        qty = _sized(spec, ask, min_notional)
        if isinstance(qty, str) or ask is None:
            dropped.append((spec, str(qty)))
            continue
        sized.append((spec, qty, ask))
        cost += qty * ask * factor
    scale = _scale_for(cost, buying_power)
    legs: list[LegSpec] = []
    for spec, qty, ask in sized:
        leg = _scaled(spec, qty, ask, scale, min_notional)
        if isinstance(leg, str):
            dropped.append((spec, leg))
        else:
            legs.append(leg)
    return BuySizing(legs=tuple(legs), dropped=tuple(dropped), scale=scale, estimated_cost=cost)


async def run_phase(
    ctx: EngineContext,
    side: Side,
    legs: Sequence[int],
    *,
    scale: Decimal = _ONE,
    buying_power: Decimal | None = None,
    leg_index: int | None = None,
) -> None:
    """Announce, monitor and close one phase (`leg_index` set: a basket order's own window)."""
    bus = ctx.bus
    await bus.emit(PhaseStarted(**bus.stamp(leg_index), side=side, scale=scale, buying_power=buying_power))
    await PhaseMonitor(ctx, legs, ctx.clock.now()).run()
    await bus.emit(PhaseEnded(**bus.stamp(leg_index), side=side))
    await record_late_updates(ctx)


async def record_late_updates(ctx: EngineContext) -> None:
    """Record updates of the run's orders that arrived after their phase ended (e.g. a fill racing a cancel),
    including those pushed while the earlier ones were being recorded: none is left waiting when it returns."""
    bus = ctx.bus
    while updates := ctx.router.late.drain():
        for update in updates:
            index = bus.folder.leg_of(update.order.client_order_id)
            await bus.emit(OrderUpdated(**bus.stamp(index), update=update))


async def _valid_asks(ctx: EngineContext, specs: Sequence[LegSpec]) -> dict[str, Decimal]:
    """Far touches of the buy symbols; waits up to `quote_wait` while any buy leg still lacks a valid quote.

    Every leg needs one, not only the notional legs: a leg without a valid ask cannot be costed, so it could not
    be shown to fit the buying power and `size_buys` drops it (whatever `on_no_quote` says). Each symbol keeps
    the last quote seen valid during the wait while no newer quote replaces it: two sparse quotes need not be
    valid at the same instant, but an ask the market has since moved away from is never sized from.
    """
    give_up = ctx.clock.now() + ctx.config.quote_wait_limit
    kept: dict[str, Quote] = {}
    while True:
        now = ctx.clock.now()
        for spec in specs:
            quote: Quote | None = ctx.feed.latest(spec.symbol)
            verdict = assess_quote(quote, now, ctx.config.quote_age_limit, ctx.config.max_spread_pct)
            sizing = _sizing_quote(kept.get(spec.symbol), quote, verdict)
            if sizing is None:
                kept.pop(spec.symbol, None)
            else:
                kept[spec.symbol] = sizing
        missing = any(spec.symbol not in kept for spec in specs)
        if not missing or now >= give_up:
            return {symbol: held.ask for symbol, held in kept.items()}
        await ctx.clock.sleep_until(min(give_up, now + ctx.config.check_interval))


def _sizing_quote(kept: Quote | None, latest: Quote | None, verdict: QuoteVerdict) -> Quote | None:
    """The quote a buy symbol is sized from: its latest quote when valid; else the one kept, while it is still the
    symbol's latest quote (only aged: no newer price is known). A newer invalid quote (spread too wide, one-sided,
    crossed) replaces it: its ask is no longer the market's, and sizing from it could exceed the buying power."""
    if latest is not None and verdict is QuoteVerdict.VALID:
        return latest
    return kept if kept is not None and kept == latest else None


def open_orders_of(ctx: EngineContext, legs: Sequence[int]) -> list[tuple[int, str]]:
    """(leg, broker order id) of every order of `legs` that may be open at the broker: each the run last knew as
    open, and a replacement it knows only by id (`unread_replacement`: never read, so never seen closed)."""
    found: list[tuple[int, str]] = []
    for index in legs:
        leg = ctx.bus.leg(index)
        found.extend(
            (index, record.order_id)
            for record in leg.orders
            if record.order_id is not None and record.status is not None and not record.is_terminal
        )
        unread = unread_replacement(leg.orders, leg.active_order)
        if unread is not None:
            found.append((index, unread))
    return found


def unknown_submits(ctx: EngineContext, legs: Sequence[int], absent: set[str]) -> list[tuple[int, str]]:
    """(leg, client order id) of every ended leg whose last submit's outcome stayed unknown (its answer lost and
    every lookup by client order id failed): the order may be open at the broker, unread. `absent`: the ids the
    broker has since said it holds no order under."""
    found: list[tuple[int, str]] = []
    for index in legs:
        leg = ctx.bus.leg(index)
        active = leg.active_order
        unread = leg.is_done and active is not None and active.order_id is None
        if unread and active is not None and active.client_order_id not in absent:
            found.append((index, active.client_order_id))
    return found


async def look_up_unknown(ctx: EngineContext, index: int, cid: str, absent: set[str]) -> None:
    """Ask the broker for the order of a submit of unknown outcome: record it (then it is cancelled like any order
    left open), or note that none of the run's exists (none under its id, or another run's order: refused, never
    adopted); stays unknown (asked again) while the broker cannot answer."""
    try:
        order = await ctx.broker.get_order_by_client_id(cid)
    except BrokerError as exc:
        # Another run's order under the id (refused, never adopted): none of this run's is there. Else unanswered.
        conflict = isinstance(exc, ClientOrderIdConflictError)
        (_log.warning if conflict else _log.info)(
            "submit_id_conflict" if conflict else "submit_unresolved",
            run_id=ctx.bus.run_id,
            correlation_id=ctx.bus.correlation(index),
            symbol=ctx.bus.leg(index).symbol,
            order_id=None,
            client_order_id=cid,
            error=str(exc),
        )
        if conflict:
            absent.add(cid)
        return
    if order is None:
        absent.add(cid)
        return
    await ctx.bus.emit(OrderUpdated(**ctx.bus.stamp(index), update=polled_update(order, ctx.clock.now())))


async def orders_settled(ctx: EngineContext, legs: Sequence[int]) -> bool:
    """Wait (up to `max_total_wait`) until no order of `legs` is open at the broker; False if one still is.

    The phase monitor cancels what works at its end, but a confirmation can come later than its grace window:
    the buy phase must not start while a sell order may still execute, so the run asks the broker directly.
    A sell submitted with an outcome still unknown counts as open until the broker is asked by its client order id.
    """
    return await settled_by(ctx, legs, ctx.clock.now() + ctx.config.total_wait, set())


async def settled_by(ctx: EngineContext, legs: Sequence[int], give_up: datetime, absent: set[str]) -> bool:
    """Wait until `give_up` for no order of `legs` to be open at the broker; False if one still is then. Each check
    interval: the updates waiting recorded, then each order still open cancelled again (unless its cancel is
    pending) and read, each submit of unknown outcome asked for (`absent`: the ids the broker holds no order under).
    Those are taken after the updates are recorded, so that an order they closed is not sent a cancel again."""
    while True:
        if not open_orders_of(ctx, legs) and not unknown_submits(ctx, legs, absent):
            return True
        now = ctx.clock.now()
        if now >= give_up:
            return False
        await ctx.clock.sleep_until(min(give_up, now + ctx.config.check_interval))
        await record_late_updates(ctx)
        for index, order_id in open_orders_of(ctx, legs):
            await cancel_left_open(ctx, index, order_id)
            await ctx.gateway.reconcile(index, order_id)
        for index, cid in unknown_submits(ctx, legs, absent):
            await look_up_unknown(ctx, index, cid, absent)


async def cancel_left_open(ctx: EngineContext, index: int, order_id: str) -> bool | None:
    """Ask again for the cancel of an order its ended leg left open (the broker refused the cancels at the
    phase's end), unless a cancel is already pending. The leg has ended, so no cancel intent can be folded into
    it; none is needed either (a cancel creates no order), and the reconciliation records the confirmation.
    A replacement the run never read (`unread_replacement`) is asked too, until the broker accepts its cancel.
    None when nothing was sent, else whether the broker accepted the cancel (a refusal is logged)."""
    leg = ctx.bus.leg(index)
    if not leg.is_done or _cancel_pending(ctx, leg, order_id):
        return None
    try:
        await ctx.broker.cancel_order(order_id)
        if order_id == unread_replacement(leg.orders, leg.active_order):
            ctx.gateway.note_unread_cancel_accepted(order_id)
    except BrokerError as exc:
        _log.info(
            "cancel_left_open_refused",
            run_id=ctx.bus.run_id,
            correlation_id=ctx.bus.correlation(index),
            symbol=leg.symbol,
            order_id=order_id,
            error=str(exc),
        )
        return False
    return True


def _cancel_pending(ctx: EngineContext, leg: LegState, order_id: str) -> bool:
    """True when `order_id`'s cancel is pending (read so, or accepted by id for a replacement never read), or
    when the leg has no such order."""
    if order_id == unread_replacement(leg.orders, leg.active_order):
        return ctx.gateway.unread_cancel_accepted(order_id)
    record = next((r for r in leg.orders if r.order_id == order_id), None)
    return record is None or record.status is OrderStatus.PENDING_CANCEL


async def run_buy_phase(
    ctx: EngineContext, legs: Sequence[int], planned: Mapping[int, LegSpec] | None = None
) -> None:
    """Size and, if the sells' proceeds fall short, scale the buys; then run them as one phase.

    Only legs sized from a valid quote are sent: a leg with none after `quote_wait`, or scaled to nothing or under
    `min_notional`, ends skipped with the reason, so the buys sent never cost more than the buying power.
    The legs are sized from `planned` (their specs as planned; default: their current specs): a resumed run
    whose earlier sizing was partly journaled sizes from the plan, never from a quantity already scaled.
    """
    bus = ctx.bus
    specs = [bus.leg(index).spec if planned is None else planned[index] for index in legs]
    asks = await _valid_asks(ctx, specs)
    account = await ctx.broker.get_account()
    config = ctx.config
    sizing = size_buys(
        specs, asks, account.buying_power, config.escalation_collar_bps, min_notional=config.min_notional
    )
    await bus.emit(
        PhaseStarted(**bus.stamp(), side=Side.BUY, scale=sizing.scale, buying_power=account.buying_power)
    )
    for spec in sizing.legs:
        if spec != bus.leg(spec.index).spec:
            await bus.emit(LegPlanned(**bus.stamp(spec.index), spec=spec))
    for spec, reason in sizing.dropped:
        await bus.emit(LegFinished(**bus.stamp(spec.index), status=LegStatus.SKIPPED.value, reason=reason))
    await PhaseMonitor(ctx, [spec.index for spec in sizing.legs], ctx.clock.now()).run()
    await bus.emit(PhaseEnded(**bus.stamp(), side=Side.BUY))
    await record_late_updates(ctx)
