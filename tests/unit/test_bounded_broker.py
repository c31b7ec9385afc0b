"""`BoundedBroker` (the run's end): it times a broker call's answer, not the call's wait for a turn under the
client's own pacing (`repeg.brokers.pacing`), and still gives up a broker slow to answer."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from repeg.brokers.base import Broker
from repeg.brokers.pacing import paced
from repeg.engine.bounded_broker import BoundedBroker
from repeg.engine.clock import RealClock
from repeg.errors import BrokerUnavailableError

LEAST = timedelta(seconds=0.2)


class _PacedBroker:
    """Holds each cancel `pacing` seconds for its turn (as a rate limiter's queue), then answers in `answer` s."""

    def __init__(self, pacing: float, answer: float) -> None:
        self._pacing = pacing
        self._answer = answer
        self.answered: list[str] = []

    async def cancel_order(self, order_id: str) -> None:
        with paced():
            await asyncio.sleep(self._pacing)
        await asyncio.sleep(self._answer)
        self.answered.append(order_id)


def _bounded(inner: _PacedBroker) -> BoundedBroker:
    clock = RealClock()
    broker: Broker = inner  # type: ignore[assignment]  # only cancel_order is called
    return BoundedBroker(broker, clock, clock.now(), LEAST)


async def test_a_call_held_by_the_clients_pacing_longer_than_its_bound_is_still_answered():
    """Held 0.5 s for its turn, answered 0.05 s after: given up at 0.2 s ('no answer within 0.2 s') while its
    request had not been sent; the pacing is not the broker's answer, so the call now completes."""
    inner = _PacedBroker(pacing=0.5, answer=0.05)
    await _bounded(inner).cancel_order("o1")
    assert inner.answered == ["o1"]


async def test_a_broker_slow_to_answer_is_given_up_once_the_call_is_no_longer_held():
    """Held 0.3 s, then no answer: given up 0.2 s of the broker's time later, not after the pacing alone."""
    inner = _PacedBroker(pacing=0.3, answer=10.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(BrokerUnavailableError, match=r"no answer within 0\.2 s"):
        await _bounded(inner).cancel_order("o1")
    assert 0.5 <= loop.time() - started < 1.5
    assert inner.answered == []
