"""The crash test's kill-point hook: parsing, which events match which point, and staying inert when unset."""

from __future__ import annotations

import re

import pytest
from journal_support import accepted, broker_order, fill, intent, leg_planned

from repeg.domain.events import IntentAction, OrderUpdated
from repeg.domain.orders import OrderEvent, OrderStatus, OrderUpdate
from repeg.journal.faults import KillPoint, KillSwitchSink, parse_kill_point, point_of, with_fault_injection


class Sink:
    def __init__(self) -> None:
        self.events: list[object] = []

    async def emit(self, event: object) -> None:
        self.events.append(event)


def test_a_kill_point_names_the_point_the_side_and_the_occurrence() -> None:
    assert parse_kill_point("replace-ack:before:3") == KillPoint("replace-ack", True, 3)


@pytest.mark.parametrize(
    "text", ["replace-ack", "nope:before:1", "fill:during:1", "fill:after:0", "fill:after:x"]
)
def test_malformed_kill_points_are_refused_with_the_format(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape("<point>:<before|after>:<n>")):
        parse_kill_point(text)


def test_events_map_to_their_kill_points() -> None:
    cancel_intent = intent().model_copy(update={"action": IntentAction.CANCEL})
    canceled = OrderUpdated(
        **{
            k: v
            for k, v in fill().model_dump().items()
            if k in ("run_id", "ts", "correlation_id", "leg_index")
        },
        update=OrderUpdate(event=OrderEvent.CANCELED, order=broker_order(OrderStatus.CANCELED), ts=fill().ts),
    )
    assert [point_of(e) for e in (intent(), cancel_intent, accepted(), fill(), canceled, leg_planned())] == [
        "submit-intent",
        "cancel-intent",
        "submit-ack",
        "fill",
        "cancel-confirm",
        None,
    ]


def test_without_the_variable_the_sink_is_returned_unwrapped() -> None:
    sink = Sink()
    assert with_fault_injection(sink, {}) is sink
    assert isinstance(with_fault_injection(sink, {"REPEG_KILL_AT": "fill:after:1"}), KillSwitchSink)


async def test_events_before_the_nth_occurrence_pass_through() -> None:
    sink = Sink()
    switch = KillSwitchSink(sink, KillPoint("submit-intent", True, 3))
    for event in (intent(), accepted(), intent()):
        await switch.emit(event)
    assert len(sink.events) == 3
