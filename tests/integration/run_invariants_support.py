"""Whole-run invariants of a simulated run: drive `execute_async` on the built-in simulator, journal it, check.

`run_case` runs one plan on one tape with one configuration and returns everything the checks need: the result,
the events the run emitted, the journal's events, the broker (its executions) and the account before and after.
`check_run` asserts the invariants a user of the tool relies on (see tests/integration/test_run_invariants.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from repeg.api import execute_async
from repeg.brokers.simulator.account import SimAccount
from repeg.brokers.simulator.factory import build_simulation
from repeg.brokers.simulator.fill_models import FillModel
from repeg.brokers.simulator.latency import LatencyModel
from repeg.config import ExecutionConfig
from repeg.domain.account import Account, Position
from repeg.domain.events import IntentAction, OrderFailed, OrderIntent, OrderUpdated, RunEvent
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import Fill, OrderType, Side
from repeg.domain.plan import Plan
from repeg.domain.ticks import from_units, is_legal_price, to_units
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.journal.factory import open_journal
from repeg.market.tape import QuoteTape
from repeg.report.result import ExecutionResult, RunStatus, result_from_events

ZERO = Decimal(0)
TERMINAL = {LegStatus.FILLED, LegStatus.SKIPPED, LegStatus.FAILED, LegStatus.INCOMPLETE}


class Recorder:
    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    async def emit(self, event: RunEvent) -> None:
        self.events.append(event)


@dataclass
class RunOutcome:
    result: ExecutionResult
    events: list[RunEvent]
    journaled: list[RunEvent]
    executions: tuple[Fill, ...]
    tape: QuoteTape
    before: tuple[Account, list[Position]]
    after: tuple[Account, list[Position]]
    start_cash: Decimal
    start_positions: dict[str, Decimal]
    model: str = "paper"
    whole_share_symbols: frozenset[str] = frozenset()


def run_case(
    plan: Plan,
    tape: QuoteTape,
    account: SimAccount,
    config: ExecutionConfig,
    *,
    seed: int,
    latency: LatencyModel | None,
    journal_dir: Path,
    run_id: str = "inv1",
    fill_model: FillModel | None = None,
    start: datetime | None = None,
) -> RunOutcome:
    recorder = Recorder()
    journal = open_journal(str(journal_dir / "j.db"), threaded=False)

    async def main() -> RunOutcome:
        clock = VirtualClock(tape.start if start is None else start)
        broker, feed = build_simulation(
            tape, clock, account, seed=seed, latency=latency, fill_model=fill_model
        )
        before = (await broker.get_account(), await broker.get_positions())
        result = await execute_async(
            plan, broker, feed, clock, config, run_id=run_id, sinks=[recorder, journal]
        )
        after = (await broker.get_account(), await broker.get_positions())
        executions = (
            broker.executions
        )  # as they stand with `after` (a late callback may still run at the end)
        return RunOutcome(
            result,
            recorder.events,
            [],
            executions,
            tape,
            before,
            after,
            account.cash,
            dict(account.positions),
            "paper" if fill_model is None else fill_model.name,
            frozenset(account.non_fractionable),
        )

    try:
        outcome = run_virtual(main)
    finally:
        journal.close()
    reader = open_journal(str(journal_dir / "j.db"), create=False, threaded=False)
    try:
        outcome.journaled = reader.events(run_id)
    finally:
        reader.close()
    return outcome


# --- the invariants ------------------------------------------------------------------------------------------


def fills_by_order(events: list[RunEvent]) -> dict[str, list[Fill]]:
    """Each order's executions as the run saw them, once each: an execution is known by the order's cumulative
    filled quantity after it (two equal executions at one instant are two)."""
    seen: dict[str, list[Fill]] = defaultdict(list)
    cumulative: set[tuple[str, Decimal]] = set()
    for event in events:
        if isinstance(event, OrderUpdated) and event.update.fill is not None:
            fill = event.update.fill
            key = (fill.order_id, event.update.order.filled_qty)
            if key not in cumulative:
                cumulative.add(key)
                seen[fill.order_id].append(fill)
    return seen


def flagged_orders(outcome: RunOutcome) -> set[str]:
    """Orders a leg's error names as possibly still open at the broker when the run ended (their later fills are
    not in the result, as the error says)."""
    flagged = set()
    for leg in outcome.result.legs:
        if leg.error and ("still open" in leg.error or "never" in leg.error or "left open" in leg.error):
            flagged.update(leg.order_ids)
    return flagged


def check_quantities(outcome: RunOutcome) -> None:
    """No leg over-fills; a leg's filled quantity is the sum of its order chain's executions the run saw, and the
    broker made no other execution but on an order the result names as possibly open; its average is the
    quantity-weighted average of those executions, exactly; its notional their sum."""
    seen = fills_by_order(outcome.events)
    executions: dict[str, list[Fill]] = defaultdict(list)
    for fill in outcome.executions:
        executions[fill.order_id].append(fill)
    flagged = flagged_orders(outcome)
    for order_id, fills in executions.items():
        if order_id not in flagged:
            assert fills == seen.get(order_id, []), (order_id, fills, seen.get(order_id))
    for leg in outcome.result.legs:
        if leg.requested_qty is not None:
            assert leg.filled_qty <= leg.requested_qty, leg
        fills = [fill for order_id in leg.order_ids for fill in seen.get(order_id, [])]
        qty = sum((fill.qty for fill in fills), ZERO)
        notional = sum((fill.qty * fill.price for fill in fills), ZERO)
        assert leg.filled_qty == qty, (leg, fills)
        assert leg.filled_notional == notional, (leg, fills)
        if qty > ZERO:
            assert leg.avg_fill_price is not None
            # the leg's average is shown rounded: it is the exact one to that precision
            exact = notional / qty
            assert abs(leg.avg_fill_price - exact) <= Decimal("0.000001"), (leg, exact)
        else:
            assert leg.avg_fill_price is None, leg
    # every execution the broker made belongs to some leg of the run
    ours = {order_id for leg in outcome.result.legs for order_id in leg.order_ids}
    assert {fill.order_id for fill in outcome.executions} <= ours


def check_fill_prices(outcome: RunOutcome) -> None:
    """Every execution of a market order, and under the paper rule every execution, is at the far touch of the
    quote current when it happened; a limit's is at its limit or better."""
    orders = {}
    for event in outcome.events:
        if isinstance(event, OrderUpdated):
            orders[event.update.order.order_id] = event.update.order
    for fill in outcome.executions:
        order = orders[fill.order_id]
        i = outcome.tape.index_at(order.symbol, fill.ts)
        assert i is not None, fill
        quote = outcome.tape.quote(order.symbol, i)
        far = quote.ask if order.side is Side.BUY else quote.bid
        if outcome.model == "paper" or order.order_type is OrderType.MARKET:
            assert fill.price == far, (fill, quote, order)
        if order.order_type is OrderType.LIMIT:
            assert order.limit_price is not None
            better = (
                fill.price <= order.limit_price if order.side is Side.BUY else fill.price >= order.limit_price
            )
            assert better, (fill, order)


