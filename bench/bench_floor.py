"""How low can replay200's engine time go with the design issue 2 prescribes? Prints one JSON document.

Issue 2 asks for under 0.08 s of engine time on the 200-order replay (`bench_core.py`, case `replay200`). This
script measures two costs that any implementation of that design pays, whatever its own logic costs, so that the
target can be compared with a floor instead of with hope:

- `asyncio_floor_seconds`: the issue prescribes an async monitoring loop per phase, and repeg runs each basket
  order as its own phase. The script counts the callbacks the event loop runs during a real replay200 (task
  steps, timers, the simulator's deferred deliveries), then times a skeleton that does nothing but the same kind
  of waits, one task per order, under the same `VirtualTimeLoop`, with no more callbacks than the real run. Each
  of its waits resumes one coroutine where the engine resumes several, so this is a lower bound for repeg's
  shape. One monitor for the whole basket would save the task starts and the dispatcher's sleeps (three of the
  skeleton's twenty callbacks per order) but few wake-ups: the orders arrive about two minutes apart and each
  is done within one, so they share almost none.
- `validation_floor_seconds`: every order event is journaled as a frozen, validated pydantic model, and broker
  answers cross the adapter edge as validated models. The script re-validates exactly the events of that replay
  (and the `BrokerOrder` and `OrderUpdate` inside them, which the simulator validates when it reports) from their
  own fields: the validation any faithful implementation performs, with no engine logic around it.

Each floor is the fastest of `--rounds` repetitions in this process (the least disturbed by a noisy machine, so
the floor errs low; the median is reported beside it). What is left of the target after both floors is the
budget for everything else: the fold, the policy's Decimal pricing, the simulator's matching, the monitor's
bookkeeping. `engine_seconds` is the real run's engine time for comparison (one in-process sample; `bench_core.py`
is the reference for it). Skipped when ../shared is absent.

Usage: `python bench/bench_floor.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from contextvars import Context
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core  # the basket and schedule of issue 2's benchmark, shared on purpose
from repeg.brokers.simulator import SimAccount, build_simulation
from repeg.domain.events import OrderAccepted, OrderUpdated, RunEvent
from repeg.engine.clock import VirtualClock, VirtualTimeLoop, run_virtual
from repeg.engine.runner import run_basket
from repeg.logging import configure_logging
from repeg.market.loaders import load_quotes
from repeg.market.tape import QuoteTape
from repeg.runtime import freeze_startup_heap

TARGET_SECONDS = 0.08
ORDERS = 200


class CountingLoop(VirtualTimeLoop):
    """A `VirtualTimeLoop` that counts the callbacks it runs: immediate ones and timers (cancelled ones do not run
    and do not count)."""

    def __init__(self) -> None:
        super().__init__()
        self.ran = 0
        self.timers_ran = 0

    def _counted(self, callback: Callable[..., object], *, timer: bool) -> Callable[..., object]:
        def run(*args: object) -> object:
            self.ran += 1
            self.timers_ran += timer
            return callback(*args)

        return run

    def call_soon(
        self, callback: Callable[..., object], *args: object, context: Context | None = None
    ) -> asyncio.Handle:
        return super().call_soon(self._counted(callback, timer=False), *args, context=context)

    def call_at(
        self, when: float, callback: Callable[..., object], *args: object, context: Context | None = None
    ) -> asyncio.TimerHandle:
        return super().call_at(when, self._counted(callback, timer=True), *args, context=context)


T = TypeVar("T")


def _run_counting(main: Callable[[], Coroutine[object, object, T]]) -> tuple[T, CountingLoop]:
    loops: list[CountingLoop] = []

    def factory() -> CountingLoop:
        loops.append(CountingLoop())
        return loops[-1]

    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(main())
    return result, loops[0]


class _Collect:
    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    async def emit(self, event: RunEvent) -> None:
        self.events.append(event)


def _real_run(tape: QuoteTape) -> tuple[list[RunEvent], CountingLoop, float]:
    """Replay200 twice: once on a counting loop (its events and callbacks), once plain (its engine time)."""
    symbol = tape.symbols[0]
    orders = bench_core._basket(tape, symbol, ORDERS)

    def main(sink: _Collect) -> Callable[[], Coroutine[object, object, float]]:
        async def run() -> float:
            account = SimAccount(cash=Decimal(10_000_000), positions={symbol: Decimal(100_000)})
            clock = VirtualClock(tape.start)
            broker, feed = build_simulation(tape, clock, account, seed=7)
            started = time.perf_counter()
            result = await run_basket(
                orders, broker, feed, clock, bench_core._classic_ladder(), run_id="bench", sinks=[sink]
            )
            elapsed = time.perf_counter() - started
            if not all(leg.filled_qty == leg.requested_qty for leg in result.legs):
                raise SystemExit("replay200 must fill every order")
            return elapsed

        return run

    counted = _Collect()
    _, loop = _run_counting(main(counted))
    engine_s = run_virtual(main(_Collect()))
    return counted.events, loop, engine_s


# --- the asyncio floor ---------------------------------------------------------------------------------------


async def _order(clock: VirtualClock, waits: int) -> None:
    """One order's waits: alternately a timer (a due time) and an immediate wake (a broker delivery)."""
    loop = asyncio.get_running_loop()
    for wait in range(waits):
        woken: asyncio.Future[None] = loop.create_future()
        if wait % 2:
            clock.call_at(clock.now() + timedelta(seconds=5), partial(woken.set_result, None))
        else:
            loop.call_soon(woken.set_result, None)
        await woken


