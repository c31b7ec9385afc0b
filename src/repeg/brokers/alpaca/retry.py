"""Bounded exponential backoff with seeded jitter, for HTTP 429/5xx and for stream reconnects.

The SDK's own retry loop is switched off (its `_retry` is set to 0): our loop owns every retry, so that the
attempts are bounded, spaced by jittered exponential delays (no synchronized retry storms) and every submit
carries the caller's deterministic `client_order_id` from the first attempt.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, TypeVar

import structlog
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from repeg.config import Seconds
from repeg.engine.clock import Clock
from repeg.errors import BrokerUnavailableError

T = TypeVar("T")
log = structlog.get_logger(__name__)
#: Doublings counted at most: 2**64 times `base_delay` is past any sensible `max_delay` (and a float never overflows).
_MAX_DOUBLINGS = 64


def _count_not_a_boolean(value: object) -> object:
    """Refuse a boolean where a count is expected (pydantic would read TOML `true` as 1)."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "must be a number, not a boolean")
    return value


#: A count in the adapter's settings (attempts, requests, seed): a number, never a boolean.
Count = BeforeValidator(_count_not_a_boolean)


class BackoffPolicy(BaseModel):
    """Delay before retry n (1-based): `min(max_delay, base_delay * 2**(n-1))`, scaled by a jitter in [0.5, 1]."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: Annotated[int, Count] = Field(default=5, ge=1)
    base_delay: Seconds = Field(default=0.5, gt=0)
    max_delay: Seconds = Field(default=8.0, gt=0)
    seed: Annotated[int, Count] = 0


class Backoff:
    """The delays of one policy, drawn from its own seeded generator (deterministic for a given seed)."""

    def __init__(self, policy: BackoffPolicy) -> None:
        self.policy = policy
        self._rng = random.Random(policy.seed)

    def delay(self, retry: int) -> float:
        doublings = min(max(retry - 1, 0), _MAX_DOUBLINGS)  # `2.0 ** n` overflows a float past n = 1023
        ceiling = min(self.policy.max_delay, self.policy.base_delay * 2.0**doublings)
        return ceiling * (0.5 + 0.5 * self._rng.random())


async def sleep_seconds(clock: Clock, seconds: float) -> None:
    await clock.sleep_until(clock.now() + timedelta(seconds=seconds))


async def with_retries(
    op: str,
    call: Callable[[], Awaitable[T]],
    backoff: Backoff,
    clock: Clock,
    retry_if: Callable[[BrokerUnavailableError], bool] = lambda _exc: True,
) -> T:
    """Await `call()`; on `BrokerUnavailableError` (429, 5xx, timeout) retry up to `max_attempts` in all.

    The last error is re-raised unchanged (it keeps the broker's message and code).
    """
    attempt = 1
    while True:
        try:
            return await call()
        except BrokerUnavailableError as exc:
            if attempt >= backoff.policy.max_attempts or not retry_if(exc):
                raise
            delay = backoff.delay(attempt)
            log.warning(
                "broker_retry", op=op, attempt=attempt, delay_s=round(delay, 3), error=type(exc).__name__
            )
            attempt += 1
            await sleep_seconds(clock, delay)
