"""A client-side token bucket so that the adapter stays under Alpaca's request rate (200 per minute).

Time comes from the injected `Clock`; waiting is `clock.sleep_until`, so the limiter is exact under a virtual
clock and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta

from repeg.brokers.pacing import paced
from repeg.engine.clock import Clock
from repeg.errors import RateLimitedError


class TokenBucket:
    """At most `rate_per_minute` acquisitions in any 60 s window, up to `burst` of them at once.

    The bucket starts full with `burst` tokens and refills at `rate_per_minute - burst` per minute, so a full
    burst plus a minute of refill is exactly `rate_per_minute` (refilling at the full rate would let
    `rate_per_minute + burst` through in the first minute, over Alpaca's limit). `acquire` takes one token,
    waiting if needed. Waiters are served in arrival order (one lock), so a burst of callers cannot starve an
    early one.
    """

    def __init__(self, clock: Clock, rate_per_minute: float = 200.0, burst: int = 10) -> None:
        if rate_per_minute <= 0:
            raise ValueError(f"rate_per_minute must be > 0, got {rate_per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        if burst >= rate_per_minute:
            raise ValueError(f"burst must be under rate_per_minute ({rate_per_minute}), got {burst}")
        self._clock = clock
        self._per_second = (rate_per_minute - burst) / 60.0
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated: datetime | None = None
        self._hold_until: datetime | None = None
        #: While a graceful stop is under way (`bounded`): no acquisition waits for a rate hold (a 429's reset) past
        #: it; one that would raises `RateLimitedError`. The bucket's own pacing is still waited out.
        self._deadline: datetime | None = None
        self._lock = asyncio.Lock()
        self.waited = 0

    @property
    def deadline(self) -> datetime | None:
        return self._deadline

    @contextlib.contextmanager
    def bounded(self, deadline: datetime) -> Iterator[None]:
        """Within the block, no rate hold is waited for past `deadline` (or past an earlier one already set); on
        exit the deadline is what it was before, so that the bucket's next user waits for rate resets again."""
        before = self._deadline
        self._deadline = deadline if before is None else min(before, deadline)
        try:
            yield
        finally:
            self._deadline = before

    def _refill(self, now: datetime) -> None:
        if self._updated is not None:
            elapsed = (now - self._updated).total_seconds()
            self._tokens = min(self._burst, self._tokens + elapsed * self._per_second)
        self._updated = now

    def hold_until(self, when: datetime) -> None:
        """Let no acquisition through before `when`: the broker said the account's rate window resets then."""
        if self._hold_until is None or when > self._hold_until:
            self._hold_until = when

    def free_by(self, when: datetime) -> bool:
        """True when no rate hold lasts past `when`."""
        return self._hold_until is None or self._hold_until <= when

    async def acquire(self) -> None:
        """Take one token. The waits for a turn (behind earlier callers, then for a token) are the client's own
        pacing (`paced`: a caller timing the broker's answer does not count them); waiting out a rate hold is the
        broker's time (a caller queued behind one waiting it out waits its turn: at most the hold, a minute)."""
        with paced():
            await self._lock.acquire()
        try:
            if self._hold_until is not None and self._hold_until > self._clock.now():
                self._refuse_past_deadline(self._hold_until)
                await self._wait_until(self._hold_until)
            self._refill(self._clock.now())
            if self._tokens < 1.0:
                # The bucket's own pacing (under a second a token) is no refusal: waited out even past a deadline.
                wait = (1.0 - self._tokens) / self._per_second
                with paced():
                    await self._wait_until(self._clock.now() + timedelta(seconds=wait))
                self._refill(self._clock.now())
            self._tokens -= 1.0
        finally:
            self._lock.release()

    def _refuse_past_deadline(self, hold: datetime) -> None:
        if self._deadline is not None and hold > self._deadline:
            raise RateLimitedError(
                f"not sent: the rate limit holds requests until {hold.isoformat(timespec='seconds')}, "
                f"past the stop's deadline {self._deadline.isoformat(timespec='seconds')}"
            )

    async def _wait_until(self, when: datetime) -> None:
        self.waited += 1
        await self._clock.sleep_until(when)
