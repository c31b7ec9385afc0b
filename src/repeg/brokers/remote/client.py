"""`RemoteBroker` and `RemoteFeed`: the `Broker` and `QuoteFeed` ports over the loopback wire (`wire.py`).

A URL names the server and the session: `sim://127.0.0.1:PORT/SESSION`. The remote simulator does not push
updates (`pushes_updates` is False): the engine polls `get_order`, as it would for any broker without a stream.
Requests are serialised on one connection; a lost connection, a connection not made or an answer not come within
the timeout (30 s by default, each), is an error, never retried silently, because a submit whose answer was lost
must go through the engine's idempotent re-submission, not a blind retry here. A session outlives the process, so
the client checks the orders it looks up by client order id as the Alpaca adapter does (`SentOrders`, `ExpectsSent`):
another run's order under one of the run's ids is refused (`ClientOrderIdConflictError`), never adopted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Final, NamedTuple, TypeVar

import structlog
from pydantic import BaseModel, TypeAdapter

from repeg.brokers.base import Sent, SentOrders, Unsubscribe, UpdateSink, subscribed
from repeg.brokers.remote.wire import MAX_LINE, decode_error, parse_answer, request_line
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import (
    BrokerOrder,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    ReplaceRequest,
)
from repeg.domain.quote import Quote
from repeg.engine.clock import Clock
from repeg.errors import BrokerError, BrokerUnavailableError, ConfigError

M = TypeVar("M", bound=BaseModel)
log = structlog.get_logger(__name__)

_ORDERS = TypeAdapter(list[BrokerOrder])
_POSITIONS = TypeAdapter(list[Position])
_MAYBE_ORDER = TypeAdapter(BrokerOrder | None)
_QUOTES = TypeAdapter(dict[str, Quote | None])
_EVENTS: dict[OrderStatus, OrderEvent] = {
    OrderStatus.REPLACED: OrderEvent.REPLACED,
    OrderStatus.PENDING_REPLACE: OrderEvent.PENDING_REPLACE,
    OrderStatus.FILLED: OrderEvent.FILL,
    OrderStatus.PARTIALLY_FILLED: OrderEvent.PARTIAL_FILL,
    OrderStatus.CANCELED: OrderEvent.CANCELED,
}


class SimAddress(NamedTuple):
    host: str
    port: int
    session: str


#: The hosts a URL may name: the server listens on 127.0.0.1 only, so the IPv6 loopback ([::1]) never reaches it.
_HOSTS: Final = ("127.0.0.1", "localhost")


def parse_sim_url(url: str) -> SimAddress:
    """`sim://HOST:PORT/SESSION` -> its parts; only the hosts the server listens on are accepted."""
    rest = url.removeprefix("sim://")
    hostport, _, session = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    # ASCII digits only: "²" passes `isdigit` but not `int`, and a port is never written in other scripts.
    usable = (
        port.isascii()
        and port.isdigit()
        and 0 < int(port) < 65536
        and not any(c in session for c in "\t\r\n")
    )
    if rest == url or not session or not usable or host not in _HOSTS:
        raise ConfigError(
            "--sim-url",
            url,
            f"must look like sim://127.0.0.1:PORT/SESSION (host {host!r}: the remote simulator listens on "
            "127.0.0.1 only, reached as 127.0.0.1 or localhost)",
        )
    return SimAddress(host, int(port), session)


#: How long a call waits for the server's answer before its outcome is declared unknown (and, before it is sent,
#: for its connection, if one must be opened).
DEFAULT_TIMEOUT: Final = timedelta(seconds=30)


class _Connection:
    """One connection to the server; requests and answers strictly alternate."""

    def __init__(self, address: SimAddress, url: str = "", timeout: timedelta = DEFAULT_TIMEOUT) -> None:
        self._address = address
        #: Longest wait for an answer, and for a connection: a stopped or wedged server must not hold the run past its
        #: deadlines.
        self._timeout = timeout
        #: The address as the user wrote it, for messages.
        self._url = url or f"sim://{address.host}:{address.port}/{address.session}"
        self._lock = asyncio.Lock()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(self, method: str, params: str = "{}") -> str:
        request = request_line(method, self._address.session, params)
        async with self._lock:
            reader, writer = await self._open()
            try:
                async with asyncio.timeout(self._timeout.total_seconds()):
                    writer.write(request)
                    await writer.drain()
                    line = await reader.readline()
            except TimeoutError as exc:  # its answer may still come: read as the next request's, were it kept
                self._drop(writer)
                waited = f"{self._timeout.total_seconds():g} s"
                raise BrokerUnavailableError(f"remote simulator {method}: no answer within {waited}") from exc
            except ValueError as exc:  # readline: over the limit (its rest would be read as the next answer)
                self._drop(writer)
                raise BrokerUnavailableError(
                    f"remote simulator {method}: answer longer than {MAX_LINE} bytes"
                ) from exc
            except OSError as exc:
                self._drop(writer)
                raise BrokerUnavailableError(f"remote simulator {method}: {exc}") from exc
            except BaseException:
                # Abandoned mid-flight (cancelled): its answer may still arrive and would be read as the next
                # request's answer, so this connection is closed; the next call opens a fresh one.
                self._drop(writer)
                raise
        if not line.endswith(b"\n"):  # nothing, or half an answer: the server died while answering
            self._drop(writer)
            raise BrokerUnavailableError(f"remote simulator closed the connection during {method}")
        ok, body = parse_answer(line)
        if not ok:
            raise decode_error(body)
        return body

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self._streams = None
        writer.close()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            try:  # bounded too: a wedged server's full accept queue drops the SYNs, and connect waits minutes
                async with asyncio.timeout(self._timeout.total_seconds()):
                    self._streams = await asyncio.open_connection(
                        self._address.host, self._address.port, limit=MAX_LINE
                    )
            except TimeoutError as exc:  # an OSError too: caught first, for a message that says what happened
                waited = f"no connection within {self._timeout.total_seconds():g} s"
                raise BrokerUnavailableError(
                    f"remote simulator at {self._url} unreachable: {waited}"
                ) from exc
            except OSError as exc:
                raise BrokerUnavailableError(f"remote simulator at {self._url} unreachable: {exc}") from exc
        return self._streams

    async def close(self) -> None:
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            writer.close()
            await writer.wait_closed()


def _params(**values: str) -> str:
    return json.dumps(values)


class RemoteBroker:
    """The `Broker` port on a remote simulator session."""

    def __init__(self, url: str, timeout: timedelta = DEFAULT_TIMEOUT) -> None:
        self._address = parse_sim_url(url)
        self._conn = _Connection(self._address, url, timeout)
        self._sinks: list[UpdateSink] = []
        #: What this process sent under each client order id (its session outlives it: another run's order may
        #: hold one), checked by each lookup, as the Alpaca adapter checks its own.
        self._sent = SentOrders()

    @property
    def name(self) -> str:
        return "sim-remote"

    @property
    def supports_replace(self) -> bool:
        return True

    @property
    def pushes_updates(self) -> bool:
        return False

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        self._sent.claim(request.client_order_id, Sent.submit(request))
        return BrokerOrder.model_validate_json(
            await self._conn.call("submit_order", request.model_dump_json())
        )

    async def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        """Replace; then report the replaced order's final state (its last fills) to the update sinks.

        Without a push stream, the replaced order's last fills would otherwise be learned only at the engine's
        next poll (which asks about every order of the leg not yet known closed); reporting them at once keeps
        the leg's filled quantity current for the next decision. Delivered from a loop callback, after this call
        returns. The order replaced is read first: what the replacement is sent as (its symbol, side, type).
        """
        current = await self.get_order(request.order_id)
        self._sent.claim(request.client_order_id, Sent.replacing(current, request.limit_price))
        new = BrokerOrder.model_validate_json(
            await self._conn.call("replace_order", request.model_dump_json())
        )
        if self._sinks:
            old = await self.get_order(request.order_id)
            update = OrderUpdate(event=_EVENTS.get(old.status, OrderEvent.NEW), order=old, ts=old.updated_at)
            asyncio.get_running_loop().call_soon(self._deliver, update)
        return new

    def _deliver(self, update: OrderUpdate) -> None:
        for sink in self._sinks:
            sink(update)

    async def cancel_order(self, order_id: str) -> None:
        await self._conn.call("cancel_order", _params(order_id=order_id))

    async def get_order(self, order_id: str) -> BrokerOrder:
        return BrokerOrder.model_validate_json(await self._conn.call("get_order", _params(order_id=order_id)))

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        """The order under `client_order_id`; `ClientOrderIdConflictError` for one that is not what was sent under
        it (by this process, or by the run's earlier one as its journal says: `expect`): another run's."""
        body = await self._conn.call("get_order_by_client_id", _params(client_order_id=client_order_id))
        order = _MAYBE_ORDER.validate_json(body)
        if order is not None:
            self._sent.refuse_foreign(order)
        return order

    def expect(self, client_order_id: str, sent: Sent) -> None:
        """`ExpectsSent`: what a resumed run's journal says was sent under `client_order_id`."""
        self._sent.expect(client_order_id, sent)

    async def list_open_orders(self) -> list[BrokerOrder]:
        return _ORDERS.validate_json(await self._conn.call("list_open_orders"))

    async def all_orders(self) -> list[BrokerOrder]:
        """Every order the session ever created, in creation order (for tests and audits)."""
        return _ORDERS.validate_json(await self._conn.call("all_orders"))

    async def get_account(self) -> Account:
        return Account.model_validate_json(await self._conn.call("get_account"))

    async def get_positions(self) -> list[Position]:
        return _POSITIONS.validate_json(await self._conn.call("get_positions"))

    async def get_asset(self, symbol: str) -> Asset:
        return Asset.model_validate_json(await self._conn.call("get_asset", _params(symbol=symbol)))

    def subscribe_updates(self, sink: UpdateSink) -> Unsubscribe:
        """No push stream (the engine polls); sinks hear only of orders replaced through this client."""
        return subscribed(self._sinks, sink)

    async def quotes(self, symbols: Iterable[str]) -> dict[str, Quote | None]:
        return _QUOTES.validate_json(await self._conn.call("quotes", json.dumps({"symbols": list(symbols)})))

    async def close(self) -> None:
        await self._conn.close()


class RemoteFeed:
    """The `QuoteFeed` port on the remote simulator: the session's current quotes, polled every `interval`."""

    def __init__(
        self, broker: RemoteBroker, clock: Clock, interval: timedelta = timedelta(milliseconds=100)
    ) -> None:
        self._broker = broker
        self._clock = clock
        self._interval = interval
        self._symbols: set[str] = set()
        self._latest: dict[str, Quote] = {}
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, symbols: Iterable[str]) -> None:
        self._symbols.update(symbols)
        await self._refresh()
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name="remote-feed")

    def latest(self, symbol: str) -> Quote | None:
        return self._latest.get(symbol)

    async def _refresh(self) -> None:
        for symbol, quote in (await self._broker.quotes(sorted(self._symbols))).items():
            if quote is not None:
                self._latest[symbol] = quote

    async def _poll(self) -> None:
        """Refresh every `interval` until closed; a failed poll is logged and the next one tried (the quotes
        held meanwhile age, and the core's quote checks refuse them once stale)."""
        while True:
            await self._clock.sleep_until(self._clock.now() + self._interval)
            try:
                await self._refresh()
            except BrokerError as exc:
                log.warning("remote_feed_poll_failed", error=type(exc).__name__, detail=str(exc))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