def check_account(outcome: RunOutcome) -> None:
    """Cash and positions after the run are the start plus the run's executions, exactly; cash never negative."""
    cash = outcome.start_cash
    positions = defaultdict(lambda: ZERO, outcome.start_positions)
    legs_side = {}
    for leg in outcome.result.legs:
        for order_id in leg.order_ids:
            legs_side[order_id] = (leg.symbol, leg.side)
    for fill in outcome.executions:
        symbol, side = legs_side[fill.order_id]
        if side is Side.BUY:
            cash -= fill.qty * fill.price
            positions[symbol] += fill.qty
        else:
            cash += fill.qty * fill.price
            positions[symbol] -= fill.qty
    account, held = outcome.after
    assert account.cash == cash, (account, cash)
    running = outcome.start_cash
    for fill in sorted(outcome.executions, key=lambda f: f.ts):
        symbol, side = legs_side[fill.order_id]
        running += fill.qty * fill.price * (-1 if side is Side.BUY else 1)
        assert running >= ZERO, ("cash went negative", fill, running)
    assert account.cash >= ZERO
    assert {p.symbol: p.qty for p in held} == {s: q for s, q in positions.items() if q != ZERO}
    assert all(p.qty > ZERO for p in held)
    # the result's own figures agree with the account
    bought = sum((leg.filled_notional for leg in outcome.result.legs if leg.side is Side.BUY), ZERO)
    sold = sum((leg.filled_notional for leg in outcome.result.legs if leg.side is Side.SELL), ZERO)
    if not flagged_orders(outcome):
        assert account.cash == outcome.start_cash - bought + sold
    if not flagged_orders(outcome):
        assert account.buying_power == account.cash  # nothing reserved once the run is over


