"""The remote simulator server: isolated simulated brokers, one per session name, behind the loopback wire.

It persists nothing: its state survives a crash of `repeg run` only because it lives in another process. Each
session is created on its first request by a `SessionFactory` (the default one builds H1's simulator on a
synthetic tape that starts now and runs in real time), so one server hosts many independent crash cases. A session
is kept for the server's life, never dropped (a crashed run's orders live on in it, for its resume), so a server
holds at most `max_sessions` of them (`DEFAULT_MAX_SESSIONS`, or `--max-sessions`): a request naming a new session
past the limit is refused on the wire (a `BrokerError` saying so), and the sessions held are served as before.

Run it as `python -m repeg.brokers.remote SPEC.json --port-file PATH` (`__main__.py`); it binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from pydantic import TypeAdapter

from repeg.brokers.base import Broker
from repeg.brokers.remote.wire import MAX_LINE, answer_line, encode_error, parse_request
from repeg.domain.orders import BrokerOrder, OrderRequest, ReplaceRequest
from repeg.domain.quote import Quote
from repeg.domain.ticks import ZERO
from repeg.errors import BrokerError, RepegError
from repeg.market.base import QuoteFeed

log = structlog.get_logger(__name__)

_ORDERS = TypeAdapter(list[BrokerOrder])
_MAYBE_ORDER = TypeAdapter(BrokerOrder | None)
_QUOTES = TypeAdapter(dict[str, Quote | None])

#: Sessions a server holds unless told otherwise: many crash cases' worth, far from a default session's memory.
DEFAULT_MAX_SESSIONS = 64


@dataclass
class Session:
    broker: Broker
    feed: QuoteFeed
    #: Every order id the session's broker created, in creation order.
    order_ids: list[str] = field(default_factory=list)


SessionFactory = Callable[[str], Awaitable[Session]]
_Method = Callable[[Session, dict[str, object], str], Awaitable[str]]


def _arg(params: dict[str, object], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str):
        raise TypeError(f"parameter {name!r} must be a string, got {value!r}")
    return value


async def _submit(session: Session, _: dict[str, object], raw: str) -> str:
    order = await session.broker.submit_order(OrderRequest.model_validate_json(raw))
    session.order_ids.append(order.order_id)
    return order.model_dump_json()


async def _replace(session: Session, _: dict[str, object], raw: str) -> str:
    """Replace, never for more than the unfilled remainder of the order replaced.

    A client that polls can ask to replace an order for a quantity that a fill it has not seen yet made too
    large; capping at the broker keeps the replacement chain from over-filling (the client learns of the fill
    from the replaced order's final state, which `RemoteBroker.replace_order` reports).
    """
    request = ReplaceRequest.model_validate_json(raw)
    old = await session.broker.get_order(request.order_id)
    if ZERO < old.remaining_qty < request.qty:
        request = request.model_copy(update={"qty": old.remaining_qty})
    order = await session.broker.replace_order(request)
    session.order_ids.append(order.order_id)
    return order.model_dump_json()


async def _cancel(session: Session, params: dict[str, object], _: str) -> str:
    await session.broker.cancel_order(_arg(params, "order_id"))
    return "null"


async def _get(session: Session, params: dict[str, object], _: str) -> str:
    return (await session.broker.get_order(_arg(params, "order_id"))).model_dump_json()


async def _by_client_id(session: Session, params: dict[str, object], _: str) -> str:
    order = await session.broker.get_order_by_client_id(_arg(params, "client_order_id"))
    return _MAYBE_ORDER.dump_json(order).decode()


async def _open_orders(session: Session, _: dict[str, object], __: str) -> str:
    return _ORDERS.dump_json(await session.broker.list_open_orders()).decode()


async def _all_orders(session: Session, _: dict[str, object], __: str) -> str:
    orders = [await session.broker.get_order(order_id) for order_id in session.order_ids]
    return _ORDERS.dump_json(orders).decode()


async def _account(session: Session, _: dict[str, object], __: str) -> str:
    return (await session.broker.get_account()).model_dump_json()


async def _positions(session: Session, _: dict[str, object], __: str) -> str:
    positions = await session.broker.get_positions()
    return "[" + ",".join(p.model_dump_json() for p in positions) + "]"


async def _asset(session: Session, params: dict[str, object], _: str) -> str:
    return (await session.broker.get_asset(_arg(params, "symbol"))).model_dump_json()


async def _quotes(session: Session, params: dict[str, object], _: str) -> str:
    symbols = params.get("symbols")
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        raise TypeError(f"parameter 'symbols' must be a list of strings, got {symbols!r}")
    return _QUOTES.dump_json({s: session.feed.latest(s) for s in symbols}).decode()


METHODS: dict[str, _Method] = {
    "submit_order": _submit,
    "replace_order": _replace,
    "cancel_order": _cancel,
    "get_order": _get,
    "get_order_by_client_id": _by_client_id,
    "list_open_orders": _open_orders,
    "all_orders": _all_orders,
    "get_account": _account,
    "get_positions": _positions,
    "get_asset": _asset,
    "quotes": _quotes,
}


def _params(raw: str) -> dict[str, object]:
    try:
        params = json.loads(raw)
    except RecursionError as exc:  # nested deeper than the parser's stack: malformed like any other bad JSON
        raise ValueError("params nested too deeply") from exc
    return params if isinstance(params, dict) else {}


def _method(name: str) -> _Method:
    method = METHODS.get(name)
    if method is None:
        raise ValueError(f"unknown method {name!r}")
    return method


class SimServer:
    """Serves sessions on 127.0.0.1; each connection's requests are answered in order."""

    def __init__(
        self, factory: SessionFactory, max_line: int = MAX_LINE, max_sessions: int = DEFAULT_MAX_SESSIONS
    ) -> None:
        self._factory = factory
        #: Longest request line read; a longer one is skipped to its end and refused.
        self._max_line = max_line
        #: Most sessions held (each is kept for the server's life): a new one past it is refused.
        self._max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}
        self._creating = asyncio.Lock()
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port, limit=self._max_line)
        return int(self._server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        if self._server is None:
            raise RuntimeError("SimServer.start() first")
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def session(self, name: str) -> Session:
        async with self._creating:
            if name not in self._sessions:
                self._refuse_past_the_limit(name)
                self._sessions[name] = await self._factory(name)
                log.info("sim_session_created", session=name)
            return self._sessions[name]

    def _refuse_past_the_limit(self, name: str) -> None:
        if len(self._sessions) >= self._max_sessions:
            log.warning("sim_session_refused", session=name, limit=self._max_sessions)
            raise BrokerError(
                f"new session {name!r} refused: the server holds {self._max_sessions} sessions, its limit"
                " (--max-sessions), and drops none (a crashed run's orders live on in its session): use a session"
                " it holds, or start the server again, with a larger --max-sessions if need be"
            )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (line := await _next_line(reader)) != b"":
                writer.write(await self._answer(line) if line is not None else self._too_long())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client died (the crash test kills it); its session lives on
        finally:
            writer.close()

    def _too_long(self) -> bytes:
        return answer_line(False, _bad_request(f"request line longer than {self._max_line} bytes"))

    async def _answer(self, line: bytes) -> bytes:
        try:
            method_name, session_name, raw = parse_request(line)
            method = _method(method_name)
            params = _params(raw)
            session = await self.session(session_name)
            return answer_line(True, await method(session, params, raw))
        except RepegError as exc:
            return answer_line(False, encode_error(exc))
        except (ValueError, TypeError) as exc:
            return answer_line(False, _bad_request(str(exc)))


def _bad_request(reason: str) -> str:
    return json.dumps({"type": "BrokerError", "message": f"bad request: {reason}"})


async def _next_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next request line (the last may lack its line feed), b"" at the end of the stream, or None for a line
    over the reader's limit, which is read to its end in limit-sized pieces and dropped (memory stays bounded,
    and the next line is read whole)."""
    too_long = False
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            line = exc.partial
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)
            too_long = True
            continue
        return None if too_long else line
