"""The adapter's edge: Alpaca (SDK objects, JSON, HTTP errors) in, repeg's frozen models and typed errors out.

Nothing from `alpaca` crosses this module's outputs. Prices and quantities go out to Alpaca as exact decimal
strings (the SDK's request models would pass them through `float`), and come back from Alpaca's string fields
straight into `Decimal`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import TypeVar
from urllib.parse import urlsplit

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.models import Asset as SdkAsset
from alpaca.trading.models import Clock as SdkClock
from alpaca.trading.models import Order as SdkOrder
from alpaca.trading.models import Position as SdkPosition
from alpaca.trading.models import TradeAccount, TradeUpdate
from pydantic import BaseModel, ConfigDict

from repeg.brokers.alpaca.http import transport_reason
from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import BrokerOrder, OrderRequest, OrderStatus, OrderType, ReplaceRequest, Side
from repeg.errors import (
    AuthenticationError,
    BrokerError,
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    InsufficientBuyingPowerError,
    OrderNotCancelableError,
    OrderNotFoundError,
    OrderRejectedError,
    RateLimitedError,
    UnknownSymbolError,
)

_Error = TypeVar("_Error", bound=BrokerError)

#: Alpaca's code for "the order's state does not allow this" (cancel/replace of a filled, cancelled... order).
CODE_NOT_CANCELABLE = "42210000"
#: Alpaca's trading hosts and the mode whose keys each takes.
_MODE_OF_HOST = {"api.alpaca.markets": "live", "paper-api.alpaca.markets": "paper"}
#: Alpaca's code for a forbidden order (insufficient buying power or shares): a rejection, not a credential issue.
CODE_ORDER_FORBIDDEN = "40310000"
#: Every 403 code of that family is a refused trade (e.g. 40310100, pattern day trading protection).
_ORDER_FORBIDDEN_FAMILY = CODE_ORDER_FORBIDDEN[:4]
#: How Alpaca words a 403 refusal of a buy for want of buying power (`{"code": 40310000, "message": "insufficient
#: buying power"}`); the same code refuses a sell beyond the shares held ("insufficient qty available ...").
_BUYING_POWER = "insufficient buying power"
#: Alpaca statuses repeg has no member for: all open, none yet working (alpaca-py also knows `pending_review`).
_EXTRA_STATUSES = {
    "held": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "pending_review": OrderStatus.ACCEPTED,
}


class MarketClock(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


# --- requests out --------------------------------------------------------------------------------------------


def decimal_text(value: Decimal) -> str:
    """Exact, exponent-free text of a Decimal (Alpaca reads numbers as strings)."""
    return format(value, "f")


def order_payload(request: OrderRequest) -> dict[str, str]:
    payload = {
        "symbol": request.symbol,
        "qty": decimal_text(request.qty),
        "side": request.side.value,
        "type": request.order_type.value,
        "time_in_force": request.time_in_force.value,
        "client_order_id": request.client_order_id,
    }
    if request.limit_price is not None:
        payload["limit_price"] = decimal_text(request.limit_price)
    return payload


def replace_payload(request: ReplaceRequest, current_qty: Decimal) -> dict[str, str]:
    """The PATCH body. `qty` is sent only when it changes: Alpaca patches only full shares and never a fractional
    order's quantity, and an absent `qty` keeps the order's own (so a fractional order can still be re-priced)."""
    payload = {
        "limit_price": decimal_text(request.limit_price),
        "client_order_id": request.client_order_id,
    }
    if request.qty != current_qty:
        payload["qty"] = decimal_text(request.qty)
    return payload


# --- responses in --------------------------------------------------------------------------------------------


def _dec(text: str | float | None, default: Decimal | None = None) -> Decimal | None:
    """Alpaca's numeric strings as Decimal; a float (some SDK fields) goes through its shortest repr."""
    if text is None or text == "":
        return default
    try:
        return Decimal(repr(text) if isinstance(text, float) else text)
    except InvalidOperation:
        raise BrokerError(f"broker sent a non-numeric value {text!r}") from None


def _status(raw: str) -> OrderStatus:
    if raw in _EXTRA_STATUSES:
        return _EXTRA_STATUSES[raw]
    return OrderStatus(raw)


def _order_type(raw: str | None) -> OrderType:
    try:
        return OrderType(str(raw))
    except ValueError:
        raise BrokerError(f"order type {raw!r} is not one repeg sends") from None


def to_broker_order(order: SdkOrder) -> BrokerOrder:
    """An SDK order as our `BrokerOrder`. `filled_avg_price` of 0 or absent means no fill yet (None)."""
    avg = _dec(order.filled_avg_price)
    raw_type = order.type if order.type is not None else order.order_type
    return BrokerOrder(
        order_id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=str(order.symbol),
        side=Side(str(order.side.value if order.side is not None else "")),
        qty=_dec(order.qty, Decimal(0)) or Decimal(0),
        order_type=_order_type(None if raw_type is None else raw_type.value),
        limit_price=_dec(order.limit_price),
        status=_status(order.status.value),
        filled_qty=_dec(order.filled_qty, Decimal(0)) or Decimal(0),
        filled_avg_price=avg if avg else None,
        created_at=utc(order.created_at),
        updated_at=utc(order.updated_at or order.created_at),
        replaces=None if order.replaces is None else str(order.replaces),
        replaced_by=None if order.replaced_by is None else str(order.replaced_by),
    )