def check_journal(outcome: RunOutcome) -> None:
    """The journal's fold gives the result the run returned."""
    rebuilt = result_from_events(outcome.journaled)
    assert rebuilt.legs == outcome.result.legs
    assert rebuilt.status == outcome.result.status
    assert rebuilt.counts == outcome.result.counts
    assert rebuilt.notional_traded == outcome.result.notional_traded
    assert result_from_events(outcome.events) == rebuilt


def check_status(outcome: RunOutcome) -> None:
    """Every leg ends in a terminal state; the run's status follows from its legs; no order is left open."""
    result = outcome.result
    for leg in result.legs:
        assert leg.status in TERMINAL, leg
        if leg.status is LegStatus.FILLED:
            assert leg.requested_qty is not None, leg
            assert leg.filled_qty == leg.requested_qty, leg
        if leg.status is LegStatus.SKIPPED:
            assert leg.filled_qty == ZERO, leg
            assert not leg.order_ids, leg
    needed = [leg for leg in result.legs if leg.status is not LegStatus.SKIPPED]
    all_filled = all(leg.status is LegStatus.FILLED for leg in needed)
    if result.status in (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_SKIPS):
        assert all_filled
    if result.status is RunStatus.COMPLETED:
        assert not result.skipped
        assert len(needed) == len(result.legs)
    if result.status in (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_SKIPS):
        assert not flagged_orders(outcome), result
    done = all_filled and not flagged_orders(outcome)
    if done and result.status not in (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_SKIPS):
        raise AssertionError(f"every leg filled, no order left open, but the run is {result.status}")
    if result.status is RunStatus.FAILED:
        assert all(leg.filled_qty == ZERO for leg in result.legs)
    if result.status is RunStatus.PARTIAL:
        assert any(leg.filled_qty > ZERO for leg in result.legs)
    counts = result.counts
    assert counts.total == len(result.legs)
    assert counts.filled + counts.incomplete + counts.skipped + counts.failed == counts.total


def check_sells_first(outcome: RunOutcome) -> None:
    """No buy is sent before every sell is done (sent and closed)."""
    sides = {leg.index: leg.side for leg in outcome.result.legs}
    intents = [e for e in outcome.events if isinstance(e, OrderIntent) and e.leg_index is not None]
    buys = [i for i, e in enumerate(intents) if sides[e.leg_index] is Side.BUY]
    sells = [i for i, e in enumerate(intents) if sides[e.leg_index] is Side.SELL]
    if buys and sells:
        assert max(sells) < min(buys)


def check_ids(outcome: RunOutcome) -> None:
    """Client order ids are unique over the run."""
    ids = [
        e.client_order_id
        for e in outcome.events
        if isinstance(e, OrderIntent) and e.client_order_id is not None and e.action.value != "cancel"
    ]
    assert len(ids) == len(set(ids)), ids


