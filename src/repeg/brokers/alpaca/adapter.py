"""`AlpacaBroker`: the `Broker` port over Alpaca's Trading API (alpaca-py REST client, our stream consumer).

Guarantees:
- Every REST call runs off the event loop (the SDK is synchronous), passes the client-side rate limiter, has an
  HTTP timeout, and is retried by us (never by the SDK) on 429, 5xx and timeouts with bounded, jittered backoff
  (`AlpacaRest`, rest.py).
- A submit or replace whose outcome is unknown (timeout, 5xx) is resolved by its client order id before any
  retry, and a retry that meets "client_order_id must be unique" returns the order the earlier attempt created:
  one client order id, at most one order.
- Cancel or replace refused because of the order's state raises `OrderNotCancelableError` carrying the order's
  *actual* status (read back from the broker), after the update that state implies has been pushed.
- `replace_order` refuses a partially filled order (see `replace_order`); the engine then re-pegs by cancel,
  confirm and submit of the remainder.
- Updates come from the `trade_updates` stream; after a reconnect, and while the stream is silent with orders
  working, the run's orders are polled so that no fill is missed (`OrderTracker` de-duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

import structlog
from alpaca.trading.client import TradingClient
from alpaca.trading.models import Clock as SdkClock
from alpaca.trading.models import Position as SdkPosition
from alpaca.trading.models import TradeAccount

from repeg.brokers.alpaca.credentials import AlpacaCredentials
from repeg.brokers.alpaca.mapping import (
    MarketClock,
    found_order,
    order_payload,
    parse_order,
    raw_order_id,
    read_trade_update,
    replace_payload,
    to_account,
    to_market_clock,
    to_position,
    written_order,
)
from repeg.brokers.alpaca.rest import AlpacaRest
from repeg.brokers.alpaca.retry import sleep_seconds, with_retries
from repeg.brokers.alpaca.settings import AlpacaSettings
from repeg.brokers.alpaca.stream import TradeUpdateStream, watch_silence
from repeg.brokers.alpaca.tracker import OrderTracker, log_unreadable_update
from repeg.brokers.base import Sent, Unsubscribe, UpdateSink
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import BrokerOrder, OrderRequest, OrderStatus, ReplaceRequest
from repeg.engine.clock import Clock
from repeg.errors import (
    BrokerError,
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    FractionalQuantityError,
    OrderNotCancelableError,
    OrderNotFoundError,
    RateLimitedError,
)

log = structlog.get_logger(__name__)

#: The most orders Alpaca's list-orders answers in one request.
_ORDERS_PAGE = 500


class AlpacaBroker:
    def __init__(
        self,
        client: TradingClient,
        *,
        name: str,
        clock: Clock,
        settings: AlpacaSettings,
        credentials: AlpacaCredentials,
        stream_url: str,
    ) -> None:
        self._client = client
        self._name = name
        self._clock = clock
        self._settings = settings
        self._http = AlpacaRest(client, clock, settings)
        self._assets: dict[str, Asset] = {}
        self._tracker = OrderTracker(on_idle=self._assets.clear, owner=name)  # flags are the run's
        self._tasks: list[asyncio.Task[None]] = []
        self._stream = TradeUpdateStream(
            stream_url,
            credentials,
            clock,
            settings=settings.stream,
            on_update=self._on_stream_update,
            on_reconnect=self.reconcile,
        )
        self.market_clock: MarketClock | None = None

    # --- port properties ----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def supports_replace(self) -> bool:
        return True

    @property
    def pushes_updates(self) -> bool:
        return True

    @property
    def stream(self) -> TradeUpdateStream:
        return self._stream

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the trade-update stream (waiting for its first handshake) and start the silence watchdog.

        Raises `AuthenticationError` when the stream refuses the credentials, `BrokerUnavailableError` when it
        cannot be reached within the stream's open timeout (it keeps retrying in the background either way).
        """
        if not self._tasks:
            self._tasks.append(asyncio.create_task(self._stream.run(), name="alpaca-trade-stream"))
            watchdog = watch_silence(
                self._stream, self._settings.stream, self._clock, self._has_working_orders, self.reconcile
            )
            self._tasks.append(asyncio.create_task(watchdog, name="alpaca-silence-watchdog"))
        deadline = self._clock.now() + timedelta(seconds=self._settings.stream.open_timeout)
        if not await self._clock.wait_event(self._stream.connected, deadline):
            raise BrokerUnavailableError("trade stream: not connected within the open timeout")
        if self._stream.error is not None:
            raise self._stream.error

    async def aclose(self) -> None:
        await self._stream.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def stopping(self) -> AbstractContextManager[None]:
        """`with broker.stopping():` around a run's graceful stop (Ctrl-C, SIGTERM) bounds its waits to one rate
        window, and only within the block: see `AlpacaRest.stopping`."""
        return self._http.stopping()

    def subscribe_updates(self, sink: UpdateSink) -> Unsubscribe:
        return self._tracker.add_sink(sink)

    def expect(self, client_order_id: str, sent: Sent) -> None:
        self._tracker.expect(client_order_id, sent)

    # --- orders -------------------------------------------------------------------------------------------

    async def submit_order(self, request: OrderRequest) -> BrokerOrder:
        await self._refuse_fractional(request)
        payload = order_payload(request)
        # An id sent already is the engine's re-send of a submit of unknown outcome (each check interval): one try.
        attempts = 1 if self._tracker.claimed(request.client_order_id) else None
        self._tracker.claim(request.client_order_id, Sent.submit(request))
        log.info("order_submit", symbol=request.symbol, client_order_id=request.client_order_id)
        order = await self._write(
            "submit",
            request.client_order_id,
            lambda: self._client.post("/orders", payload),
            attempts=attempts,
        )
        self._accepted(order)
        return order

    async def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        """PATCH the order: Alpaca creates a new order id and the old order goes `pending_replace`, `replaced`.

        A partially filled order is refused with `OrderNotCancelableError` (status `partially_filled`) before
        anything is sent: Alpaca's replace quantity for such an order has a reported history of re-using the
        original quantity, which could over-fill the leg. The current state is read back first so that a fill
        the stream has not delivered yet is seen (and pushed) before deciding.
        """
        current = await self.get_order(request.order_id)
        if current.filled_qty > 0 or current.status.is_terminal:
            why = "has fills: cancel it and submit the remainder" if current.filled_qty > 0 else "is closed"
            raise OrderNotCancelableError(
                request.order_id,
                current.status.value,
                broker_message=f"replace refused before sending: order {why}",
            )
        payload = replace_payload(request, current.qty)
        self._tracker.claim(request.client_order_id, Sent.replacing(current, request.limit_price))
        log.info("order_replace", order_id=request.order_id, client_order_id=request.client_order_id)
        send = lambda: self._client.patch(f"/orders/{request.order_id}", payload)  # noqa: E731
        try:
            order = await self._write("replace", request.client_order_id, send, order_id=request.order_id)
        except OrderNotCancelableError as exc:
            raise await self._not_cancelable(request.order_id, exc) from exc
        self._accepted(order)
        return order

    async def cancel_order(self, order_id: str) -> None:
        """Request a cancel; the confirmation arrives as an update. A refusal because of the order's state raises
        `OrderNotCancelableError` with the state read back (and its update pushed) for the engine to reconcile.

        A retry after an attempt of unknown outcome (timeout, 5xx) that meets the order `canceled` (`pending_cancel`)
        is our own earlier attempt done (under way), not a refusal: it returns as an accepted cancel (update pushed)."""
        log.info("order_cancel", order_id=order_id)
        maybe_sent = False

        async def once() -> None:
            nonlocal maybe_sent
            try:
                await self._http.send(
                    "cancel", lambda: self._client.cancel_order_by_id(order_id), order_id=order_id
                )
            except BrokerUnavailableError as exc:
                maybe_sent = maybe_sent or not isinstance(exc, RateLimitedError)
                raise

        try:
            await with_retries("cancel", once, self._http.backoff, self._clock, self._http.may_retry)
        except OrderNotCancelableError as exc:
            refusal = await self._not_cancelable(order_id, exc)
            if not (maybe_sent and refusal.status in {OrderStatus.CANCELED, OrderStatus.PENDING_CANCEL}):
                raise refusal from exc
            log.info("order_cancel_done_by_an_earlier_attempt", order_id=order_id)
        self._stream.expect_updates()

    async def get_order(self, order_id: str) -> BrokerOrder:
        raw = await self._http.read(
            "get_order", lambda: self._client.get(f"/orders/{order_id}"), order_id=order_id
        )
        order = parse_order(raw)
        self._tracker.adopt(order)  # the run asks only about its own orders, maybe sent before a resume
        self._tracker.absorb(order, self._clock.now())
        return order

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        # One of ours of unknown outcome is asked about at each engine check (the next check is the retry): one
        # request, so that an outage blocks no monitor; retried as any read once the run is stopping.
        once = self._http.stop_deadline is None and self._tracker.unanswered(client_order_id)
        return await self._by_client_id(client_order_id, retry=not once)

    async def _by_client_id(self, client_order_id: str, *, retry: bool) -> BrokerOrder | None:
        """The order of a client order id (None: not found); read once, or retried as any read."""
        params = {"client_order_id": client_order_id}
        op = "get_order_by_client_id"
        call = lambda: self._client.get("/orders:by_client_order_id", params)  # noqa: E731
        try:
            raw = await (self._http.read(op, call) if retry else self._http.send(op, call))
        except OrderNotFoundError:
            return None
        order = found_order(raw, client_order_id)
        self._tracker.refuse_foreign(order)
        self._tracker.adopt(order)
        self._tracker.absorb(order, self._clock.now())
        return order

    async def list_open_orders(self) -> list[BrokerOrder]:
        """Open orders of the account (of any client), every page; orders of types repeg never sends are left out.

        Alpaca answers at most `_ORDERS_PAGE` orders a request: the pages are read oldest first, each after the
        last order id of the one before (an exact cursor: orders submitted at the same instant are not skipped).
        """
        orders: list[BrokerOrder] = []
        after: str | None = None
        while True:
            page = await self._open_orders_page(after)
            for raw in page:
                try:
                    orders.append(parse_order(raw))
                except BrokerError as exc:
                    log.debug("open_order_not_ours_skipped", order_id=raw_order_id(raw), reason=str(exc))
            if len(page) < _ORDERS_PAGE or raw_order_id(page[-1]) is None:
                return orders
            after = raw_order_id(page[-1])

    async def _open_orders_page(self, after: str | None) -> list[object]:
        params: dict[str, str | int] = {"status": "open", "limit": _ORDERS_PAGE, "direction": "asc"}
        if after is not None:
            params["after_order_id"] = after
        page = await self._http.read("list_open_orders", lambda: self._client.get("/orders", params))
        if not isinstance(page, list):
            raise BrokerError(f"list_open_orders: answer is not a list but {type(page).__name__}")
        return list(page)

    # --- account ------------------------------------------------------------------------------------------

    async def get_account(self) -> Account:
        account = await self._http.read("get_account", self._client.get_account)
        if not isinstance(account, TradeAccount):
            raise BrokerError("get_account: unexpected answer")
        return to_account(account)

    async def get_positions(self) -> list[Position]:
        positions = await self._http.read("get_positions", self._client.get_all_positions)
        return [to_position(p) for p in positions if isinstance(p, SdkPosition)]

    async def get_asset(self, symbol: str) -> Asset:
        """Asset flags, cached while a run listens (a plan's checks read afresh); `UnknownSymbolError` if unknown."""
        if symbol in self._assets and self._tracker.listened:
            return self._assets[symbol]
        asset = await with_retries(
            "get_asset",
            lambda: self._http.asset_once(symbol),
            self._http.backoff,
            self._clock,
            self._http.may_retry,
        )
        self._assets[symbol] = asset
        return asset

    async def get_market_clock(self) -> MarketClock:
        sdk_clock = await self._http.read("get_clock", self._client.get_clock)
        if not isinstance(sdk_clock, SdkClock):
            raise BrokerError("get_clock: unexpected answer")
        self.market_clock = to_market_clock(sdk_clock)
        return self.market_clock

    # --- idempotent writes and reconciliation -------------------------------------------------------------

    async def _write(
        self,
        op: str,
        client_order_id: str,
        send: Callable[[], object],
        *,
        order_id: str | None = None,
        attempts: int | None = None,
    ) -> BrokerOrder:
        """Send a submit or replace with one client order id, resolving unknown outcomes by that id; at most
        `attempts` sends (default: the retry policy's)."""
        max_attempts = attempts or self._http.backoff.policy.max_attempts
        attempt = 1
        while True:
            try:
                raw = await self._http.send(op, send, order_id=order_id, client_order_id=client_order_id)
            except (DuplicateClientOrderIdError, OrderNotCancelableError):
                found = None if attempt == 1 else await self.get_order_by_client_id(client_order_id)
                if found is None:
                    raise
                return found
            except BrokerUnavailableError as exc:
                found = await self._resolve_unknown(exc, client_order_id)
                if found is not None:
                    return found
                if attempt >= max_attempts or not self._http.may_retry(exc):
                    raise
            else:
                return written_order(raw, op)
            delay = self._http.backoff.delay(attempt)
            log.warning(
                "broker_retry",
                op=op,
                attempt=attempt,
                delay_s=round(delay, 3),
                client_order_id=client_order_id,
            )
            attempt += 1
            await sleep_seconds(self._clock, delay)

    async def _resolve_unknown(self, exc: BrokerUnavailableError, client_order_id: str) -> BrokerOrder | None:
        """After a 5xx or a timeout the request may have been executed: look for its order (one request: the
        write's next attempt, same id, is the retry, so attempts and lookups do not multiply). A 429 was not."""
        if isinstance(exc, RateLimitedError):
            return None
        try:
            return await self._by_client_id(client_order_id, retry=False)
        except BrokerUnavailableError:
            return None

    async def _not_cancelable(self, order_id: str, exc: OrderNotCancelableError) -> OrderNotCancelableError:
        status = (await self.get_order(order_id)).status.value
        return OrderNotCancelableError(order_id, status, broker_message=exc.broker_message, code=exc.code)

    def _accepted(self, order: BrokerOrder) -> None:
        self._tracker.remember(order)
        self._stream.expect_updates()

    async def _refuse_fractional(self, request: OrderRequest) -> None:
        if request.qty == request.qty.to_integral_value():
            return
        asset = await self.get_asset(request.symbol)
        if not asset.fractionable:
            raise FractionalQuantityError(request.symbol, request.qty)

    def _has_working_orders(self) -> bool:
        return bool(self._tracker.working_ids())

    def _on_stream_update(self, data: dict[str, object]) -> None:
        try:
            order, ts, hint, execution = read_trade_update(data)
        except (BrokerError, ValueError) as exc:
            log_unreadable_update(self._tracker, data, exc)
            return
        self._tracker.absorb(order, ts, hint=hint, execution=execution)

    async def reconcile(self) -> None:
        """Poll every working order of the run (and the successor of a replaced one) and push what changed.

        Open orders are read together (one GET each every 5 s of silence spends Alpaca's 200 a minute from 17
        orders on); only one no longer open is read on its own, for its final state. An order that cannot be read (or is not found) is logged and skipped, so that the others are still polled;
        an unreachable broker (`BrokerUnavailableError`) ends the poll, the caller's to report.
        """
        working = self._tracker.working_ids()
        if not working:
            return
        still_open = await self._absorb_open_orders()
        for order_id in working:
            if order_id in still_open:
                continue
            try:
                await self._poll(order_id)
            except BrokerUnavailableError:
                raise
            except BrokerError as exc:
                log.warning("reconcile_order_skipped", order_id=order_id, error=type(exc).__name__)

    async def _absorb_open_orders(self) -> set[str]:
        """Read the account's open orders, push what changed in the run's own; the ids of those open."""
        now = self._clock.now()
        still_open: set[str] = set()
        for order in await self.list_open_orders():
            if self._tracker.owns(order):
                self._tracker.absorb(order, now)
                still_open.add(order.order_id)
        return still_open

    async def _poll(self, order_id: str) -> None:
        current = await self.get_order(order_id)
        successor = current.replaced_by
        if successor is not None and self._tracker.get(successor) is None:
            await self.get_order(successor)
