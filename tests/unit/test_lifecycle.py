"""The leg lifecycle table and its state machine."""

from __future__ import annotations

import pytest

from repeg.domain.lifecycle import (
    ACTIVE,
    DONE,
    IN_FLIGHT,
    LEG_MACHINE,
    LEG_TRANSITIONS,
    LegMachine,
    LegStatus,
    LegTrigger,
)
from repeg.errors import IllegalTransitionError


def test_status_sets_partition_the_statuses() -> None:
    assert set(LegStatus) == ACTIVE | DONE
    assert not ACTIVE & DONE
    assert IN_FLIGHT <= ACTIVE


def test_happy_path_submit_accept_complete() -> None:
    status = LegStatus.PLANNED
    for trigger in (LegTrigger.SUBMIT, LegTrigger.ACCEPTED, LegTrigger.COMPLETED):
        status = LEG_MACHINE.transition(status, trigger)
    assert status is LegStatus.FILLED


def test_cancel_then_resubmit_goes_through_idle() -> None:
    status = LegStatus.WORKING
    status = LEG_MACHINE.transition(status, LegTrigger.CANCEL)
    assert status is LegStatus.CANCELING
    status = LEG_MACHINE.transition(status, LegTrigger.ORDER_CLOSED)
    assert status is LegStatus.IDLE
    assert LEG_MACHINE.transition(status, LegTrigger.SUBMIT) is LegStatus.SUBMITTING


def test_refused_replace_and_cancel_return_to_working() -> None:
    assert LEG_MACHINE.transition(LegStatus.REPLACING, LegTrigger.REPLACE_FAILED) is LegStatus.WORKING
    assert LEG_MACHINE.transition(LegStatus.CANCELING, LegTrigger.CANCEL_FAILED) is LegStatus.WORKING


def test_a_refused_submit_leaves_the_leg_idle_with_its_remainder() -> None:
    assert LEG_MACHINE.transition(LegStatus.SUBMITTING, LegTrigger.SUBMIT_FAILED) is LegStatus.IDLE


def test_an_order_closed_before_its_submit_was_answered_leaves_the_leg_idle() -> None:
    # e.g. the broker's update (rejected, cancelled) overtakes its answer to the submit
    assert LEG_MACHINE.transition(LegStatus.SUBMITTING, LegTrigger.ORDER_CLOSED) is LegStatus.IDLE


def test_a_leg_never_sent_ends_incomplete_at_the_phase_deadline() -> None:
    assert LEG_MACHINE.transition(LegStatus.PLANNED, LegTrigger.FINISH_INCOMPLETE) is LegStatus.INCOMPLETE


def test_a_late_over_fill_fails_an_incomplete_leg() -> None:
    assert LEG_MACHINE.transition(LegStatus.INCOMPLETE, LegTrigger.OVERFILLED) is LegStatus.FAILED


def test_a_late_fill_can_complete_an_incomplete_leg() -> None:
    assert LEG_MACHINE.transition(LegStatus.INCOMPLETE, LegTrigger.COMPLETED) is LegStatus.FILLED


def test_a_late_fill_can_complete_a_failed_leg() -> None:
    # e.g. a leg given up by a safety rail while its order's cancel was in flight, and the order filled first
    assert LEG_MACHINE.transition(LegStatus.FAILED, LegTrigger.COMPLETED) is LegStatus.FILLED


@pytest.mark.parametrize("status", sorted(DONE))
def test_only_a_late_fill_leaves_a_final_status(status: LegStatus) -> None:
    # an over-fill fails it; fills reaching the quantity complete a leg ended incomplete or failed (b4234af1)
    late = {LegTrigger.OVERFILLED}
    if status in {LegStatus.INCOMPLETE, LegStatus.FAILED}:
        late.add(LegTrigger.COMPLETED)
    for trigger in set(LegTrigger) - late:
        assert not LEG_MACHINE.can(status, trigger)


def test_a_broker_over_fill_fails_a_filled_leg() -> None:
    assert LEG_MACHINE.transition(LegStatus.FILLED, LegTrigger.OVERFILLED) is LegStatus.FAILED


def test_submitting_twice_is_illegal_and_names_state_and_event() -> None:
    with pytest.raises(IllegalTransitionError) as caught:
        LEG_MACHINE.transition(LegStatus.SUBMITTING, LegTrigger.SUBMIT)
    assert caught.value.state == "submitting"
    assert caught.value.event == "submit"
    assert caught.value.machine == "leg"


def test_a_leg_with_a_live_order_cannot_be_skipped() -> None:
    assert not LEG_MACHINE.can(LegStatus.WORKING, LegTrigger.FINISH_SKIPPED)


def test_only_a_leg_that_never_sent_an_order_can_be_skipped() -> None:
    # `skipped` means nothing was sent: an idle leg has sent an order (and may hold fills); it ends otherwise.
    assert [s for s in LegStatus if LEG_MACHINE.can(s, LegTrigger.FINISH_SKIPPED)] == [LegStatus.PLANNED]


def test_every_active_status_can_still_end() -> None:
    finishing = {LegTrigger.COMPLETED, LegTrigger.FINISH_FAILED, LegTrigger.FINISH_INCOMPLETE}
    for status in ACTIVE:
        assert any((status, trigger) in LEG_TRANSITIONS for trigger in finishing), status


def test_machine_accepts_a_custom_table() -> None:
    machine = LegMachine({(LegStatus.PLANNED, LegTrigger.SUBMIT): LegStatus.FILLED})
    assert machine.transition(LegStatus.PLANNED, LegTrigger.SUBMIT) is LegStatus.FILLED
