"""Time, injected.

Engine code never reads the wall clock or calls `asyncio.sleep` directly: it asks a `Clock`. Two clocks exist:

- `RealClock`: wall time, real sleeps; for live brokers.
- `VirtualClock`: simulated time under a `VirtualTimeLoop`, an asyncio event loop whose `time()` is virtual and
  whose selector, instead of blocking for the next timer, *jumps* time to it. Every asyncio primitive (sleep,
  wait_for, call_at) then runs in virtual time, so the very same engine code runs live and in simulation, and a
  two-minute phase over real quotes takes milliseconds. Runs are deterministic: there is no other source of
  time, and timers due at the same instant fire in the order they were scheduled.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import selectors
from collections.abc import Callable, Coroutine, Mapping
from contextvars import Context
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeVar

from repeg.errors import RepegError

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike as _FileObject

T = TypeVar("T")


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The engine's only source of time."""

    def now(self) -> datetime:
        """Current UTC time (timezone-aware)."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return at `when` (at once if it has passed)."""
        ...

    async def wait_event(self, event: asyncio.Event, deadline: datetime) -> bool:
        """Wait until `event` is set (True) or `deadline` passes (False)."""
        ...

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle:
        """Run `callback` on the event loop at `when`."""
        ...


class _LoopClock:
    """Clock arithmetic over the running loop's `time()`; shared by the real and virtual clocks."""

    def __init__(self, epoch: datetime, loop_epoch: float) -> None:
        self._epoch = epoch
        self._loop_epoch = loop_epoch
        # The last answer of `now()` and the loop time it was computed at: the engine asks many times per
        # instant (every event is stamped), and under virtual time the instant only moves when the loop idles.
        self._now_at = loop_epoch
        self._now = epoch

    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _to_loop_time(self, when: datetime) -> float:
        return self._loop_epoch + (when - self._epoch).total_seconds()

    def now(self) -> datetime:
        loop_time = self._loop().time()
        if loop_time != self._now_at:
            self._now = self._epoch + timedelta(seconds=loop_time - self._loop_epoch)
            self._now_at = loop_time
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        await asyncio.sleep(max(delay, 0.0))

    async def wait_event(self, event: asyncio.Event, deadline: datetime) -> bool:
        if event.is_set():
            return True
        delay = (deadline - self.now()).total_seconds()
        if delay <= 0:
            return False
        try:
            await asyncio.wait_for(event.wait(), timeout=delay)
        except TimeoutError:
            return False
        return True

    def call_at(self, when: datetime, callback: Callable[[], None]) -> TimerHandle:
        return self._loop().call_at(self._to_loop_time(when), callback)


class RealClock(_LoopClock):
    """Wall-clock time. Must be created inside the running loop (it anchors to the loop's monotonic time)."""

    def __init__(self) -> None:
        super().__init__(datetime.now(UTC), asyncio.get_running_loop().time())

    def now(self) -> datetime:
        # Anchored to the monotonic loop clock so that sleeps and `now()` agree even if the wall clock steps.
        return super().now()


class VirtualClock(_LoopClock):
    """Simulated time starting at `start`; must run under `VirtualTimeLoop` (see `run_virtual`)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock start must be timezone-aware")
        super().__init__(start, 0.0)

    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeLoop):
            raise TypeError("VirtualClock needs a VirtualTimeLoop; use repeg.engine.clock.run_virtual")
        return loop


class _JumpingSelector(selectors.BaseSelector):
    """A selector that polls real file descriptors without blocking and advances virtual time instead."""

    def __init__(self, loop_ref: Callable[[], VirtualTimeLoop]) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop_ref = loop_ref

    def register(self, fileobj: _FileObject, events: int, data: object = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: _FileObject) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: _FileObject, events: int, data: object = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout is None or timeout <= 0:
            # timeout None means no timer is pending: nothing virtual can happen, so wait for real I/O.
            return ready if ready or timeout is not None else self._inner.select(None)
        self._loop_ref().advance(timeout)
        return []

    def close(self) -> None:
        self._inner.close()

    def get_map(
        self,
    ) -> Mapping[_FileObject, selectors.SelectorKey]:  # pragma: no cover - asyncio does not call it
        return self._inner.get_map()


class _FifoTimerHandle(asyncio.TimerHandle):
    """A timer that breaks ties at equal times by scheduling order (asyncio's heap alone does not)."""

    __slots__ = ("_seq",)

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[object, ...],
        loop: asyncio.AbstractEventLoop,
        context: Context | None,
        *,
        seq: int,
    ) -> None:
        super().__init__(when, callback, args, loop, context)
        self._seq = seq

    def __lt__(self, other: asyncio.TimerHandle) -> bool:
        when, other_when = self._when, other._when  # type: ignore[attr-defined]
        if when == other_when and isinstance(other, _FifoTimerHandle):
            return self._seq < other._seq
        return bool(when < other_when)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time: when nothing is ready, time jumps to the next timer.

    Timers due at the same virtual instant fire in the order they were scheduled, so a simulation's outcome
    depends only on its inputs and seed.
    """

    def __init__(self) -> None:
        self._virtual_now = 0.0
        self._timer_seq = itertools.count()
        super().__init__(_JumpingSelector(lambda: self))

    def call_at(  # same behaviour as the base loop, with FIFO ties
        self, when: float, callback: Callable[..., object], *args: object, context: Context | None = None
    ) -> asyncio.TimerHandle:
        self._check_closed()  # type: ignore[attr-defined]
        timer = _FifoTimerHandle(when, callback, args, self, context, seq=next(self._timer_seq))
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("virtual time cannot go backwards")
        self._virtual_now += seconds


_IN_A_LOOP = (
    "repeg's synchronous entry points (execute, simulate, backtests) cannot run inside a running event loop "
    "(Jupyter, an async application): await repeg.execute_async there, or call them from a worker thread"
)


def _refuse_a_running_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RepegError(_IN_A_LOOP)


def run_virtual(main: Callable[[], Coroutine[object, object, T]]) -> T:
    """Run `main()` to completion on a fresh `VirtualTimeLoop` (sync entry point for simulations and tests).

    Refused with a `RepegError`, before anything is made, inside a running event loop (asyncio cannot nest one).
    """
    _refuse_a_running_loop()
    # The result is handed over outside the main task: on exit `asyncio.Runner` may format the task's repr
    # (signal handler bookkeeping), which would otherwise render the whole result, a large model for a run.
    result: list[T] = []

    async def body() -> None:
        result.append(await main())

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        runner.run(body())
    return result[0]
