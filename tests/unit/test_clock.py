"""Virtual time: sleeps and timeouts jump instead of waiting, in a deterministic order."""

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from repeg.engine.clock import RealClock, VirtualClock, run_virtual

START = datetime(2018, 1, 2, 14, 30, tzinfo=UTC)


def test_virtual_sleep_advances_now_exactly():
    async def main() -> datetime:
        clock = VirtualClock(START)
        await clock.sleep_until(START + timedelta(hours=6))
        return clock.now()

    assert run_virtual(main) == START + timedelta(hours=6)


def test_virtual_now_follows_sub_second_sleeps_exactly():
    # `now()` caches its answer per loop instant: a cache that only moved on jumps of a second or more kept
    # answering the first instant through a run's sub-second steps, and the 6-hour sleep above did not see it.
    async def main() -> list[datetime]:
        clock = VirtualClock(START)
        seen = [clock.now()]
        for ms in (250, 500, 1_250):
            await clock.sleep_until(START + timedelta(milliseconds=ms))
            seen.append(clock.now())
        return seen

    expected = [START + timedelta(milliseconds=ms) for ms in (0, 250, 500, 1_250)]
    assert run_virtual(main) == expected


def test_wait_event_on_an_event_already_set_is_true_even_at_a_past_deadline():
    async def main() -> bool:
        clock = VirtualClock(START)
        event = asyncio.Event()
        event.set()
        return await clock.wait_event(event, START - timedelta(seconds=1))

    assert run_virtual(main) is True


def test_six_virtual_hours_take_far_less_than_a_real_second():
    # Not a speed target (that is bench/'s job): it proves time jumps instead of waiting.
    wall = time.monotonic()

    async def main() -> None:
        clock = VirtualClock(START)
        await clock.sleep_until(START + timedelta(hours=6))

    run_virtual(main)
    assert time.monotonic() - wall < 60


def test_wait_event_returns_true_when_set_by_a_timer_before_the_deadline():
    async def main() -> tuple[bool, datetime]:
        clock = VirtualClock(START)
        event = asyncio.Event()
        clock.call_at(START + timedelta(seconds=7), event.set)
        hit = await clock.wait_event(event, START + timedelta(seconds=10))
        return hit, clock.now()

    assert run_virtual(main) == (True, START + timedelta(seconds=7))


def test_wait_event_times_out_at_the_deadline():
    async def main() -> tuple[bool, datetime]:
        clock = VirtualClock(START)
        hit = await clock.wait_event(asyncio.Event(), START + timedelta(seconds=10))
        return hit, clock.now()

    assert run_virtual(main) == (False, START + timedelta(seconds=10))


def test_wait_event_with_past_deadline_returns_at_once():
    async def main() -> bool:
        clock = VirtualClock(START)
        return await clock.wait_event(asyncio.Event(), START - timedelta(seconds=1))

    assert run_virtual(main) is False


def test_timers_at_equal_times_fire_in_scheduling_order():
    async def main() -> list[int]:
        clock = VirtualClock(START)
        fired: list[int] = []
        at = START + timedelta(seconds=1)
        for i in range(5):
            clock.call_at(at, lambda i=i: fired.append(i))
        await clock.sleep_until(at + timedelta(seconds=1))
        return fired

    assert run_virtual(main) == [0, 1, 2, 3, 4]


def test_concurrent_sleepers_wake_in_time_order():
    async def main() -> list[str]:
        clock = VirtualClock(START)
        order: list[str] = []

        async def sleeper(name: str, seconds: int) -> None:
            await clock.sleep_until(START + timedelta(seconds=seconds))
            order.append(name)

        await asyncio.gather(sleeper("late", 30), sleeper("early", 10), sleeper("mid", 20))
        return order

    assert run_virtual(main) == ["early", "mid", "late"]


def test_virtual_clock_refuses_a_real_loop():
    async def main() -> None:
        VirtualClock(START).now()

    with pytest.raises(TypeError, match="VirtualTimeLoop"):
        asyncio.run(main())


def test_virtual_clock_needs_an_aware_start():
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(datetime(2018, 1, 2))  # noqa: DTZ001 - the point of the test


def test_real_clock_is_aware_and_moves_forward():
    async def main() -> tuple[datetime, datetime, bool]:
        clock = RealClock()
        first = clock.now()
        event = asyncio.Event()
        clock.call_at(first, event.set)
        hit = await clock.wait_event(event, first + timedelta(seconds=5))
        return first, clock.now(), hit

    first, second, hit = asyncio.run(main())
    assert first.tzinfo is not None
    assert second >= first
    assert hit is True


def test_real_io_that_is_ready_is_seen_before_virtual_time_moves_on():
    """A socket that is readable when the loop idles is served at the current instant, not after a jump."""

    async def main() -> tuple[datetime, datetime]:
        clock = VirtualClock(START)
        loop = asyncio.get_running_loop()
        reader, writer = socket.socketpair()
        seen: asyncio.Future[datetime] = loop.create_future()
        try:

            def on_readable() -> None:
                reader.recv(1)
                seen.set_result(clock.now())

            loop.add_reader(reader, on_readable)
            writer.send(b"x")
            sleeper = asyncio.ensure_future(clock.sleep_until(START + timedelta(hours=1)))
            at = await seen
            await sleeper
            return at, clock.now()
        finally:
            loop.remove_reader(reader)
            reader.close()
            writer.close()

    seen_at, ended_at = run_virtual(main)
    assert seen_at == START
    assert ended_at == START + timedelta(hours=1)


def test_a_wait_on_a_thread_with_no_timer_pending_ends_at_the_same_virtual_instant():
    """With nothing virtual left to happen, the loop waits for the real world; virtual time does not move."""

    def slow_work() -> str:
        time.sleep(0.05)  # real time passes in the thread; virtual time must not
        return "done"

    async def main() -> tuple[str, datetime]:
        clock = VirtualClock(START)
        result = await asyncio.get_running_loop().run_in_executor(None, slow_work)
        return result, clock.now()

    result, now = run_virtual(main)
    assert (result, now) == ("done", START)
