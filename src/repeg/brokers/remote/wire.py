"""The loopback wire protocol: one request line, one answer line, JSON bodies validated by the domain models.

Request:  `<method>\t<session>\t<json params>\n`
Answer:   `ok\t<json result>\n` or `err\t<json error>\n`

Broker errors cross the wire as their class name and the fields needed to rebuild them, so the engine sees the
same typed errors (`DuplicateClientOrderIdError`, `OrderNotCancelableError`, ...) as in process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from repeg.errors import (
    AuthenticationError,
    BrokerError,
    BrokerUnavailableError,
    DuplicateClientOrderIdError,
    IllegalTransitionError,
    InsufficientBuyingPowerError,
    InvariantViolationError,
    MarketClosedError,
    NotTradableError,
    OrderNotCancelableError,
    OrderNotFoundError,
    OrderRejectedError,
    RateLimitedError,
    RepegError,
    UnknownSymbolError,
)

OK: Final = "ok"
ERR: Final = "err"
#: Longest line either side accepts (a list of a few thousand orders fits comfortably).
MAX_LINE: Final = 16 * 1024 * 1024


def request_line(method: str, session: str, params: str) -> bytes:
    if "\t" in method or "\t" in session or "\n" in params:
        raise ValueError("method and session must not contain tabs; params must be one line of JSON")
    return f"{method}\t{session}\t{params}\n".encode()


def parse_request(line: bytes) -> tuple[str, str, str]:
    method, session, params = line.decode().rstrip("\n").split("\t", 2)
    return method, session, params


def answer_line(ok: bool, body: str) -> bytes:
    return f"{OK if ok else ERR}\t{body}\n".encode()


def parse_answer(line: bytes) -> tuple[bool, str]:
    status, _, body = line.decode().rstrip("\n").partition("\t")
    if status not in (OK, ERR):
        raise BrokerUnavailableError(f"remote simulator sent an unreadable answer: {line[:80]!r}")
    return status == OK, body


def _field(error: RepegError, name: str) -> str:
    return str(getattr(error, name, ""))


def encode_error(error: RepegError) -> str:
    """The error as JSON: its class name, message, the constructor fields of the classes that have them, and a
    broker error's own words and code."""
    fields = {
        name: _field(error, name)
        for name in ("client_order_id", "order_id", "status", "symbol", "machine", "state", "event")
        if hasattr(error, name)
    }
    if isinstance(error, BrokerError):
        words = {"broker_message": error.broker_message, "code": error.code}
        fields |= {name: value for name, value in words.items() if value is not None}
    return json.dumps({"type": type(error).__name__, "message": str(error), **fields})


_BY_FIELDS: dict[str, Callable[[dict[str, str]], RepegError]] = {
    "DuplicateClientOrderIdError": lambda d: DuplicateClientOrderIdError(
        d["client_order_id"], broker_message=d.get("broker_message")
    ),
    "OrderNotFoundError": lambda d: OrderNotFoundError(d["order_id"]),
    "OrderNotCancelableError": lambda d: OrderNotCancelableError(
        d["order_id"], d["status"], broker_message=d.get("broker_message"), code=d.get("code")
    ),
    "UnknownSymbolError": lambda d: UnknownSymbolError(d["symbol"]),
    "NotTradableError": lambda d: NotTradableError(d["symbol"]),
    "IllegalTransitionError": lambda d: IllegalTransitionError(d["machine"], d["state"], d["event"]),
}
#: A broken invariant is a bug in the simulator, never an order refusal: it must not become a `BrokerError`.
_BUGS = frozenset({"InvariantViolationError", "OverfillError"})
_BY_MESSAGE: dict[str, type[BrokerError]] = {
    cls.__name__: cls
    for cls in (
        InsufficientBuyingPowerError,
        OrderRejectedError,
        BrokerUnavailableError,
        RateLimitedError,
        AuthenticationError,
        MarketClosedError,
        BrokerError,
    )
}


def decode_error(body: str) -> RepegError:
    """Rebuild a typed error; an unknown class becomes a `BrokerError` that keeps the remote message."""
    data = json.loads(body)
    name, message = str(data.get("type", "")), str(data.get("message", ""))
    build = _BY_FIELDS.get(name)
    if build is not None:
        return _with_words(build({key: str(value) for key, value in data.items()}), data)
    if name in _BUGS:
        return InvariantViolationError(f"remote simulator: {message}")
    # The message holds the words.
    return _with_words(_BY_MESSAGE.get(name, BrokerError)(f"remote simulator: {message}"), data)


def _with_words(error: RepegError, data: dict[str, object]) -> RepegError:
    """`error` with the broker's words and code it was sent with, where its constructor did not take them: the
    Alpaca mapping sets both on an `OrderNotFoundError`, and a code on a `DuplicateClientOrderIdError`."""
    if isinstance(error, BrokerError):
        for attribute in ("broker_message", "code"):
            if data.get(attribute) is not None and getattr(error, attribute) is None:
                setattr(error, attribute, str(data[attribute]))
    return error
