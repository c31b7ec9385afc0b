"""An escalated buy over the buying power left: sent for what the buying power covers, and the leg ends partial.

A buy sized to the whole buying power is costed at its arrival ask plus `escalation_collar_bps`. When the ask has
risen by more than that by the time the leg escalates, the remainder costs more than the buying power: the broker
refuses it (insufficient buying power). The engine then reads the account once and sends the largest quantity that
buying power covers at the price the escalation may pay (the collar limit; for a market order the ask plus the
same buffer), in whole shares for a non-fractionable asset, and ends the leg `incomplete` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest
from tests.integration.run_resume_support import check_resumed, crash_and_resume
from tests.unit.sim_support import T0, make_tape

from repeg.brokers.simulator import PaperFillModel, SimAccount, build_simulation
from repeg.config import ExecutionConfig, classic_ladder
from repeg.domain.account import Account
from repeg.domain.events import IntentAction, OrderFailed, OrderIntent, RunEvent
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import OrderType, Side
from repeg.domain.plan import LegSpec
from repeg.domain.run import fold_run
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.engine.runner import run_execution
from repeg.journal.factory import open_journal
from repeg.market.tape import QuoteTape
from repeg.planning.parse import parse_csv
from repeg.report.result import ExecutionResult, RunStatus, result_from_events

CASH = Decimal(1000)
#: The arrival ask the buy is sized from, and the ask when the leg escalates at its 10 s deadline: 1.8% higher,
#: past the 50 bps `escalation_collar_bps` the sizing kept as a buffer.
ARRIVAL_ASK, LATER_ASK = Decimal("10.02"), Decimal("10.20")
COLLAR_BPS = Decimal(50)


def _book(t: int) -> tuple[str, str]:
    return ("10.00", str(ARRIVAL_ASK)) if t < 5 else ("10.10", str(LATER_ASK))


TAPE = make_tape({"XYZ": [(t, *_book(t)) for t in range(120)]})


@dataclass
class Recorder:
    events: list[RunEvent]

    async def emit(self, event: RunEvent) -> None:
        self.events.append(event)


@dataclass
class Outcome:
    result: ExecutionResult
    events: list[RunEvent]
    journaled: list[RunEvent]
    account: Account


def _run(
    tmp_path: Path,
    *,
    whole_shares: bool,
    escalation: str,
    tape: QuoteTape = TAPE,
    cash: Decimal = CASH,
    max_total_wait: float = 10,
) -> Outcome:
    """Buy 400 XYZ (scaled down to what `cash` buys at the arrival ask plus the collar) on `tape`."""
    config: ExecutionConfig = classic_ladder(
        max_total_wait=max_total_wait, escalation=escalation, escalation_collar_bps=COLLAR_BPS
    )
    spec = LegSpec(index=0, symbol="XYZ", side=Side.BUY, qty=Decimal(400), whole_shares=whole_shares)
    account = SimAccount(cash=cash, non_fractionable=("XYZ",) if whole_shares else ())
    recorder = Recorder([])
    journal = open_journal(str(tmp_path / "j.db"), threaded=False)

    async def main() -> tuple[ExecutionResult, Account]:
        clock = VirtualClock(T0)
        broker, feed = build_simulation(
            tape, clock, account, seed=7, fill_model=PaperFillModel(tape, seed=7, partial_rate=0.0)
        )
        result = await run_execution(
            [spec], [], broker, feed, clock, config, run_id="bp", sinks=[recorder, journal]
        )
        return result, await broker.get_account()

    try:
        result, after = run_virtual(main)
    finally:
        journal.close()
    reader = open_journal(str(tmp_path / "j.db"), create=False, threaded=False)
    try:
        journaled = reader.events("bp")
    finally:
        reader.close()
    return Outcome(result, recorder.events, journaled, after)


def _covered(price: Decimal, whole_shares: bool) -> Decimal:
    """What `CASH` buys at `price`, rounded down (whole shares, or Alpaca's 1e-9)."""
    return (CASH / price).quantize(Decimal(1) if whole_shares else Decimal("1e-9"), rounding=ROUND_DOWN)


def _escalation_intents(events: list[RunEvent]) -> list[OrderIntent]:
    return [
        e
        for e in events
        if isinstance(e, OrderIntent) and e.action is IntentAction.SUBMIT and e.reason == "escalate"
    ]


#: (escalation style, the price the escalation may pay at the later ask).
STYLES: dict[str, Callable[[Decimal], Decimal]] = {
    # a market order: the ask plus the same buffer the sizing used
    "market": lambda ask: ask * (1 + COLLAR_BPS / 10_000),
    # a collared limit: the limit itself (10.251 rounded down to the tick)
    "collared_limit": lambda ask: (ask * (1 + COLLAR_BPS / 10_000)).quantize(Decimal("0.01"), ROUND_DOWN),
}


@pytest.mark.parametrize("whole_shares", [True, False], ids=["whole", "fractional"])
@pytest.mark.parametrize("escalation", sorted(STYLES))
def test_an_escalation_over_the_buying_power_left_buys_what_it_covers_and_ends_the_leg_partial(
    tmp_path: Path, escalation: str, whole_shares: bool
) -> None:
    out = _run(tmp_path, whole_shares=whole_shares, escalation=escalation)
    first, capped = _escalation_intents(out.events)
    requested = first.qty
    assert requested is not None
    assert (
        requested * LATER_ASK > CASH
    )  # the remainder, sized at the arrival ask, costs more than the cash now
    refusal = next(
        e for e in out.events if isinstance(e, OrderFailed) and e.client_order_id == first.client_order_id
    )
    assert refusal.error == "InsufficientBuyingPowerError"
    price = STYLES[escalation](LATER_ASK)
    sent = _covered(price, whole_shares)
    assert capped.qty == sent
    assert capped.order_type is (OrderType.MARKET if escalation == "market" else OrderType.LIMIT)
    assert capped.attempt == first.attempt + 1
    assert capped.capped is not None
    assert (capped.capped.requested_qty, capped.capped.sent_qty, capped.capped.buying_power) == (
        requested,
        sent,
        CASH,
    )
    (leg,) = out.result.legs
    assert leg.status is LegStatus.INCOMPLETE
    assert leg.filled_qty == sent
    assert leg.filled_notional == sent * LATER_ASK <= CASH  # never over-bought
    assert leg.reason is not None
    for figure in (requested, sent, CASH):  # exact, without trailing zeros
        assert f"{figure.normalize():f}" in leg.reason, (figure, leg.reason)
    assert out.result.status is RunStatus.PARTIAL
    assert out.account.cash == CASH - leg.filled_notional >= 0
    assert result_from_events(out.journaled) == out.result


def test_an_escalation_the_buying_power_still_covers_is_sent_once_for_the_whole_remainder(
    tmp_path: Path,
) -> None:
    # Guard (passes before the fix): with the cash to pay for it, the escalation is one market order, nothing read.
    out = _run(tmp_path, whole_shares=True, escalation="market", cash=Decimal(5000))
    assert len(_escalation_intents(out.events)) == 1
    (leg,) = out.result.legs
    assert leg.status is LegStatus.FILLED
    assert not [e for e in out.events if isinstance(e, OrderFailed)]


def test_buying_power_that_covers_no_whole_share_sends_nothing_more_and_fails_the_leg(tmp_path: Path) -> None:
    # $10.10 buys one share at 10.02 + 50 bps; at the later ask of 10.20 the buying power covers none.
    out = _run(tmp_path, whole_shares=True, escalation="market", cash=Decimal("10.10"))
    (escalation,) = _escalation_intents(out.events)
    assert escalation.qty == Decimal(1)
    (leg,) = out.result.legs
    assert leg.status is LegStatus.FAILED
    assert leg.filled_qty == 0
    assert leg.error is not None
    assert "nothing sent (buying power 10.1 covers 0 at up to 10.251 a share)" in leg.error
    assert result_from_events(out.journaled) == out.result


def test_a_repeg_over_the_buying_power_is_tried_again_at_the_next_step_not_at_every_check(
    tmp_path: Path,
) -> None:
    # The buy joins the bid (99 x 10.00 = $990 of the $1000); from 5 s the book is 10.10 / 10.20, so each re-peg
    # (10.15, 10.18, 10.20 at 10, 20, 30 s) costs more than the buying power and the simulator refuses it. Each is
    # sent once, at its step's time (a fill wait after the last refusal), never again at the next 1 s check; the
    # leg still escalates at its 40 s deadline, where the cut to the buying power takes over.
    out = _run(tmp_path, whole_shares=True, escalation="market", max_total_wait=40)
    replaces = [e for e in out.events if isinstance(e, OrderIntent) and e.action is IntentAction.REPLACE]
    assert [(e.ts - T0).total_seconds() for e in replaces] == [10, 20, 30]
    assert [e.step for e in replaces] == [1, 2, 3]
    refusals = [e for e in out.events if isinstance(e, OrderFailed) and e.action is IntentAction.REPLACE]
    assert [e.error for e in refusals] == ["InsufficientBuyingPowerError"] * 3
    # The last refusal's time, that the next re-peg waits from, is in the journal (a resumed run folds it).
    (journaled_leg,) = fold_run(out.journaled).legs
    assert journaled_leg.repeg_refused_at == refusals[-1].ts
    first, capped = _escalation_intents(out.events)
    assert (first.ts - T0).total_seconds() == 40
    assert capped.capped is not None
    (leg,) = out.result.legs
    assert leg.status is LegStatus.INCOMPLETE
    assert leg.filled_qty == _covered(STYLES["market"](LATER_ASK), whole_shares=True)
    assert result_from_events(out.journaled) == out.result


# --- a crash anywhere on the new path, and the resume ---------------------------------------------------------

#: (kill point, nth, before the journal saw it): the refused escalation's intent and refusal, the cut order's intent,
#: acknowledgement and fill (the one fill after the passive order's none), each died on before and after.
CRASHES = [
    (point, nth, before)
    for point, nth in (
        ("submit-intent", 2),
        ("refusal", 1),
        ("submit-intent", 3),
        ("submit-ack", 2),
        ("fill", 1),
    )
    for before in (True, False)
]


@pytest.mark.parametrize("crash_at", CRASHES, ids=lambda c: f"{'before' if c[2] else 'after'}-{c[0]}-{c[1]}")
def test_a_crash_on_the_way_to_the_cut_escalation_resumes_without_buying_twice_or_losing_a_fill(
    tmp_path: Path, crash_at: tuple[str, int, bool]
) -> None:
    plan = parse_csv("symbol,side,qty\nXYZ,buy,400\n", "p.csv")
    config = classic_ladder(max_total_wait=10, escalation="market", escalation_collar_bps=COLLAR_BPS)
    account = SimAccount(cash=CASH, non_fractionable=("XYZ",))
    outcome = crash_and_resume(
        plan, TAPE, account, config, seed=7, latency=None, journal_dir=tmp_path, crash_at=crash_at
    )
    assert outcome is not None  # the run reached the point, and had sent an order
    check_resumed(outcome)
    (leg,) = outcome.result.legs
    assert {fill.order_id for fill in outcome.executions} == {
        leg.order_ids[-1]
    }  # one order bought: the cut one, once
    assert leg.filled_qty == _covered(STYLES["market"](LATER_ASK), whole_shares=True)
    assert leg.status is LegStatus.INCOMPLETE
    assert leg.reason is not None
    assert leg.reason.startswith("insufficient buying power for the escalation: requested 99, sent 97")
    capped = [e for e in outcome.journaled if isinstance(e, OrderIntent) and e.capped is not None]
    assert len({e.client_order_id for e in capped}) == 1  # the cut went out under one client order id
