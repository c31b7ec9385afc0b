"""A simulated run that dies mid-way and is resumed from its journal, and what must hold after (the whole-run
invariants of `run_invariants_support`, as far as a resume can know them)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from tests.integration.run_invariants_support import (
    ZERO,
    RunOutcome,
    check_ids,
    check_status,
    flagged_orders,
)

from repeg.api import execute_async
from repeg.brokers.simulator.account import SimAccount
from repeg.brokers.simulator.factory import build_simulation
from repeg.brokers.simulator.latency import LatencyModel
from repeg.config import ExecutionConfig
from repeg.domain.events import EventSink, RunEvent
from repeg.domain.orders import Fill, Side
from repeg.domain.plan import Plan
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.errors import RepegError
from repeg.journal.factory import open_journal
from repeg.journal.faults import point_of
from repeg.journal.resume import has_orders, resume_run
from repeg.market.tape import QuoteTape
from repeg.report.result import result_from_events

# --- a crash and its resume ----------------------------------------------------------------------------------


class Crash(Exception):
    """The process dies: the journal sees nothing more of this run."""


class CrashingSink:
    """Passes events to `inner` until the `nth` event of kill point `point` (`repeg.journal.faults`), then dies:
    before the journal saw that event, or right after; every later event is lost (raises again)."""

    def __init__(self, inner: EventSink, point: str, nth: int, *, before: bool) -> None:
        self._inner, self._point, self._nth, self._before = inner, point, nth, before
        self._seen = 0
        self.dead = False

    async def emit(self, event: RunEvent) -> None:
        if self.dead:
            raise Crash(event.kind)
        hit = point_of(event) == self._point
        self._seen += hit
        armed = hit and self._seen == self._nth
        if armed and self._before:
            self.dead = True
            raise Crash(event.kind)
        await self._inner.emit(event)
        if armed:
            self.dead = True
            raise Crash(event.kind)


def crash_and_resume(
    plan: Plan,
    tape: QuoteTape,
    account: SimAccount,
    config: ExecutionConfig,
    *,
    seed: int,
    latency: LatencyModel | None,
    journal_dir: Path,
    crash_at: tuple[str, int, bool],
) -> RunOutcome | None:
    """Run `plan` until it dies at `crash_at` (point, nth, before), then resume it from its journal half a second
    later on the same simulator (its orders lived on). None when the run never reached that point or had sent no
    order (nothing to resume)."""
    path = str(journal_dir / "j.db")
    run_id = "crash1"

    async def main() -> RunOutcome | None:
        clock = VirtualClock(tape.start)
        broker, feed = build_simulation(tape, clock, account, seed=seed, latency=latency)
        journal = open_journal(path, threaded=False)
        sink = CrashingSink(journal, *crash_at[:2], before=crash_at[2])
        try:
            await execute_async(plan, broker, feed, clock, config, run_id=run_id, sinks=[sink])
        except Crash:
            pass
        except RepegError:
            if not sink.dead:
                raise
        finally:
            journal.close()
        if not sink.dead:
            return None
        await clock.sleep_until(clock.now() + timedelta(seconds=0.5))
        journal = open_journal(path, threaded=False)
        try:
            if not has_orders(journal.events(run_id)):
                return None
            result = await resume_run(run_id, journal, broker, feed, clock, config=config)
        finally:
            journal.close()
        after = (await broker.get_account(), await broker.get_positions())
        reader = open_journal(path, create=False, threaded=False)
        try:
            events = reader.events(run_id)
        finally:
            reader.close()
        return RunOutcome(
            result,
            events,
            events,
            broker.executions,
            tape,
            (after[0], after[1]),
            after,
            account.cash,
            dict(account.positions),
            "paper",
            frozenset(account.non_fractionable),
        )

    return run_virtual(main)


def check_resumed(outcome: RunOutcome) -> None:
    """After a crash and its resume: no leg over-fills; each leg's filled quantity is what the broker executed for
    its orders (its notional too, but for the broker's rounded average of fills the run learnt of by reading the
    order: at most 1e-9 a share); no execution belongs to an order no leg knows (none lost); the books equal the
    start plus the executions; the journal folds to the result; the status follows from the legs."""
    flagged = flagged_orders(outcome)
    executions: dict[str, list[Fill]] = defaultdict(list)
    for fill in outcome.executions:
        executions[fill.order_id].append(fill)
    for leg in outcome.result.legs:
        fills = [fill for order_id in leg.order_ids for fill in executions.get(order_id, [])]
        qty = sum((fill.qty for fill in fills), ZERO)
        notional = sum((fill.qty * fill.price for fill in fills), ZERO)
        if leg.requested_qty is not None:
            assert leg.filled_qty <= leg.requested_qty, leg
        if not set(leg.order_ids) & flagged:
            assert leg.filled_qty == qty, (leg, fills)
            assert abs(leg.filled_notional - notional) <= qty * Decimal("1e-9"), (leg, fills)
    ours = {order_id for leg in outcome.result.legs for order_id in leg.order_ids}
    assert {fill.order_id for fill in outcome.executions} <= ours
    cash = outcome.start_cash
    positions: dict[str, Decimal] = defaultdict(lambda: ZERO, outcome.start_positions)
    side_of = {o: (leg.symbol, leg.side) for leg in outcome.result.legs for o in leg.order_ids}
    for fill in outcome.executions:
        symbol, side = side_of[fill.order_id]
        sign = -1 if side is Side.BUY else 1
        cash += sign * fill.qty * fill.price
        positions[symbol] -= sign * fill.qty
    account, held = outcome.after
    assert account.cash == cash, (account, cash)
    assert account.cash >= ZERO
    assert {p.symbol: p.qty for p in held} == {s: q for s, q in positions.items() if q != ZERO}
    rebuilt = result_from_events(outcome.journaled)
    assert rebuilt.legs == outcome.result.legs
    check_status(outcome)
    check_ids(outcome)
