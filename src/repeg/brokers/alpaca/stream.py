"""The `trade_updates` websocket consumer: reconnects with backoff and jitter, and tells the adapter when to
reconcile.

We speak the stream protocol directly (the same frames as the SDK's `TradingStream`) instead of running the
SDK's stream, because that one owns its own loop and reconnect policy; its fast reconnects are the known cause
of reconnect storms that end in HTTP 429. Here consecutive failures back off exponentially (jittered, capped),
and the failure count resets only after a connection has stayed up for `stable_after` seconds, so a server that
accepts and immediately drops a connection cannot drive a storm either.

Guarantees to the adapter: `on_update` gets every `trade_updates` payload in arrival order; `on_reconnect` is
awaited after every successful re-connection (not the first), before any message of the new connection, so the
adapter can poll what it missed during the gap.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog
from pydantic import BaseModel, ConfigDict, Field
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from repeg.brokers.alpaca.credentials import AlpacaCredentials
from repeg.brokers.alpaca.mapping import keys_refused_at
from repeg.brokers.alpaca.retry import Backoff, BackoffPolicy, sleep_seconds
from repeg.config import Seconds
from repeg.engine.clock import Clock
from repeg.errors import AuthenticationError, BrokerError

log = structlog.get_logger(__name__)
#: The websockets library logs every frame at DEBUG, the auth frame with the secret included: its logger for
#: our connections never goes below INFO, whatever the application's log level.
_WS_LOG = logging.getLogger(f"{__name__}.websocket")
_WS_LOG.setLevel(logging.INFO)

UpdateHandler = Callable[[dict[str, object]], None]
ReconnectHandler = Callable[[], Awaitable[None]]


class StreamSettings(BaseModel):
    """Timing of the trade-update stream and of the reconciliation that covers for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Poll working orders once no update has arrived for this long.
    silence_after: Seconds = Field(default=60.0, gt=0)
    #: ...and then every this many seconds until the stream speaks again.
    poll_every: Seconds = Field(default=5.0, gt=0)
    open_timeout: Seconds = Field(default=10.0, gt=0)
    stable_after: Seconds = Field(default=30.0, ge=0)
    reconnect: BackoffPolicy = BackoffPolicy(max_attempts=1_000_000, base_delay=1.0, max_delay=30.0, seed=0)


class StreamProtocolError(Exception):
    """The server answered the handshake with something unexpected; treated as a dropped connection."""


def _decode(raw: str | bytes) -> object:
    """One JSON frame; an unreadable one is a `StreamProtocolError` (the connection is then re-made)."""
    try:
        return json.loads(raw)
    except ValueError:
        raise StreamProtocolError("trade stream: a frame is not JSON") from None