def check_limits(outcome: RunOutcome, config: ExecutionConfig) -> None:
    """Every limit sent is on a legal tick; a passive buy is never above the far touch of the quote it was priced
    from (a sell never below); no limit lies outside the price collar around the leg's arrival mid."""
    arrival = {leg.index: leg.arrival_mid for leg in outcome.result.legs}
    sides = {leg.index: leg.side for leg in outcome.result.legs}
    for event in outcome.events:
        if not isinstance(event, OrderIntent) or event.limit_price is None or event.leg_index is None:
            continue
        limit = event.limit_price
        assert is_legal_price(limit), event
        assert limit == from_units(to_units(limit))
        side = sides[event.leg_index]
        quote = event.quote
        if quote is not None and event.step is not None:  # a schedule price (an escalation's is None)
            if side is Side.BUY:
                assert limit <= quote.ask, event
            else:
                assert limit >= quote.bid, event
            current = outcome.tape.quote_at(quote.symbol, event.ts)
            if current is not None and ZERO < current.bid < current.ask:  # the market when it was sent
                assert (limit <= current.ask) if side is Side.BUY else (limit >= current.bid), (
                    event,
                    current,
                )
        mid = arrival[event.leg_index]
        if mid is not None:
            assert abs(limit - mid) * 100 <= config.price_collar_pct * mid, (event, mid)


def check_escalations(outcome: RunOutcome, config: ExecutionConfig) -> None:
    """Orders go to market only as configured: on a missing quote only under `on_no_quote = "market"`, on
    escalation only under `escalation = "market"`; a collared escalation's limit lies within its collar of the
    far touch it was priced from."""
    sides = {leg.index: leg.side for leg in outcome.result.legs}
    for event in outcome.events:
        if not isinstance(event, OrderIntent) or event.action.value == "cancel" or event.leg_index is None:
            continue
        if event.order_type is OrderType.MARKET:
            if event.reason == "no_quote":
                assert config.on_no_quote.value == "market", event
            else:
                assert event.reason == "escalate", event
                assert config.escalation.value == "market", event
        elif event.reason == "escalate":
            assert config.escalation.value == "collared_limit", event
            assert event.quote is not None, event
            assert event.limit_price is not None, event
            side = sides[event.leg_index]
            far = event.quote.ask if side is Side.BUY else event.quote.bid
            bound = far * config.escalation_collar_bps / 10_000
            if side is Side.BUY:
                assert event.limit_price <= far + bound, event
            else:
                assert event.limit_price >= far - bound, event


def check_sizes(outcome: RunOutcome) -> None:
    """Every order sent is for more than nothing, at most what its leg still needs, and in whole shares (as its
    executions are) for a symbol that is not fractionable."""
    legs = {leg.index: leg for leg in outcome.result.legs}
    filled: dict[int, Decimal] = defaultdict(lambda: ZERO)
    leg_of: dict[str, int] = {}
    for event in outcome.events:
        if isinstance(event, OrderIntent) and event.leg_index is not None and event.qty is not None:
            leg = legs[event.leg_index]
            assert event.qty > ZERO, event
            if leg.requested_qty is not None:
                assert event.qty <= leg.requested_qty - filled[leg.index], (event, filled[leg.index])
            if leg.symbol in outcome.whole_share_symbols:
                assert event.qty == event.qty.to_integral_value(), event
        if isinstance(event, OrderUpdated) and event.update.fill is not None and event.leg_index is not None:
            leg_of.setdefault(event.update.fill.order_id, event.leg_index)
    for fill in outcome.executions:
        symbol = next(leg.symbol for leg in legs.values() if fill.order_id in leg.order_ids)
        if symbol in outcome.whole_share_symbols:
            assert fill.qty == fill.qty.to_integral_value(), fill


