"""Helpers of the `Broker` port shared by its implementations."""

from __future__ import annotations

from repeg.brokers.base import UpdateSink, subscribed
from repeg.domain.orders import OrderUpdate


def test_unsubscribing_removes_that_very_sink_once_and_no_other() -> None:
    heard: list[str] = []

    def sink_of(name: str) -> UpdateSink:
        def sink(update: OrderUpdate) -> None:
            heard.append(name)

        return sink

    first, second = sink_of("first"), sink_of("second")
    sinks: list[UpdateSink] = []
    unsubscribe_first = subscribed(sinks, first)
    subscribed(sinks, second)
    unsubscribe_first()
    unsubscribe_first()  # a second call does nothing
    assert sinks == [second]


def test_one_sink_subscribed_twice_loses_one_subscription_per_handle_called_however_often() -> None:
    def sink(update: OrderUpdate) -> None:
        del update

    sinks: list[UpdateSink] = []
    unsubscribe_first = subscribed(sinks, sink)
    unsubscribe_second = subscribed(sinks, sink)
    unsubscribe_first()
    unsubscribe_first()  # a second call of one handle must not take the other subscription
    assert sinks == [sink]
    unsubscribe_second()
    assert sinks == []