class TradeUpdateStream:
    def __init__(
        self,
        url: str,
        credentials: AlpacaCredentials,
        clock: Clock,
        *,
        settings: StreamSettings,
        on_update: UpdateHandler,
        on_reconnect: ReconnectHandler,
    ) -> None:
        self._url = url
        self._credentials = credentials
        self._clock = clock
        self._settings = settings
        self._on_update = on_update
        self._on_reconnect = on_reconnect
        self._backoff = Backoff(settings.reconnect)
        self._ws: ClientConnection | None = None
        self._closed = False
        self.connected = asyncio.Event()
        self.connections = 0
        self.last_message_at: datetime = clock.now()
        self.error: AuthenticationError | None = None

    async def run(self) -> None:
        """Connect, listen, and reconnect until `close()`; stops only on refused credentials."""
        failures = 0
        while not self._closed:
            started = self._clock.now()
            try:
                await self._session()
            except AuthenticationError as exc:
                self.error = exc
                self.connected.set()  # wake waiters: they check `error`
                self._log_refused_mid_run(exc)
                return
            except (OSError, TimeoutError, WebSocketException, StreamProtocolError) as exc:
                log.warning("trade_stream_lost", error=type(exc).__name__)
            except Exception as exc:
                # Not one the stream expects (a defect, a frame `json` cannot decode): said with its traceback,
                # and the stream is re-made with backoff rather than left dead for the rest of the run.
                log.exception("trade_stream_failed", error=type(exc).__name__, url=self._url)
            self.connected.clear()
            self._ws = None
            if self._closed:
                return
            up_for = (self._clock.now() - started).total_seconds()
            failures = 1 if up_for >= self._settings.stable_after else failures + 1
            await sleep_seconds(self._clock, self._backoff.delay(failures))

    def _log_refused_mid_run(self, exc: AuthenticationError) -> None:
        """A refusal at the first connection is `start()`'s to raise; on a reconnect nobody waits for it: the stream
        is gone for the rest of the run (updates now come only from the silence watchdog's polls), said at error."""
        if self.connections:
            log.error(
                "trade_stream_refused",
                detail=exc.broker_message,
                poll_after_silence_s=self._settings.silence_after,
            )

    async def _session(self) -> None:
        try:
            ws = await connect(
                self._url, open_timeout=self._settings.open_timeout, max_size=2**24, logger=_WS_LOG
            )
        except InvalidStatus as exc:
            raise StreamProtocolError(f"HTTP {exc.response.status_code}") from None
        async with ws:
            self._ws = ws
            await self._handshake(ws)
            self.connections += 1
            if self.connections > 1:
                await self._reconcile()
            self.connected.set()
            log.info("trade_stream_listening", connections=self.connections)
            async for raw in ws:
                self._dispatch(raw)

    async def _reconcile(self) -> None:
        """Let the adapter poll what the gap may have hidden; if the broker cannot answer now, the silence
        watchdog polls again later, so the failure is logged and the stream carries on. So does a failure the poll
        does not expect (a defect, an answer nested too deep to decode): it is the poll's, not the connection's,
        which dropped and re-made would only poll and fail again, for good. It is logged with its traceback, at
        error, as a failing update handler's is."""
        try:
            await self._on_reconnect()
        except BrokerError as exc:
            log.warning("trade_stream_reconcile_failed", error=type(exc).__name__, detail=str(exc))
        except Exception as exc:
            log.exception("trade_stream_reconcile_failed", error=type(exc).__name__)

    async def _handshake(self, ws: ClientConnection) -> None:
        await ws.send(self._auth_message())
        reply = await self._expect(ws, "authorization")
        if reply.get("status") != "authorized":
            raise AuthenticationError(
                f"trade stream: credentials refused{keys_refused_at(self._url)}",
                broker_message=str(reply.get("status")),
            )
        await ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        await self._expect(ws, "listening")

    def _auth_message(self) -> str:
        """The authenticate frame. Built here, never in a local of `_handshake`: a refusal raised there keeps that
        frame in its traceback, which a logger rendering frames' locals (structlog's rich tracebacks) would show."""
        auth = {
            "key_id": self._credentials.key_id,
            "secret_key": self._credentials.secret_key.get_secret_value(),
        }
        return json.dumps({"action": "authenticate", "data": auth})

    async def _expect(self, ws: ClientConnection, stream: str) -> dict[str, object]:
        raw = await asyncio.wait_for(ws.recv(), timeout=self._settings.open_timeout)
        message = _decode(raw)
        data = message.get("data") if isinstance(message, dict) else None
        if not isinstance(message, dict) or message.get("stream") != stream or not isinstance(data, dict):
            raise StreamProtocolError(f"expected stream {stream!r}")
        return data

    def _dispatch(self, raw: str | bytes) -> None:
        self.last_message_at = self._clock.now()
        message = _decode(raw)
        data = message.get("data") if isinstance(message, dict) else None
        if isinstance(message, dict) and message.get("stream") == "trade_updates" and isinstance(data, dict):
            try:
                self._on_update(data)
            except Exception:
                # A failing consumer must not take the stream down with it; the failure is logged (its traceback).
                log.exception("trade_update_handler_failed")

    def expect_updates(self) -> None:
        """Restart the silence timer: orders just changed, updates are due from now on."""
        self.last_message_at = max(self.last_message_at, self._clock.now())

    def silent_for(self) -> float:
        return (self._clock.now() - self.last_message_at).total_seconds()

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()


async def watch_silence(
    stream: TradeUpdateStream,
    settings: StreamSettings,
    clock: Clock,
    has_working_orders: Callable[[], bool],
    poll: Callable[[], Awaitable[None]],
) -> None:
    """While orders work and the stream has been silent for `silence_after`, poll every `poll_every` seconds.

    Runs until cancelled. A poll failure is logged and retried at the next tick (the stream may still deliver),
    one the poll does not expect (not a `BrokerError`) too, rather than end the watchdog (`_poll_once`).
    """
    told: type[Exception] | None = None
    while True:
        await sleep_seconds(clock, settings.poll_every)
        if has_working_orders() and stream.silent_for() >= settings.silence_after:
            log.info("trade_stream_silent_polling", silent_s=round(stream.silent_for(), 3))
            told = await _poll_once(poll, told)


async def _poll_once(
    poll: Callable[[], Awaitable[None]], told: type[Exception] | None
) -> type[Exception] | None:
    """One silence poll; returns the kind of unexpected failure whose traceback has been logged since the last poll
    that succeeded (`told`, given the one before). A broker error is one warning line. An unexpected failure is
    logged at error with its traceback the first time; a repeat of it, one warning line as a broker error's: a
    defect failing every poll would otherwise log a traceback every `poll_every` for the rest of the run."""
    try:
        await poll()
    except BrokerError as exc:
        log.warning("trade_stream_poll_failed", error=type(exc).__name__, detail=str(exc))
        return told
    except Exception as exc:
        if type(exc) is told:
            log.warning("trade_stream_poll_failed", error=type(exc).__name__, repeated=True)
        else:
            log.exception("trade_stream_poll_failed", error=type(exc).__name__)
        return type(exc)
    return None
