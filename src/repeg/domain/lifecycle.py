"""The leg lifecycle: one transition table and a tiny state machine that refuses anything not in it.

A leg is one symbol's intent (see `repeg.domain.leg`); over its life it owns a chain of broker orders. Its status
says what the engine is waiting for. Every legal "what can follow what" is the table `LEG_TRANSITIONS`, readable
in one screen; `LegMachine.transition` raises `IllegalTransitionError` for any pair not in it.
"""

from __future__ import annotations

from enum import StrEnum

from repeg.errors import IllegalTransitionError


class LegStatus(StrEnum):
    PLANNED = "planned"  # known, nothing sent yet (waiting for its phase or a valid quote)
    SUBMITTING = "submitting"  # a submit was announced; the broker has not answered yet
    WORKING = "working"  # an order is live at the broker
    REPLACING = "replacing"  # a replace of the live order was announced
    CANCELING = "canceling"  # a cancel was announced; waiting for the broker's confirmation
    IDLE = "idle"  # the last order is closed, a remainder is still to be sent
    FILLED = "filled"  # the whole quantity filled
    SKIPPED = "skipped"  # nothing sent, deliberately (e.g. no valid quote in time)
    FAILED = "failed"  # refused by the broker or a safety rail
    INCOMPLETE = "incomplete"  # the phase ended with part (or all) of the quantity unfilled


class LegTrigger(StrEnum):
    PLAN = "plan"
    SUBMIT = "submit"
    ACCEPTED = "accepted"
    SUBMIT_FAILED = "submit_failed"
    REPLACE = "replace"
    REPLACE_FAILED = "replace_failed"
    CANCEL = "cancel"
    CANCEL_FAILED = "cancel_failed"
    ORDER_CLOSED = "order_closed"  # the live order ended (cancelled, expired, rejected) with a remainder left
    COMPLETED = "completed"  # fills reached the leg's quantity
    FINISH_SKIPPED = "finish_skipped"
    FINISH_FAILED = "finish_failed"
    FINISH_INCOMPLETE = "finish_incomplete"
    OVERFILLED = "overfilled"  # a broker reported more fills than the leg's quantity


S = LegStatus
T = LegTrigger

#: Statuses in which an order of the leg may be live or about to be.
IN_FLIGHT: frozenset[LegStatus] = frozenset({S.SUBMITTING, S.WORKING, S.REPLACING, S.CANCELING})
#: Statuses of a leg that still needs the engine.
ACTIVE: frozenset[LegStatus] = frozenset({S.PLANNED, S.IDLE}) | IN_FLIGHT
#: Final statuses. Late fills are still recorded in them (see `repeg.domain.leg_fold`), but nothing is sent; fills
#: reaching the quantity turn an incomplete or failed leg (one not over-filled) filled.
DONE: frozenset[LegStatus] = frozenset({S.FILLED, S.SKIPPED, S.FAILED, S.INCOMPLETE})


def _from_each(sources: frozenset[LegStatus], trigger: LegTrigger, target: LegStatus) -> dict[tuple[S, T], S]:
    return {(source, trigger): target for source in sources}


LEG_TRANSITIONS: dict[tuple[LegStatus, LegTrigger], LegStatus] = {
    (S.PLANNED, T.PLAN): S.PLANNED,
    (S.PLANNED, T.SUBMIT): S.SUBMITTING,
    (S.IDLE, T.SUBMIT): S.SUBMITTING,
    (S.SUBMITTING, T.ACCEPTED): S.WORKING,
    (S.SUBMITTING, T.SUBMIT_FAILED): S.IDLE,
    (S.WORKING, T.REPLACE): S.REPLACING,
    (S.REPLACING, T.ACCEPTED): S.WORKING,
    (S.REPLACING, T.REPLACE_FAILED): S.WORKING,
    (S.WORKING, T.CANCEL): S.CANCELING,
    (S.CANCELING, T.CANCEL_FAILED): S.WORKING,
    **_from_each(IN_FLIGHT, T.ORDER_CLOSED, S.IDLE),
    # A late fill completes a leg ended incomplete or given up (its cancel raced the fill): the quantity traded.
    **_from_each(IN_FLIGHT | {S.IDLE, S.INCOMPLETE, S.FAILED}, T.COMPLETED, S.FILLED),
    (S.PLANNED, T.FINISH_SKIPPED): S.SKIPPED,  # only a leg that never sent an order: an idle one has sent
    **_from_each(ACTIVE, T.FINISH_FAILED, S.FAILED),
    **_from_each(ACTIVE, T.FINISH_INCOMPLETE, S.INCOMPLETE),
    **_from_each(ACTIVE | {S.FILLED, S.INCOMPLETE}, T.OVERFILLED, S.FAILED),  # the only way out of `filled`
}


class LegMachine:
    """Applies `LEG_TRANSITIONS`; stateless, so one instance serves every leg."""

    name = "leg"

    def __init__(self, table: dict[tuple[LegStatus, LegTrigger], LegStatus] = LEG_TRANSITIONS) -> None:
        self._table = table

    def can(self, status: LegStatus, trigger: LegTrigger) -> bool:
        return (status, trigger) in self._table

    def transition(self, status: LegStatus, trigger: LegTrigger) -> LegStatus:
        """The status after `trigger`; raises `IllegalTransitionError` for a pair the table does not hold."""
        try:
            return self._table[(status, trigger)]
        except KeyError:
            raise IllegalTransitionError(self.name, status.value, trigger.value) from None


LEG_MACHINE = LegMachine()

#: `LegFinished.status` values and the trigger each one fires.
FINISH_TRIGGERS: dict[str, LegTrigger] = {
    S.SKIPPED.value: T.FINISH_SKIPPED,
    S.FAILED.value: T.FINISH_FAILED,
    S.INCOMPLETE.value: T.FINISH_INCOMPLETE,
    S.FILLED.value: T.COMPLETED,
}
