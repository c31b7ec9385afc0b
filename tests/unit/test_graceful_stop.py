"""Graceful stop (`repeg.journal.shutdown`) while the broker fails: what reaches the broker, when, and what the
summary says. In process on virtual time, on the scenarios and helpers of `test_journal_resume`."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from test_journal_resume import (
    ACCOUNT,
    PATIENT,
    TAPE,
    ReadFailingSimulator,
    _crashed_after_its_first_submit_ack,
)

from repeg.brokers.simulator import PaperFillModel
from repeg.domain.orders import BrokerOrder
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.journal.shutdown import stop_run


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