def _skeleton(start: datetime, waits: int) -> Callable[[], Coroutine[object, object, float]]:
    """The skeleton's main: one task per order, started at its arrival, each doing `waits` waits."""

    async def main() -> float:
        clock = VirtualClock(start)
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for order in range(ORDERS):
                await clock.sleep_until(start + timedelta(seconds=120 * order))
                group.create_task(_order(clock, waits))
        return time.perf_counter() - started

    return main


def _asyncio_floor(start: datetime, real: CountingLoop, rounds: int) -> tuple[float, dict[str, object]]:
    """The skeleton with the most waits per order whose callback count stays within the real run's, timed on a
    plain `VirtualTimeLoop` (the counting one only counts): its fastest time, and the details to report."""
    waits, skeleton = 1, _run_counting(_skeleton(start, 1))[1]
    while (bigger := _run_counting(_skeleton(start, waits + 1))[1]).ran <= real.ran:
        waits, skeleton = waits + 1, bigger
    timings = [run_virtual(_skeleton(start, waits)) for _ in range(rounds)]
    return min(timings), {
        "asyncio_floor_seconds": round(min(timings), 4),
        "asyncio_floor_median_seconds": round(statistics.median(timings), 4),
        "skeleton_waits_per_order": waits,
        "skeleton_callbacks": skeleton.ran,
        "real_callbacks": real.ran,
        "real_timers": real.timers_ran,
        "skeleton_timers": skeleton.timers_ran,
    }


# --- the validation floor ------------------------------------------------------------------------------------


def _fields(model: BaseModel) -> dict[str, object]:
    return {name: getattr(model, name) for name in type(model).model_fields}


def _payloads(events: list[RunEvent]) -> list[tuple[type[BaseModel], dict[str, object]]]:
    """Each model to validate with its fields, built before timing so that only validation is timed.

    A broker order answering a request is the same object as the one in the update that follows it, so each
    `BrokerOrder` is counted once, as the simulator validates it once.
    """
    payloads: list[tuple[type[BaseModel], dict[str, object]]] = []
    seen: set[int] = set()

    def add(model: BaseModel) -> None:
        if id(model) not in seen:
            seen.add(id(model))
            payloads.append((type(model), _fields(model)))

    for event in events:
        if isinstance(event, OrderUpdated):
            add(event.update.order)
            add(event.update)
        elif isinstance(event, OrderAccepted):
            add(event.order)
        add(event)
    return payloads


def _validation_floor(events: list[RunEvent], rounds: int) -> tuple[float, dict[str, object]]:
    """The fastest time to validate the run's models, and the details to report."""
    payloads = _payloads(events)
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        for model, fields in payloads:
            model(**fields)
        timings.append(time.perf_counter() - started)
    return min(timings), {
        "validation_floor_seconds": round(min(timings), 4),
        "validation_floor_median_seconds": round(statistics.median(timings), 4),
        "validated_models": len(payloads),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9, help="repetitions of each floor (default 9)")
    args = parser.parse_args()
    rounds = max(1, args.rounds)
    if not bench_core.SHARED_QUOTES.exists():
        print(json.dumps({"benchmark": "floor", "skipped": f"{bench_core.SHARED_QUOTES} not found"}))
        return
    configure_logging(level="warning")
    tape = load_quotes(bench_core.SHARED_QUOTES)
    freeze_startup_heap()
    events, real, engine_s = _real_run(tape)
    report: dict[str, object] = {"benchmark": "floor", "case": "replay200", "target_seconds": TARGET_SECONDS}
    report["engine_seconds"] = round(engine_s, 4)
    report["events"] = len(events)
    asyncio_s, asyncio_details = _asyncio_floor(tape.start, real, rounds)
    validation_s, validation_details = _validation_floor(events, rounds)
    report.update(asyncio_details)
    report.update(validation_details)
    floors = asyncio_s + validation_s
    report["floors_seconds"] = round(floors, 4)
    report["left_for_all_logic_seconds"] = round(TARGET_SECONDS - floors, 4)
    report["left_per_event_microseconds"] = round((TARGET_SECONDS - floors) / len(events) * 1e6, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
