"""Graceful stop (`repeg.journal.shutdown`) while the broker fails: what reaches the broker, when, and what the
summary says. In process on virtual time, on the scenarios and helpers of `test_journal_resume`."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal

import pytest
from test_journal_resume import (
    ACCOUNT,
    CONFIG,
    LADDER,
    PATIENT,
    SELL_THEN_BUY,
    SPECS,
    TAPE,
    TARGETS,
    Crash,
    CrashAt,
    CrashAtFirstIntent,
    CrashAtSellPhaseEnd,
    ReadFailingSimulator,
    _crashed_after_its_first_submit_ack,
    _crashed_run,
)
from tests.fakes.log_capture import every_level_captured
from tests.unit.fake_broker import T0, FakeBroker, FakeFeed

from repeg.brokers.simulator import PaperFillModel, SimulatedBroker, build_simulation
from repeg.config import ExecutionConfig, classic_ladder
from repeg.domain.events import EventSink, OrderUpdated, RunEvent
from repeg.domain.ids import client_order_id
from repeg.domain.orders import BrokerOrder, OrderStatus, ReplaceRequest
from repeg.domain.run import RunState, fold_run
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.engine.runner import run_execution
from repeg.errors import BrokerUnavailableError, OrderNotCancelableError, OrderRejectedError
from repeg.journal.resume import resume_run
from repeg.journal.shutdown import StopReport, stop_run
from repeg.journal.sqlite import SqliteJournal


class SlowlyFailingReads(ReadFailingSimulator):
    """Each read fails only after `read_cost` seconds (an adapter's retries and backoff); cancels are timed."""

    read_cost = 8.0

    async def get_order(self, order_id: str) -> BrokerOrder:
        if self.refuse_reads:
            await asyncio.sleep(self.read_cost)
        return await super().get_order(order_id)

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        if self.refuse_reads:
            await asyncio.sleep(self.read_cost)
        return await super().get_order_by_client_id(client_order_id)

    async def cancel_order(self, order_id: str) -> None:
        self.cancels_at = [*getattr(self, "cancels_at", []), asyncio.get_running_loop().time()]
        await super().cancel_order(order_id)


def test_graceful_stop_cancels_the_working_order_before_reading_the_broker(tmp_path) -> None:
    # The stop read every order of every leg (each read retried for seconds while the broker failed) before it
    # sent a single cancel: the run's orders kept working, and could fill, for the whole read, and the reads spent
    # the stop's one-minute retry budget, so that the cancels that followed were tried once.
    async def main() -> tuple[float, list[float]]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = SlowlyFailingReads(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        journal = await _crashed_after_its_first_submit_ack(tmp_path, broker, clock, PATIENT)
        broker.refuse_reads = True
        started = asyncio.get_running_loop().time()
        await stop_run("r1", journal, broker, clock, config=PATIENT)
        journal.close()
        return started, broker.cancels_at

    started, cancels_at = run_virtual(main)
    assert cancels_at[0] - started < SlowlyFailingReads.read_cost


class LostReplaceAnswer(ReadFailingSimulator):
    """Carries a replace out but loses its answer, and fails every lookup of its client order id; the order it
    replaced names its replacement (`replaced_by`) only when `names_successor`."""

    names_successor = False
    lost: str | None = None

    async def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        await super().replace_order(request)
        self.lost = request.client_order_id
        raise BrokerUnavailableError("replace: answer lost")

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        if client_order_id == self.lost:
            raise BrokerUnavailableError("lookup failed")
        return await super().get_order_by_client_id(client_order_id)

    async def get_order(self, order_id: str) -> BrokerOrder:
        order = await super().get_order(order_id)
        if order.status is OrderStatus.REPLACED and not self.names_successor:
            return order.model_copy(update={"replaced_by": None})
        return order


class FirstReplaceRefused(LostReplaceAnswer):
    """Refuses the first replace outright (HTTP 422: nothing executed); then as `LostReplaceAnswer`."""

    refused: str | None = None

    async def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        if self.refused is None:
            self.refused = request.client_order_id
            raise OrderRejectedError("replace: HTTP 422", broker_message="refused")
        return await super().replace_order(request)


class CrashOnceReplaced:
    """Passes events to the journal and "dies" right after the first one reporting an order replaced."""

    def __init__(self, journal: EventSink) -> None:
        self._journal = journal

    async def emit(self, event: RunEvent) -> None:
        await self._journal.emit(event)
        if isinstance(event, OrderUpdated) and event.update.order.status is OrderStatus.REPLACED:
            raise Crash


def _stopped_with_a_replacement_unread(
    tmp_path, *, named: bool, first_refused: bool = False
) -> tuple[StopReport, BrokerOrder, str]:
    """Run r1 crashed right after learning its first order replaced, the replace's answer lost (and the order's
    successor named by the broker or not; an earlier replace refused outright when `first_refused`); then stopped
    while the broker's reads fail. The report, the replacement as the broker has it after the stop, and the id of
    the order it replaced."""

    async def main() -> tuple[StopReport, BrokerOrder, str]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        kind = FirstReplaceRefused if first_refused else LostReplaceAnswer
        broker = kind(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        broker.names_successor = named
        journal = await _crashed_run(tmp_path, broker, clock, PATIENT_REPEG, CrashOnceReplaced)
        assert broker.lost is not None
        broker.refuse_reads = True
        report = await stop_run("r1", journal, broker, clock, config=PATIENT_REPEG)
        broker.refuse_reads, lost, broker.lost = False, broker.lost, None
        replacement = await broker.get_order_by_client_id(lost)
        journal.close()
        assert replacement is not None
        return report, replacement, replacement.replaces or ""

    return run_virtual(main)


#: Re-pegs after 2 s (so the first order is replaced), and a long total wait.
PATIENT_REPEG = PATIENT.model_copy(update={"fill_wait_seconds": 2.0})


def test_graceful_stop_names_a_replacement_the_broker_never_named(tmp_path) -> None:
    # The replace's answer was lost and the broker reported the order replaced without naming its replacement:
    # the stop could send no cancel, and its summary said nothing of an order that may be working.
    report, replacement, _ = _stopped_with_a_replacement_unread(tmp_path, named=False)
    assert replacement.status.is_open
    assert report.unanswered == (replacement.client_order_id,)
    assert f"not cancelled): {replacement.client_order_id}" in report.summary()


def test_graceful_stop_does_not_say_a_replace_the_broker_refused_went_unanswered(tmp_path) -> None:
    # 9595815 lists the replaces sent after an order the broker reported replaced without naming the replacement:
    # one the broker had refused outright (HTTP 422, nothing executed) was listed too, as "sent, no answer from
    # the broker (may be working, not cancelled)", and the stop spent its grace window looking it up.
    report, replacement, _ = _stopped_with_a_replacement_unread(tmp_path, named=False, first_refused=True)
    refused = client_order_id("r1", 0, 1)
    assert replacement.client_order_id != refused
    assert report.unanswered == (replacement.client_order_id,)


def test_graceful_stop_reports_the_cancel_of_an_unread_replacement_under_its_own_id(tmp_path) -> None:
    # The cancel went to the replacement (by the id the broker named), but the summary listed the order it
    # replaced, closed already, as cancelled, and the replacement's cancel was never awaited nor reported.
    report, replacement, replaced = _stopped_with_a_replacement_unread(tmp_path, named=True)
    assert report.cancelled == (replacement.order_id,)
    assert replaced not in report.cancelled
    assert report.unconfirmed == (replacement.order_id,)  # its reads fail: the cancel cannot be confirmed


def test_graceful_stop_does_not_say_the_broker_lacks_a_submit_it_could_not_read(tmp_path) -> None:
    # The submit reached the broker, whose answer was lost, and the stop's reads failed: the summary said the order
    # was "NOT known to the broker yet". That is what the run does not know; the broker holds the order.
    async def main() -> tuple[StopReport, BrokerOrder | None]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = ReadFailingSimulator(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        journal = await _crashed_run(
            tmp_path, broker, clock, PATIENT, lambda journal: CrashAt(journal, "submit-ack", 1, before=True)
        )
        broker.refuse_reads = True
        report = await stop_run("r1", journal, broker, clock, config=PATIENT)
        broker.refuse_reads = False
        held = await broker.get_order_by_client_id(client_order_id("r1", 0, 0))
        journal.close()
        return report, held

    report, held = run_virtual(main)
    assert held is not None
    assert report.unanswered == (held.client_order_id,)
    assert "NOT known to the broker" not in report.summary()
    assert (
        f"no answer from the broker (may be working, not cancelled): {held.client_order_id}"
        in report.summary()
    )


class FilledUnseen(SimulatedBroker):
    """The run's orders all filled at the broker, unseen by the run (`filled`): a cancel is refused as the
    order's state allows none, and every read shows it filled."""

    filled = False

    def _as_filled(self, order: BrokerOrder) -> BrokerOrder:
        if not self.filled:
            return order
        return order.model_copy(
            update={
                "status": OrderStatus.FILLED,
                "filled_qty": order.qty,
                "filled_avg_price": Decimal("20.00"),
            }
        )

    async def get_order(self, order_id: str) -> BrokerOrder:
        return self._as_filled(await super().get_order(order_id))

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        order = await super().get_order_by_client_id(client_order_id)
        return None if order is None else self._as_filled(order)

    async def cancel_order(self, order_id: str) -> None:
        if self.filled:
            raise OrderNotCancelableError(order_id, OrderStatus.FILLED.value)
        await super().cancel_order(order_id)


def test_graceful_stop_does_not_report_a_failed_cancel_of_an_order_found_filled(tmp_path) -> None:
    # The run's order filled at the broker before the stop learned of it: its cancel was refused (nothing left
    # to cancel) and the summary said "cancel FAILED" for it, an order the run then knew filled, not working.
    async def main() -> StopReport:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = FilledUnseen(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        journal = await _crashed_after_its_first_submit_ack(tmp_path, broker, clock, PATIENT)
        broker.filled = True
        report = await stop_run("r1", journal, broker, clock, config=PATIENT)
        journal.close()
        return report

    report = run_virtual(main)
    assert report.cancel_failed == ()
    assert "cancel FAILED" not in report.summary()


def _stopped_with_an_ended_legs_submit_unknown(
    tmp_path, *, lookups_fail: bool, reached: bool = True
) -> tuple[StopReport, FakeBroker, float]:
    """Run r1 sells XYZ: the submit's answer is lost (or, unless `reached`, the submit times out before reaching
    the broker), the broker pushes nothing and cannot be asked by client order id, so the sell leg ends given up
    with its outcome unknown; stopped while the run waits for the sell's order to close before buying (lookups
    still failing when `lookups_fail`). The report, the broker, and the seconds the stop took."""

    async def main() -> tuple[StopReport, FakeBroker, float]:
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = FakeBroker(clock, feed, auto_fill=False, pushes_updates=False)
        broker.positions["XYZ"] = Decimal(100)
        feed.set("XYZ", "100.00", "100.08")
        feed.set("ABC", "9.99", "10.00")
        broker.unavailable_lookups = 10**6
        if reached:
            broker.lost_answers = 1
        else:
            broker.late_landings, broker.landing_delay = 1, timedelta(days=30)
        await _run_until_the_sell_phase_ends(journal, broker, feed, clock, LADDER)
        assert bool(broker.orders) is reached
        if not lookups_fail:
            broker.unavailable_lookups = 0
        started = clock.now()
        report = await stop_run("r1", journal, broker, clock, config=LADDER)
        journal.close()
        return report, broker, (clock.now() - started).total_seconds()

    return run_virtual(main)


async def _run_until_the_sell_phase_ends(
    journal: SqliteJournal, broker: FakeBroker, feed: FakeFeed, clock: VirtualClock, config: ExecutionConfig
) -> None:
    """Run r1 (sell XYZ, then buy ABC) until it dies as its sell phase ends, the buys not yet started."""
    with contextlib.suppress(Crash):
        await run_execution(
            SELL_THEN_BUY, (), broker, feed, clock, config, run_id="r1", sinks=(CrashAtSellPhaseEnd(journal),)
        )


def test_graceful_stop_names_an_ended_legs_submit_whose_outcome_it_could_not_learn(tmp_path) -> None:
    # The sell leg ended with its submit's outcome unknown (its order working at the broker, unknown to the run)
    # and the broker still cannot be asked: the summary said "cancelled orders: none" and nothing else, as if
    # nothing of the run could be working, while the sell order stayed open at the broker.
    report, broker, _ = _stopped_with_an_ended_legs_submit_unknown(tmp_path, lookups_fail=True)
    assert broker.orders["o1"].status.is_open
    assert report.unanswered == (client_order_id("r1", 0, 0),)
    assert f"not cancelled): {client_order_id('r1', 0, 0)}" in report.summary()


def test_graceful_stop_cancels_the_order_of_an_ended_legs_submit_it_finds_at_the_broker(tmp_path) -> None:
    report, broker, _ = _stopped_with_an_ended_legs_submit_unknown(tmp_path, lookups_fail=False)
    assert broker.orders["o1"].status is OrderStatus.CANCELED
    assert report.cancelled == ("o1",)
    assert report.unanswered == ()


def test_graceful_stop_of_a_run_that_sent_no_order_says_to_start_it_again_not_to_resume_it(tmp_path) -> None:
    # Stopped before its first order was announced (e.g. while waiting for a valid quote): the summary said
    # "finish it with: repeg resume r1", which refuses such a run ("sent no order yet: start it again").
    async def main() -> StopReport:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = SimulatedBroker(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        journal = await _crashed_run(tmp_path, broker, clock, PATIENT, CrashAtFirstIntent)
        report = await stop_run("r1", journal, broker, clock, config=PATIENT)
        journal.close()
        return report

    summary = run_virtual(main).summary()
    assert "repeg resume" not in summary
    assert "sent no order yet: start it again with --run-id r1" in summary


class ReplacementUnreadable(FakeBroker):
    """`FakeBroker` whose reads of every order created after `readable` was set fail."""

    readable: frozenset[str] | None = None

    async def get_order(self, order_id: str) -> BrokerOrder:
        if self.readable is not None and order_id not in self.readable:
            raise BrokerUnavailableError(f"read of {order_id} failed")
        return await super().get_order(order_id)


def test_graceful_stop_cancels_the_replacement_an_ended_leg_could_never_read(tmp_path) -> None:
    # Guard (passes as the stop stood): the sell's second re-peg replaces o2 by o3, but its answer, every lookup
    # and every read of o3 fail, and every cancel at the phase's end is refused: the sell leg ends with o3 working,
    # never read. Stopped while the run waits for the sell before buying, with o3 still unreadable, the stop
    # cancels o3 and, unable to read it closed, names it unconfirmed.
    report, broker, working, _ = _stopped_with_an_ended_legs_replacement_unreadable(tmp_path)
    assert working == ["o3"]
    assert all(broker.orders[order_id].status is OrderStatus.CANCELED for order_id in working)
    assert report.cancelled == tuple(working) == report.unconfirmed


def test_graceful_stop_does_not_log_as_failed_a_refused_reask_of_a_cancel_the_broker_accepted(
    tmp_path,
) -> None:
    # The same stop asks again for o3's cancel at each check while o3 cannot be read (the cancel it accepted may
    # have been undone); each is refused, o3 being cancelled already. Such a refusal is no failure: it is logged
    # at info as 'stop_cancel_refused_again', not as a warning 'stop_cancel_failed' (the report lists o3 cancelled).
    with every_level_captured() as lines:
        report, broker, _, before = _stopped_with_an_ended_legs_replacement_unreadable(tmp_path)
    assert broker.cancels().count("cancel:o3") - before > 1
    assert not [line for line in lines if line["event"] == "stop_cancel_failed"]
    refused = [line for line in lines if line["event"] == "stop_cancel_refused_again"]
    assert refused
    assert all(line["order_id"] == "o3" and line["log_level"] == "info" for line in refused)
    assert report.cancelled == ("o3",)


def test_graceful_stop_cancels_again_an_unreadable_order_whose_accepted_cancel_the_broker_undid(
    tmp_path,
) -> None:
    # The broker accepts the stop's cancel of o3, then refuses it (o3 stays working, as after a cancel that raced
    # a replace), while o3 still cannot be read: the stop must ask again (it cannot tell the cancel undone from
    # one still on its way), not leave o3 working at the broker after the run reported.
    _, broker, _, _ = _stopped_with_an_ended_legs_replacement_unreadable(tmp_path, undone_cancels=1)
    assert broker.orders["o3"].status is OrderStatus.CANCELED


def _stopped_with_an_ended_legs_replacement_unreadable(
    tmp_path, *, undone_cancels: int = 0
) -> tuple[StopReport, ReplacementUnreadable, list[str], int]:
    """The stop of the run above; its report, the broker, the orders working before it, and how many cancels
    of o3 the run had sent before it. The broker accepts, then refuses, the stop's first `undone_cancels`."""

    async def main() -> tuple[StopReport, ReplacementUnreadable, list[str], int]:
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        clock = VirtualClock(T0)
        feed = FakeFeed(clock)
        broker = ReplacementUnreadable(clock, feed, auto_fill=False)
        broker.positions["XYZ"] = Decimal(100)
        feed.set("XYZ", "100.00", "100.08")
        feed.set("ABC", "9.99", "10.00")

        def lose_the_replace() -> None:
            broker.lost_answers, broker.unavailable_lookups = 1, 10**6
            broker.readable = frozenset(broker.orders)
            broker.refuse_cancels = 10**6
            for order_id in broker.orders:
                broker.delayed_updates[order_id] = timedelta(seconds=600)

        clock.call_at(T0 + timedelta(seconds=20), lose_the_replace)
        config = classic_ladder(max_total_wait=30)
        await _run_until_the_sell_phase_ends(journal, broker, feed, clock, config)
        working = [o.order_id for o in broker.orders.values() if o.status.is_open]
        before = broker.cancels().count("cancel:o3")
        broker.refuse_cancels, broker.reject_cancels_later = 0, undone_cancels
        report = await stop_run("r1", journal, broker, clock, config=config)
        journal.close()
        return report, broker, working, before

    return run_virtual(main)


@pytest.mark.parametrize(
    ("point", "nth", "before"),
    [
        ("submit-intent", 1, False),
        ("submit-ack", 1, False),
        ("replace-intent", 1, False),
        ("fill", 1, False),
        # Stopped with the broker's answer unjournaled (the order live at the broker, the journal not knowing).
        ("submit-ack", 1, True),
        ("replace-ack", 1, True),
        ("fill", 1, True),
    ],
)
def test_a_run_stopped_then_resumed_trades_each_leg_exactly_once(tmp_path, point, nth, before) -> None:
    # Guard: stopped (the engine dead at `point`, as a Ctrl-C cancels it), then resumed: every leg filled in full,
    # as the broker executed it (no fill lost from the journal), and no order sent twice (the books are the plan's).
    async def main() -> tuple[bool, dict[str, Decimal], dict[int, Decimal], RunState]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker, feed = build_simulation(TAPE, clock, ACCOUNT, seed=3)
        journal = SqliteJournal(tmp_path / "j.db", durability="full")
        crash = CrashAt(journal, point, nth, before=before)
        crashed = False
        try:
            await run_execution(SPECS, (), broker, feed, clock, CONFIG, run_id="r1", sinks=(crash,))
        except Crash:
            crashed = True
        await stop_run("r1", journal, broker, clock, config=CONFIG)
        await resume_run("r1", journal, broker, feed, clock, config=CONFIG)
        state = fold_run(journal.events("r1"))
        journal.close()
        positions = {p.symbol: p.qty for p in await broker.get_positions()}
        executed: dict[int, Decimal] = {}
        for leg in state.legs:
            for attempt in range(len(leg.orders) + 2):
                order = await broker.get_order_by_client_id(client_order_id("r1", leg.index, attempt))
                if order is not None:
                    executed[leg.index] = executed.get(leg.index, Decimal(0)) + order.filled_qty
        return crashed, positions, executed, state

    crashed, positions, executed, state = run_virtual(main)
    assert crashed
    assert state.status == "completed"
    assert positions == TARGETS
    for leg in state.legs:
        assert leg.filled_qty == leg.qty == executed[leg.index]


class FillRacesTheCancel(FilledUnseen):
    """Accepts the cancel, but the order filled in full first: every read afterwards shows it filled."""

    async def cancel_order(self, order_id: str) -> None:
        await SimulatedBroker.cancel_order(self, order_id)
        self.filled = True


def test_graceful_stop_does_not_report_as_cancelled_an_order_that_filled_before_its_cancel(tmp_path) -> None:
    # The stop's cancel was accepted, but the order had filled in full (the fill raced the cancel), as the stop then
    # read and journaled: its summary still said "cancelled orders: <id>" of an order that bought or sold in full.
    report, order = _stopped_while_a_fill_races_the_cancel(tmp_path, FillRacesTheCancel)
    assert order is not None
    assert order.status is OrderStatus.FILLED
    assert report.filled_notional > 0
    assert order.order_id not in report.cancelled
    assert "cancelled orders: none" in report.summary()


class PartFillRacesTheCancel(FillRacesTheCancel):
    """Accepts the cancel, which cancels the remainder of an order half filled first."""

    def _as_filled(self, order: BrokerOrder) -> BrokerOrder:
        if not self.filled:
            return order
        half = (order.qty / 2).to_integral_value(rounding=ROUND_FLOOR)
        return order.model_copy(
            update={"status": OrderStatus.CANCELED, "filled_qty": half, "filled_avg_price": Decimal("20.00")}
        )


def test_graceful_stop_reports_as_cancelled_an_order_whose_remainder_it_cancelled_after_a_part_fill(
    tmp_path,
) -> None:
    # Guard (passes as the stop stands): an order half filled before the stop's cancel is still named cancelled
    # (its remainder was), and its half fill is in the summary's notional traded.
    report, order = _stopped_while_a_fill_races_the_cancel(tmp_path, PartFillRacesTheCancel)
    assert order is not None
    assert order.status is OrderStatus.CANCELED
    assert report.cancelled == (order.order_id,)
    assert report.filled_notional == order.filled_qty * Decimal("20.00") > 0


def _stopped_while_a_fill_races_the_cancel(
    tmp_path, broker_class: type[FillRacesTheCancel]
) -> tuple[StopReport, BrokerOrder | None]:
    """The stop of a run crashed after its first submit's answer, on `broker_class`; its report and that order."""

    async def main() -> tuple[StopReport, BrokerOrder | None]:
        clock = VirtualClock(TAPE.start + timedelta(seconds=5))
        broker = broker_class(TAPE, clock, ACCOUNT, fill_model=PaperFillModel(TAPE, seed=3))
        journal = await _crashed_after_its_first_submit_ack(tmp_path, broker, clock, PATIENT)
        report = await stop_run("r1", journal, broker, clock, config=PATIENT)
        order = await broker.get_order_by_client_id(client_order_id("r1", 0, 0))
        journal.close()
        return report, order

    return run_virtual(main)


def test_graceful_stop_does_not_name_an_ended_legs_submit_the_broker_says_it_never_got(tmp_path) -> None:
    # The sell's submit never reached the broker and its leg ended with that outcome unknown; the stop's lookup
    # is answered: no such order. It is not named as possibly working, nor waited for.
    report, broker, took = _stopped_with_an_ended_legs_submit_unknown(
        tmp_path, lookups_fail=False, reached=False
    )
    assert broker.orders == {}
    assert report.unanswered == ()
    assert took < LADDER.grace_window