def check_buying_power_cuts(outcome: RunOutcome) -> None:
    """An escalated buy the broker refused for want of buying power went again, once, cut to what the buying power
    then covered at the price the escalation could pay (within it; a share, or 1e-9 of a fractionable one, more
    would not be), and nothing was sent for its leg after that cut; unless the escalation could not be priced (a
    market order without a quote) or the buying power covered nothing (the leg's reason says so)."""
    legs = {leg.index: leg for leg in outcome.result.legs}
    submits = [e for e in outcome.events if isinstance(e, OrderIntent) and e.action is IntentAction.SUBMIT]
    by_id = {e.client_order_id: e for e in submits}
    for refusal in outcome.events:
        refused = by_id.get(refusal.client_order_id) if isinstance(refusal, OrderFailed) else None
        if refused is None or refusal.error != "InsufficientBuyingPowerError" or refused.reason != "escalate":
            continue
        later = [e for e in submits if e.leg_index == refused.leg_index and e.attempt > refused.attempt]
        leg = legs[refused.leg_index]
        if refused.capped is not None or not later:
            unpriced = refused.limit_price is None and refused.quote is None
            assert refused.capped is not None or unpriced or "nothing sent" in (leg.error or ""), (
                refused,
                leg,
            )
            continue
        cut, *after = later
        cap = cut.capped
        assert cap is not None, cut
        assert not after, after
        assert cut.qty == cap.sent_qty <= cap.requested_qty, cut
        assert cap.sent_qty * cap.price <= cap.buying_power, cut
        step = Decimal(1) if leg.symbol in outcome.whole_share_symbols else Decimal("1e-9")
        assert cap.sent_qty == cap.requested_qty or (cap.sent_qty + step) * cap.price > cap.buying_power, cut


def check_quality(outcome: RunOutcome) -> None:
    """The run's figures say what its legs did: each leg's cost is its exact average against its arrival mid (to
    the 0.01 bps shown), the run's notional-weighted cost lies within its legs' costs, the fill rate is a share, a
    time to fill is not negative, and the run's notional is the legs'."""
    result = outcome.result
    costs = []
    for leg in result.legs:
        if leg.cost_bps is None:
            continue
        assert leg.arrival_mid is not None, leg
        assert leg.filled_qty > ZERO, leg
        exact = leg.filled_notional / leg.filled_qty
        sign = 1 if leg.side is Side.BUY else -1
        expected = sign * (exact - leg.arrival_mid) / leg.arrival_mid * 10_000
        assert abs(leg.cost_bps - expected) <= Decimal("0.0051"), (leg, expected)
        costs.append(leg.cost_bps)
    quality = result.quality
    if quality.cost_bps is not None:
        assert costs, quality
        assert min(costs) - Decimal("0.01") <= quality.cost_bps <= max(costs) + Decimal("0.01"), (
            quality,
            costs,
        )
    elif costs:
        raise AssertionError(f"legs cost {costs}, the run reports no cost")
    if quality.fill_rate_before_escalation is not None:
        assert ZERO <= quality.fill_rate_before_escalation <= 1, quality
    if quality.mean_time_to_fill_s is not None:
        assert quality.mean_time_to_fill_s >= 0, quality
    for leg in result.legs:
        if leg.time_to_complete_s is not None:
            assert leg.time_to_complete_s >= 0, leg
    assert result.notional_traded == sum((leg.filled_notional for leg in result.legs), ZERO)
    if result.started_at is not None and result.ended_at is not None:
        assert result.started_at <= result.ended_at


def check_run(outcome: RunOutcome, config: ExecutionConfig) -> None:
    check_quantities(outcome)
    check_fill_prices(outcome)
    check_account(outcome)
    check_journal(outcome)
    check_status(outcome)
    check_sells_first(outcome)
    check_ids(outcome)
    check_limits(outcome, config)
    check_sizes(outcome)
    check_escalations(outcome, config)
    check_buying_power_cuts(outcome)
    check_quality(outcome)