def utc(ts: datetime) -> datetime:
    """Alpaca's times are UTC: one sent without an offset is read as UTC, never left naive (a naive time cannot be
    compared with the run's aware ones: the fold compares an order's `updated_at`s)."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def read_trade_update(
    data: dict[str, object],
) -> tuple[BrokerOrder, datetime, str, tuple[Decimal, Decimal] | None]:
    """A `trade_updates` payload: its order, the event's time, the event's name (one repeg has no member for
    is kept as Alpaca's text) and the quantity and price of the execution a fill or partial fill event reports.
    Raises `BrokerError` or `ValueError` for one repeg cannot read."""
    update = TradeUpdate(**data)
    event = update.event.value if isinstance(update.event, Enum) else str(update.event)
    return to_broker_order(update.order), utc(update.timestamp), event, _execution(data, event)


def _execution(data: dict[str, object], event: str) -> tuple[Decimal, Decimal] | None:
    """A fill event's own `qty` and `price`, read from Alpaca's text (the SDK's floats would round them); None for
    another event, or when either is absent or no positive number (the fill is then priced from the averages)."""
    if event not in {"fill", "partial_fill"}:
        return None
    qty, price = _positive(data.get("qty")), _positive(data.get("price"))
    return None if qty is None or price is None else (qty, price)


def _positive(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        return None
    return number if number.is_finite() and number > 0 else None


def parse_order(raw: object) -> BrokerOrder:
    """An order JSON object as our `BrokerOrder`; one repeg cannot read is a `BrokerError` (the port's contract)."""
    if not isinstance(raw, dict):
        raise BrokerError(f"broker sent an order that is not an object: {type(raw).__name__}")
    try:
        return to_broker_order(SdkOrder(**raw))
    except ValueError as exc:  # pydantic's ValidationError included
        raise BrokerError(f"broker sent an order repeg cannot read: {type(exc).__name__}: {exc}") from None


def written_order(raw: object, op: str) -> BrokerOrder:
    """The order a submit or replace was answered with. One repeg cannot read exists at the broker all the same:
    its outcome is unknown to the run (`BrokerUnavailableError`, as after a lost answer, so that the engine asks
    after its client order id), never a refusal, after which the engine would send the leg's next order beside it."""
    try:
        return parse_order(raw)
    except BrokerError as exc:
        raise BrokerUnavailableError(f"{op}: the order was created, but {exc}") from None


def found_order(raw: object, client_order_id: str) -> BrokerOrder:
    """The order a look-up by client order id found. One repeg cannot read exists all the same: the outcome of the
    request that created it stays unknown (`BrokerUnavailableError`), never a refusal, which would replace a
    submit's duplicate-id answer and let the engine send the leg's next order beside it."""
    try:
        return parse_order(raw)
    except BrokerError as exc:
        raise BrokerUnavailableError(f"order {client_order_id!r} exists, but {exc}") from None


def raw_order_id(raw: object) -> str | None:
    """The `id` of a raw order answer, if it has one."""
    order_id = raw.get("id") if isinstance(raw, dict) else None
    return None if order_id is None else str(order_id)


def to_account(account: TradeAccount) -> Account:
    return Account(
        cash=_dec(account.cash, Decimal(0)) or Decimal(0),
        buying_power=_dec(account.buying_power, Decimal(0)) or Decimal(0),
        equity=_dec(account.equity, Decimal(0)) or Decimal(0),
    )


def to_position(position: SdkPosition) -> Position:
    """Alpaca reports short quantities as negative numbers already; the sign is kept."""
    return Position(
        symbol=position.symbol,
        qty=_dec(position.qty, Decimal(0)) or Decimal(0),
        avg_entry_price=_dec(position.avg_entry_price, Decimal(0)) or Decimal(0),
        market_value=_dec(position.market_value, Decimal(0)) or Decimal(0),
    )


def to_asset(asset: SdkAsset) -> Asset:
    tradable = bool(asset.tradable) and str(asset.status.value) == "active"
    return Asset(
        symbol=asset.symbol,
        tradable=tradable,
        fractionable=bool(asset.fractionable),
        shortable=asset.shortable,
    )


def to_market_clock(clock: SdkClock) -> MarketClock:
    return MarketClock(
        timestamp=clock.timestamp,
        is_open=clock.is_open,
        next_open=clock.next_open,
        next_close=clock.next_close,
    )


# --- errors in -----------------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: int | None
    code: str | None
    message: str


def error_body(exc: APIError) -> ErrorBody:
    """Status, Alpaca code and message of an SDK error; a body that is not JSON is kept verbatim as the message."""
    text = str(exc)
    code: str | None = None
    message = text
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        code = None if parsed.get("code") is None else str(parsed.get("code"))
        message = str(parsed.get("message", text))
    status = exc.status_code
    return ErrorBody(status=status if isinstance(status, int) else None, code=code, message=message)


def rate_limit_reset(exc: APIError, now: datetime) -> datetime | None:
    """For an HTTP 429: when the account's rate window resets, on the local clock whose time is `now`; None for
    another status, or without a readable `X-RateLimit-Reset`.

    Alpaca gives the reset as a Unix epoch second of its own clock: what is left of the window is measured against
    the answer's `Date` (Alpaca's clock too, whole seconds: never shorter than what is left), so that a local
    clock set apart from Alpaca's neither stretches the wait nor skips it; against `now` without a readable `Date`."""
    response = exc.response
    if exc.status_code != 429 or response is None:
        return None
    try:
        reset = datetime.fromtimestamp(float(response.headers.get("X-RateLimit-Reset", "")), UTC)
    except (ValueError, OverflowError, OSError):
        return None
    try:
        return now + (reset - _server_time(response.headers.get("Date"), now))
    except OverflowError:  # a Date no clock can be set apart by (year 9999): read as missing
        return reset


def _server_time(date: str | None, now: datetime) -> datetime:
    """The time an HTTP `Date` header gives (`now` when it is missing or unreadable)."""
    try:
        sent = parsedate_to_datetime(date or "")
    except (TypeError, ValueError, IndexError):
        return now
    return sent if sent.tzinfo is not None else sent.replace(tzinfo=UTC)


def map_api_error(
    exc: APIError, op: str, *, order_id: str | None = None, client_order_id: str | None = None
) -> BrokerError:
    """The typed error for an Alpaca HTTP error; the broker's message and code are kept on it."""
    body = error_body(exc)
    return _transient_or_auth(body, op, exc) or _order_error(body, op, order_id, client_order_id)


def _transient_or_auth(body: ErrorBody, op: str, exc: APIError) -> BrokerError | None:
    status = body.status or 0
    if status == 429:
        return RateLimitedError(f"{op}: rate limited", broker_message=body.message, code=body.code)
    if status >= 500:
        return BrokerUnavailableError(f"{op}: HTTP {status}", broker_message=body.message, code=body.code)
    if status == 401 or (status == 403 and not (body.code or "").startswith(_ORDER_FORBIDDEN_FAMILY)):
        at = keys_refused_at(getattr(getattr(exc, "request", None), "url", None))
        refused = f"{op}: credentials refused{at}"
        return AuthenticationError(refused, broker_message=body.message, code=body.code)
    return None


def keys_refused_at(url: object) -> str:
    """Where keys were refused, for the refusal's text (the host only: the keys travel in headers). Paper and live
    accounts have different keys, and either's sent to the other's endpoint is refused as any bad keys."""
    host = urlsplit(str(url or "")).hostname
    mode = _MODE_OF_HOST.get(host or "")
    if mode is None:
        return f" by {host}" if host else ""
    return f" by Alpaca's {mode} endpoint ({host}); keys are per mode: use the {mode} account's keys"


def _order_error(body: ErrorBody, op: str, order_id: str | None, client_order_id: str | None) -> BrokerError:
    status = body.status or 0
    if status == 404:
        return _kept(OrderNotFoundError(order_id or client_order_id or "?"), body)
    if status == 422 and body.code == CODE_NOT_CANCELABLE and op in {"cancel", "replace"}:
        return OrderNotCancelableError(
            order_id or "?", status_in_message(body.message), broker_message=body.message, code=body.code
        )
    if status == 422 and client_order_id is not None and "client_order_id" in body.message:
        return _kept(DuplicateClientOrderIdError(client_order_id, broker_message=body.message), body)
    if status == 403 and _BUYING_POWER in body.message.lower():  # (the 403s left here are refused trades)
        return InsufficientBuyingPowerError(
            f"{op}: HTTP {status}", broker_message=body.message, code=body.code
        )
    return OrderRejectedError(f"{op}: HTTP {status}", broker_message=body.message, code=body.code)


def _kept(error: _Error, body: ErrorBody) -> _Error:
    """`error`, whose constructor takes neither, with Alpaca's message and code on it (as every mapped error)."""
    error.broker_message, error.code = body.message, body.code
    return error


def map_asset_error(exc: APIError, symbol: str) -> BrokerError | UnknownSymbolError:
    if error_body(exc).status == 404:
        return UnknownSymbolError(symbol)
    return map_api_error(exc, "get_asset")


def status_in_message(message: str) -> str:
    """The order status an Alpaca 422 message names ("order is already in \"filled\" state"), or "unknown"."""
    lowered = message.lower()
    for status in sorted(OrderStatus, key=lambda s: -len(s.value)):
        if status.value in lowered or status.value.replace("_", " ") in lowered:
            return status.value
    return "unknown"


def map_transport_error(exc: requests.RequestException, op: str) -> BrokerUnavailableError:
    """Timeouts and connection failures: the request's outcome is unknown."""
    return BrokerUnavailableError(f"{op}: no answer from the broker ({transport_reason(exc)})")
