"""`AlpacaRest`: the adapter's REST machinery (every request's rate limit, retries and a graceful stop's bounds).

Every REST call runs off the event loop (the SDK is synchronous), passes the client-side rate limiter, has an HTTP
timeout, and is retried by us (never by the SDK) on 429, 5xx and timeouts with bounded, jittered backoff; a 429's
announced reset holds every request until then. During a graceful stop (`with stopping():`) no request waits for a
rate reset, or is retried, past one rate window; after it, requests are retried and wait as before.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import TypeVar

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.models import Asset as SdkAsset

from repeg.brokers.alpaca.limiter import TokenBucket
from repeg.brokers.alpaca.mapping import (
    map_api_error,
    map_asset_error,
    map_transport_error,
    rate_limit_reset,
    to_asset,
)
from repeg.brokers.alpaca.retry import Backoff, with_retries
from repeg.brokers.alpaca.settings import AlpacaSettings
from repeg.domain.account import Asset
from repeg.engine.clock import Clock
from repeg.errors import BrokerError, BrokerUnavailableError

T = TypeVar("T")

#: The longest wait for a rate window's reset announced by a 429 (Alpaca's window is one minute).
_MAX_RATE_HOLD = timedelta(seconds=60)


class AlpacaRest:
    """Rate-limited, retried REST requests of one adapter over its `TradingClient`."""

    def __init__(self, client: TradingClient, clock: Clock, settings: AlpacaSettings) -> None:
        self._client = client
        self._clock = clock
        self._limiter = TokenBucket(clock, settings.requests_per_minute, settings.burst)
        self.backoff = Backoff(settings.retry)

    @property
    def stop_deadline(self) -> datetime | None:
        """The deadline of the graceful stop under way, None when none is."""
        return self._limiter.deadline

    def stopping(self) -> AbstractContextManager[None]:
        """A run is stopping (Ctrl-C, SIGTERM) within the block: no request waits for a rate reset, or is retried,
        past one rate window (`_MAX_RATE_HOLD`) from its start; past it a request fails at once with
        `RateLimitedError`, not sent. The bound is the stop's: on exit the adapter retries and waits as before, for
        the next run or a resume on it. Called without `with`, it bounds nothing, and says so (`_StopBound`)."""
        return _StopBound(self._limiter.bounded(self._clock.now() + _MAX_RATE_HOLD))

    async def send(
        self,
        op: str,
        call: Callable[[], T],
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
    ) -> T:
        """One rate-limited HTTP call off the loop; SDK and transport errors become our typed errors, not chained to
        them (their frames hold the request's headers, the secret among them, in their locals)."""
        await self._limiter.acquire()
        try:
            return await asyncio.to_thread(call)
        except APIError as exc:
            self._hold_for_reset(exc)
            raise map_api_error(exc, op, order_id=order_id, client_order_id=client_order_id) from None
        except requests.RequestException as exc:
            raise map_transport_error(exc, op) from None
        except ValueError as exc:  # alpaca-py could not validate the answer (pydantic's ValidationError)
            raise BrokerError(f"{op}: answer repeg cannot read ({type(exc).__name__})") from exc

    async def read(self, op: str, call: Callable[[], T], *, order_id: str | None = None) -> T:
        """An idempotent request (GET, DELETE): retried as is on 429, 5xx and timeouts."""
        return await with_retries(
            op, lambda: self.send(op, call, order_id=order_id), self.backoff, self._clock, self.may_retry
        )

    async def asset_once(self, symbol: str) -> Asset:
        await self._limiter.acquire()
        try:
            sdk_asset = await asyncio.to_thread(self._client.get_asset, symbol)
        except APIError as exc:
            self._hold_for_reset(exc)
            raise map_asset_error(exc, symbol) from None
        except requests.RequestException as exc:
            raise map_transport_error(exc, "get_asset") from None
        except ValueError as exc:  # alpaca-py could not validate the answer (pydantic's ValidationError)
            raise BrokerError(f"get_asset {symbol}: answer repeg cannot read ({type(exc).__name__})") from exc
        if not isinstance(sdk_asset, SdkAsset):
            raise BrokerError("get_asset: unexpected answer")
        return to_asset(sdk_asset)

    def may_retry(self, _exc: BrokerUnavailableError) -> bool:
        """Always, unless the run is stopping: then only before its deadline, and only if no rate hold outlasts it."""
        deadline = self.stop_deadline
        return deadline is None or (self._clock.now() < deadline and self._limiter.free_by(deadline))

    def _hold_for_reset(self, exc: APIError) -> None:
        """After a 429, send nothing more until the rate window resets (every request would be refused until
        then, and each refused retry would spend an attempt): at most `_MAX_RATE_HOLD` from now."""
        reset = rate_limit_reset(exc, self._clock.now())
        if reset is not None:
            self._limiter.hold_until(min(reset, self._clock.now() + _MAX_RATE_HOLD))


class _StopBound(AbstractContextManager[None]):
    """A graceful stop's bound, in force only within `with`. `stopping()` called bare (its form before it became a
    context manager) would leave every wait of the stop unbounded without a word: dropped never entered, it warns
    (`RuntimeWarning`, as a coroutine never awaited does)."""

    def __init__(self, bound: AbstractContextManager[None]) -> None:
        self._bound = bound
        self._entered = False

    def __enter__(self) -> None:
        self._entered = True
        self._bound.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return self._bound.__exit__(kind, exc, tb)

    def __del__(self) -> None:
        if not self._entered:
            warnings.warn(
                "AlpacaBroker.stopping() was never entered: the stop's bounds hold only within "
                "`with broker.stopping():`",
                RuntimeWarning,
                stacklevel=1,
            )
