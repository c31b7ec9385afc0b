"""Wiring of the built-in simulator: one call gives the broker and the matching quote feed."""

from __future__ import annotations

from repeg.brokers.simulator.account import SimAccount
from repeg.brokers.simulator.broker import SimulatedBroker
from repeg.brokers.simulator.fill_models import FillModel, PaperFillModel
from repeg.brokers.simulator.latency import NO_LATENCY, LatencyModel
from repeg.engine.clock import Clock
from repeg.market.replay import TapeFeed
from repeg.market.tape import QuoteTape


def build_simulation(
    tape: QuoteTape,
    clock: Clock,
    account: SimAccount,
    *,
    seed: int,
    fill_model: FillModel | None = None,
    latency: LatencyModel | None = None,
) -> tuple[SimulatedBroker, TapeFeed]:
    """A simulated broker and a quote feed over the same tape and clock.

    `fill_model` defaults to Alpaca's paper rules seeded with `seed`; `latency` defaults to none. The clock is
    normally a `VirtualClock` started at (or before) `tape.start`, run under `run_virtual`.
    """
    model = fill_model if fill_model is not None else PaperFillModel(tape, seed=seed)
    broker = SimulatedBroker(tape, clock, account, fill_model=model, latency=latency or NO_LATENCY)
    return broker, TapeFeed(tape, clock)


__all__ = ["SimAccount", "build_simulation"]
