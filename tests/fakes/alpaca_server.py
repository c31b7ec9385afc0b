"""A loopback fake of Alpaca's Trading and Market Data APIs (HTTP and both websockets) for the adapter tests.

The real `alpaca-py` clients are pointed at it with `url_override`. Responses are shaped like Alpaca's published
OpenAPI schemas (a test validates them against ../shared/alpaca); nothing here reads ../shared at runtime.
Fault injection: scripted HTTP failures (429 storms, 5xx), lost responses (the order is created, the answer
never arrives), a trade stream that drops (and refuses reconnects for a while) or goes silent, a closed market.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import msgpack
from aiohttp import WSMsgType, web
from tests.fakes.alpaca_matching import ZERO, FakeBook, FakeOrder, FakeQuote, OrderStateError, iso, plain

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    """Answer `status` (or, with `lose`, run the request and never answer in time) for matching requests."""

    method: str
    path: str
    times: int
    status: int = 500
    lose: bool = False
    code: int | None = None
    #: Answer 200 with this text as the body instead (an answer the client cannot read)...
    body: str | None = None
    #: ...after the request took effect (an order submitted), when True.
    reached: bool = False


@dataclass
class FakeAlpacaServer:
    key_id: str = "PKFAKEKEYID"
    secret_key: str = "fake-secret-do-not-leak-9f3a"
    book: FakeBook = field(default_factory=FakeBook)
    faults: list[Fault] = field(default_factory=list)
    #: Every request seen, as (method, path): lets tests count submits, polls and retries.
    requests: list[tuple[str, str]] = field(default_factory=list)
    #: When each of `requests` arrived (`time.monotonic()`): lets tests check the rate the client kept to.
    arrivals: list[float] = field(default_factory=list)
    lost_response_delay: float = 2.0
    trade_stream_muted: bool = False
    #: The trade stream answers `unauthorized` even to the right keys (REST still accepts them).
    trade_stream_refuses_auth: bool = False
    #: This many cancels are accepted (HTTP 204) and then refused by the stream: `pending_cancel`, then
    #: `order_cancel_rejected` with the order back in its status (as for Alpaca's TOO_LATE_TO_CANCEL).
    reject_cancels: int = 0
    #: Until this wall-clock time (epoch seconds) every REST request is answered 429, as when the account's
    #: per-minute budget is spent; the answers carry `X-RateLimit-Reset` (the epoch second the window resets).
    rate_limited_until: float = 0.0
    #: Symbols the latest-quote endpoint refuses (HTTP 400 `invalid symbol`), as Alpaca's stock data API does a
    #: crypto or option symbol: a request naming one is refused whole; a stream subscription naming one is
    #: answered with error 400 `invalid syntax`.
    invalid_quote_symbols: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._trade_sockets: list[web.WebSocketResponse] = []
        self._md_sockets: dict[web.WebSocketResponse, set[str]] = {}
        #: Market-data sockets that asked for MessagePack (`Content-Type: application/msgpack` on the handshake);
        #: the others get JSON text frames, as from Alpaca.
        self._md_msgpack: set[web.WebSocketResponse] = set()
        self._stream_refused_until = 0.0
        self._data_refused_until = 0.0
        self.port = 0
        self.trade_connections = 0
        self.book.listeners.append(self._push_trade_update)
        self.book.quote_listeners.append(self._push_quote)

    # --- lifecycle ----------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def trade_stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    def data_stream_url(self, feed: str = "iex") -> str:
        return f"ws://127.0.0.1:{self.port}/v2/{feed}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._auth_and_faults])
        app.add_routes(
            [
                web.post("/v2/orders", self._post_order),
                web.get("/v2/orders", self._list_orders),
                web.get("/v2/orders:by_client_order_id", self._order_by_client_id),
                web.get("/v2/orders/{order_id}", self._get_order),
                web.patch("/v2/orders/{order_id}", self._patch_order),
                web.delete("/v2/orders/{order_id}", self._delete_order),
                web.get("/v2/account", self._account),
                web.get("/v2/positions", self._positions),
                web.get("/v2/assets/{symbol}", self._asset),
                web.get("/v2/clock", self._clock),
                web.get("/v2/stocks/quotes/latest", self._latest_quotes),
                web.get("/stream", self._trade_stream),
                web.get("/v2/{feed}", self._data_stream),
            ]
        )
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for ws in [*self._trade_sockets, *self._md_sockets]:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- fault knobs --------------------------------------------------------------------------------------

    def fail(self, method: str, path: str, status: int, times: int = 1, code: int | None = None) -> None:
        self.faults.append(Fault(method, path, times, status=status, code=code))

    def garble(self, method: str, path: str, body: str, times: int = 1, *, reached: bool = False) -> None:
        """Answer matching requests 200 with `body` as it is (e.g. JSON nested too deep for the client to decode);
        with `reached`, once each request took effect (its order submitted, say)."""
        self.faults.append(Fault(method, path, times, status=200, body=body, reached=reached))

    def lose_response(self, method: str, path: str, times: int = 1) -> None:
        self.faults.append(Fault(method, path, times, lose=True))

    async def drop_trade_stream(self, refuse_for: float = 0.0) -> None:
        """Close every trade-update socket; refuse new ones for `refuse_for` seconds (fills meanwhile are missed)."""
        self._stream_refused_until = asyncio.get_running_loop().time() + refuse_for
        sockets, self._trade_sockets = self._trade_sockets, []
        for ws in sockets:
            await ws.close()

    async def drop_data_stream(self, refuse_for: float = 0.0) -> None:
        """Close every market-data socket; refuse new ones for `refuse_for` seconds."""
        self._data_refused_until = asyncio.get_running_loop().time() + refuse_for
        sockets = list(self._md_sockets)
        self._md_sockets.clear()
        for ws in sockets:
            await ws.close()

    def data_subscriptions(self) -> list[set[str]]:
        """Quote subscriptions of each connected, authenticated market-data socket."""
        return [set(symbols) for symbols in self._md_sockets.values()]

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p == path)

    # --- middleware ---------------------------------------------------------------------------------------

    @web.middleware
    async def _auth_and_faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        self.arrivals.append(time.monotonic())
        if request.path.startswith("/stream") or request.path in {"/v2/iex", "/v2/sip"}:
            return await handler(request)
        if (
            request.headers.get("APCA-API-KEY-ID") != self.key_id
            or request.headers.get("APCA-API-SECRET-KEY") != self.secret_key
        ):
            return _error(401, 40110000, "request is not authorized")
        if time.time() < self.rate_limited_until:
            reset = str(math.ceil(self.rate_limited_until))
            headers = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
            return _error(429, 42900000, "too many requests", headers)
        fault = self._take_fault(request.method, request.path)
        if fault is None:
            return await handler(request)
        return await self._faulted(request, handler, fault)

    async def _faulted(self, request: web.Request, handler: Handler, fault: Fault) -> web.StreamResponse:
        """The answer of a request `fault` matched: a body the client cannot read, a lost answer, or an error."""
        if fault.body is not None:
            if fault.reached:
                await handler(request)
            return web.Response(status=200, text=fault.body, content_type="application/json")
        if fault.lose:
            await handler(request)
            await asyncio.sleep(self.lost_response_delay)
            return _error(504, 50400000, "response lost")
        headers = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0"} if fault.status == 429 else None
        return _error(fault.status, fault.code or fault.status * 100000, "injected fault", headers)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and path.startswith(fault.path):
                fault.times -= 1
                return fault
        return None

    # --- orders -------------------------------------------------------------------------------------------

    async def _post_order(self, request: web.Request) -> web.Response:
        body = await request.json()
        client_id = body.get("client_order_id")
        if client_id in self.book.used_client_ids:
            return _error(422, 40010001, "client_order_id must be unique")
        error = self._check_order(body)
        if error is not None:
            return error
        return _json(self.book.submit(body).to_json())

    def _check_order(self, body: dict[str, object]) -> web.Response | None:
        symbol = str(body.get("symbol"))
        if symbol not in self.book.assets:
            return _error(422, 40010001, f'asset "{symbol}" not found')
        tradable, fractionable = self.book.assets[symbol]
        qty = Decimal(str(body.get("qty")))
        if not tradable:
            return _error(422, 40310000, f'asset "{symbol}" is not tradable')
        if not fractionable and qty != qty.to_integral_value():
            return _error(422, 40310000, f'asset "{symbol}" is not fractionable')
        limit = body.get("limit_price")
        if limit is not None:
            price = Decimal(str(limit))
            places = 2 if price >= 1 else 4
            if price != price.quantize(Decimal(1).scaleb(-places)):
                return _error(422, 42210000, "sub-penny increment does not fulfill minimum pricing criteria")
        return None

    async def _list_orders(self, request: web.Request) -> web.Response:
        """As Alpaca's: `status` (open), `after_order_id` (exclusive), `direction` (desc), `limit` (50, 500 at most)."""
        query, status = request.query, request.query.get("status", "open")
        orders = [o for o in self.book.orders.values() if status == "all" or o.is_open == (status == "open")]
        after = query.get("after_order_id")
        if after is not None:
            ids = list(self.book.orders)
            orders = [o for o in orders if ids.index(o.id) > ids.index(after)]
        if query.get("direction", "desc") == "desc":
            orders.reverse()
        return _json([o.to_json() for o in orders[: min(int(query.get("limit", 50)), 500)]])

    async def _order_by_client_id(self, request: web.Request) -> web.Response:
        wanted = request.query.get("client_order_id")
        for order in self.book.orders.values():
            if order.client_order_id == wanted:
                return _json(order.to_json())
        return _error(404, 40410000, "order not found")

    def _find(self, request: web.Request) -> FakeOrder | None:
        return self.book.orders.get(request.match_info["order_id"])

    async def _get_order(self, request: web.Request) -> web.Response:
        order = self._find(request)
        return _error(404, 40410000, "order not found") if order is None else _json(order.to_json())

    async def _patch_order(self, request: web.Request) -> web.Response:
        order = self._find(request)
        if order is None:
            return _error(404, 40410000, "order not found")
        body = await request.json()
        client_id = str(body.get("client_order_id") or self.book.new_id())
        if client_id in self.book.used_client_ids:
            return _error(422, 40010001, "client_order_id must be unique")
        qty = body.get("qty")
        limit = body.get("limit_price")
        refused = _patch_refusal(order, None if qty is None else Decimal(str(qty)))
        if refused is not None:
            return refused
        try:
            new = self.book.replace(
                order,
                None if qty is None else Decimal(str(qty)),
                None if limit is None else Decimal(str(limit)),
                client_id,
            )
        except OrderStateError as exc:
            return _error(422, 42210000, str(exc))
        return _json(new.to_json())

    async def _delete_order(self, request: web.Request) -> web.Response:
        order = self._find(request)
        if order is None:
            return _error(404, 40410000, "order not found")
        if self.reject_cancels and order.is_open:
            self.reject_cancels -= 1
            self._reject_cancel_later(order)
            return web.Response(status=204)
        try:
            self.book.cancel(order)
        except OrderStateError as exc:
            return _error(422, 42210000, str(exc))
        return web.Response(status=204)

    def _reject_cancel_later(self, order: FakeOrder) -> None:
        """Accept the cancel request, then refuse it by stream: the order stays open in its status."""
        status = order.status
        order.status, order.updated_at = "pending_cancel", self.book.now()
        self._push_trade_update("pending_cancel", order, None)
        order.status, order.updated_at = status, self.book.now()
        self._push_trade_update("order_cancel_rejected", order, None)

    # --- account, assets, clock, quotes -------------------------------------------------------------------

    async def _account(self, request: web.Request) -> web.Response:
        book = self.book
        equity = book.equity()
        return _json(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "fake-account")),
                "account_number": "PA0000FAKE",
                "status": "ACTIVE",
                "currency": "USD",
                "cash": plain(book.cash),
                "buying_power": plain(max(book.cash, ZERO)),
                "equity": plain(equity),
                "portfolio_value": plain(equity),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "trade_suspended_by_user": False,
                "shorting_enabled": False,
                "multiplier": "1",
                "created_at": iso(book.now()),
            }
        )

    async def _positions(self, request: web.Request) -> web.Response:
        return _json([self._position(symbol) for symbol in sorted(self.book.holdings)])

    def _position(self, symbol: str) -> dict[str, object]:
        holding = self.book.holdings[symbol]
        mark = self.book.mark(symbol)
        value = holding.qty * mark
        cost = holding.qty * holding.avg_entry_price
        text = {
            "avg_entry_price": holding.avg_entry_price,
            "qty": holding.qty,
            "qty_available": holding.qty,
            "market_value": value,
            "cost_basis": cost,
            "unrealized_pl": value - cost,
            "unrealized_plpc": ZERO,
            "unrealized_intraday_pl": ZERO,
            "unrealized_intraday_plpc": ZERO,
            "current_price": mark,
            "lastday_price": mark,
            "change_today": ZERO,
        }
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
            "symbol": symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "side": "long" if holding.qty > 0 else "short",
            **{key: plain(value) for key, value in text.items()},
        }

    async def _asset(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        if symbol not in self.book.assets:
            return _error(404, 40410000, "asset not found")
        tradable, fractionable = self.book.assets[symbol]
        return _json(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
                "class": "us_equity",
                "exchange": "NASDAQ",
                "symbol": symbol,
                "name": f"{symbol} Inc.",
                "status": "active",
                "tradable": tradable,
                "marginable": True,
                "shortable": False,
                "easy_to_borrow": False,
                "fractionable": fractionable,
                "attributes": [],
            }
        )

    async def _clock(self, request: web.Request) -> web.Response:
        now = self.book.now()
        stamp = iso(now)
        return _json(
            {"timestamp": stamp, "is_open": self.book.market_open, "next_open": stamp, "next_close": stamp}
        )

    async def _latest_quotes(self, request: web.Request) -> web.Response:
        asked = request.query.get("symbols", "").split(",")
        invalid = [s for s in asked if s in self.invalid_quote_symbols]
        if invalid:
            return _error(400, 40010001, f"invalid symbol: {invalid[0]}")
        symbols = [s for s in asked if s in self.book.quotes]
        return _json({"quotes": {s: _quote_json(self.book.quotes[s]) for s in symbols}})

    # --- trade updates stream (JSON) ----------------------------------------------------------------------

    async def _trade_stream(self, request: web.Request) -> web.StreamResponse:
        if asyncio.get_running_loop().time() < self._stream_refused_until:
            return _error(503, 50300000, "stream unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.trade_connections += 1
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                break
            await self._trade_control(ws, json.loads(msg.data))
        if ws in self._trade_sockets:
            self._trade_sockets.remove(ws)
        return ws

    async def _trade_control(self, ws: web.WebSocketResponse, message: dict[str, object]) -> None:
        data = message.get("data")
        assert isinstance(data, dict)
        if message.get("action") == "authenticate":
            ok = data.get("key_id") == self.key_id and data.get("secret_key") == self.secret_key
            ok = ok and not self.trade_stream_refuses_auth
            status = "authorized" if ok else "unauthorized"
            await ws.send_str(
                json.dumps({"stream": "authorization", "data": {"status": status, "action": "authenticate"}})
            )
            if not ok:
                await ws.close()
        elif message.get("action") == "listen":
            self._trade_sockets.append(ws)
            await ws.send_str(
                json.dumps({"stream": "listening", "data": {"streams": data.get("streams", [])}})
            )

    def _push_trade_update(
        self, event: str, order: FakeOrder, execution: tuple[Decimal, Decimal] | None
    ) -> None:
        if self.trade_stream_muted or not self._trade_sockets:
            return
        data: dict[str, object] = {
            "event": event,
            "order": order.to_json(),
            "timestamp": iso(self.book.now()),
            "execution_id": self.book.new_id(),
        }
        if execution is not None:
            qty, price = execution
            data |= {
                "qty": plain(qty),
                "price": plain(price),
                "position_qty": plain(self._position_qty(order)),
            }
        frame = json.dumps({"stream": "trade_updates", "data": data})
        for ws in list(self._trade_sockets):
            asyncio.get_running_loop().create_task(ws.send_str(frame))

    def _position_qty(self, order: FakeOrder) -> Decimal:
        holding = self.book.holdings.get(order.symbol)
        return ZERO if holding is None else holding.qty

    # --- market data stream (msgpack) ---------------------------------------------------------------------

    async def _data_stream(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["feed"] not in {"iex", "sip"}:
            return _error(404, 40410000, "not found")
        if asyncio.get_running_loop().time() < self._data_refused_until:
            return _error(503, 50300000, "stream unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if request.headers.get("Content-Type") == "application/msgpack":
            self._md_msgpack.add(ws)
        await self._md_send(ws, [{"T": "success", "msg": "connected"}])
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                await self._data_control(ws, msgpack.unpackb(msg.data))
            elif msg.type is WSMsgType.TEXT:
                await self._data_control(ws, json.loads(msg.data))
            else:
                break
        self._md_sockets.pop(ws, None)
        self._md_msgpack.discard(ws)
        return ws

    def _md_frame(self, ws: web.WebSocketResponse, messages: list[dict[str, object]]) -> bytes | str:
        if ws in self._md_msgpack:
            return msgpack.packb(messages, datetime=True)  # type: ignore[no-any-return]
        return json.dumps(
            messages, default=lambda value: iso(value) if isinstance(value, datetime) else value
        )

    async def _md_send(self, ws: web.WebSocketResponse, messages: list[dict[str, object]]) -> None:
        frame = self._md_frame(ws, messages)
        await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))

    async def _data_control(self, ws: web.WebSocketResponse, message: dict[str, object]) -> None:
        if message.get("action") == "auth":
            if message.get("key") == self.key_id and message.get("secret") == self.secret_key:
                await self._md_send(ws, [{"T": "success", "msg": "authenticated"}])
                self._md_sockets[ws] = set()
            else:
                await self._md_send(ws, [{"T": "error", "code": 402, "msg": "auth failed"}])
                await ws.close()
        elif message.get("action") == "subscribe" and ws in self._md_sockets:
            symbols = message.get("quotes", [])
            assert isinstance(symbols, list)
            if self.invalid_quote_symbols & {str(s) for s in symbols}:
                await self._md_send(ws, [{"T": "error", "code": 400, "msg": "invalid syntax"}])
                return
            self._md_sockets[ws].update(str(s) for s in symbols)
            reply = {"T": "subscription", "trades": [], "quotes": sorted(self._md_sockets[ws]), "bars": []}
            await self._md_send(ws, [reply])

    def _push_quote(self, quote: FakeQuote) -> None:
        for ws, symbols in list(self._md_sockets.items()):
            if quote.symbol in symbols:
                asyncio.get_running_loop().create_task(self._md_send(ws, [_quote_json(quote, stream=True)]))


def _patch_refusal(order: FakeOrder, qty: Decimal | None) -> web.Response | None:
    """Alpaca's `PatchOrderRequest.qty`: "You can only patch full shares for now. Qty of equity fractional
    orders are not allowed to change." (a patch without `qty` keeps the order's quantity)."""
    if qty is None:
        return None
    if qty != qty.to_integral_value() or order.qty != order.qty.to_integral_value():
        return _error(422, 40010001, "qty of a fractional order cannot be patched: only full shares")
    return None


def _quote_json(quote: FakeQuote, *, stream: bool = False) -> dict[str, object]:
    body: dict[str, object] = {
        "ap": float(quote.ask),
        "as": quote.ask_size,
        "ax": "V",
        "bp": float(quote.bid),
        "bs": quote.bid_size,
        "bx": "V",
        "c": ["R"],
        "t": quote.ts if stream else iso(quote.ts),
        "z": "C",
    }
    if stream:
        body |= {"T": "q", "S": quote.symbol}
    return body


def _json(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)
