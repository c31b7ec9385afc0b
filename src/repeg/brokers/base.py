"""The `Broker` port: everything the engine needs from a broker, and nothing more.

Adapters (the built-in simulator, Alpaca) implement it and convert their native objects to the domain models
at their edge. All methods raise only `repeg.errors.BrokerError` subclasses:

- `OrderRejectedError` / `DuplicateClientOrderIdError` on submit or replace,
- `OrderNotCancelableError` when a cancel or replace meets an order already filled, cancelled or pending a
  replace (a state for the engine to reconcile, not a failure),
- `OrderNotFoundError`, `BrokerUnavailableError`, `RateLimitedError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import BrokerOrder, OrderRequest, OrderType, OrderUpdate, ReplaceRequest, Side
from repeg.errors import ClientOrderIdConflictError

UpdateSink = Callable[[OrderUpdate], None]
#: What `Broker.subscribe_updates` returns: called, it removes the sink (a second call does nothing).
Unsubscribe = Callable[[], None]


def subscribed(sinks: list[UpdateSink], sink: UpdateSink) -> Unsubscribe:
    """Append `sink` to `sinks`; the callable returned removes that very sink again (once)."""
    sinks.append(sink)
    pending = [True]  # this handle's subscription is still held: a second call must not take another's

    def unsubscribe() -> None:
        if not pending:
            return
        pending.clear()
        for i, held in enumerate(sinks):
            if held is sink:
                del sinks[i]
                return

    return unsubscribe


@dataclass(frozen=True)
class Sent:
    """What the run sent under a client order id: an order found under that id that differs is another's (another
    run under the same run id), never the run's own. `qty` None: not checked (a replace may keep the order's own)."""

    symbol: str
    side: Side
    order_type: OrderType
    limit_price: Decimal | None
    qty: Decimal | None = None
    replace: bool = False

    @classmethod
    def submit(cls, request: OrderRequest) -> Sent:
        return cls(request.symbol, request.side, request.order_type, request.limit_price, request.qty)

    @classmethod
    def replacing(cls, order: BrokerOrder, limit_price: Decimal) -> Sent:
        return cls(order.symbol, order.side, order.order_type, limit_price, replace=True)

    def differences(self, order: BrokerOrder) -> dict[str, tuple[str, str]]:
        """Each field in which `order` differs from what was sent: (sent, found)."""
        pairs: dict[str, tuple[object, object]] = {
            "symbol": (self.symbol, order.symbol),
            "side": (self.side.value, order.side.value),
            "qty": (self.qty, order.qty if self.qty is not None else None),
            "order_type": (self.order_type.value, order.order_type.value),
            "limit_price": (self.limit_price, order.limit_price),
        }
        return {name: (str(sent), str(found)) for name, (sent, found) in pairs.items() if sent != found}


class SentOrders:
    """What was sent under each client order id: by this process (`claim`, before the request goes out), or by an
    earlier process of a resumed run, as its journal says (`expect`). An order found under one of those ids that
    differs from it is another run's (same run id), never the run's own (`refuse_foreign`). The one record of
    ownership of every adapter whose orders outlive a run: the Alpaca adapter's tracker and both simulators."""

    def __init__(self) -> None:
        self._sent: dict[str, Sent] = {}
        self._expected: dict[str, Sent] = {}

    def claim(self, client_order_id: str, sent: Sent) -> None:
        self._sent[client_order_id] = sent

    def expect(self, client_order_id: str, sent: Sent) -> None:
        self._expected[client_order_id] = sent

    def sent(self, client_order_id: str) -> Sent | None:
        """What this process sent under `client_order_id` (not what a journal says an earlier one did)."""
        return self._sent.get(client_order_id)

    def differences(self, order: BrokerOrder) -> dict[str, tuple[str, str]]:
        """How `order` differs from what was sent under its client order id (empty: the same, or nothing known)."""
        cid = order.client_order_id
        sent = self._sent.get(cid) or self._expected.get(cid)
        return {} if sent is None else sent.differences(order)

    def refuse_foreign(self, order: BrokerOrder) -> None:
        """Raise `ClientOrderIdConflictError` for an order found under a client order id sent, not the one sent."""
        differences = self.differences(order)
        if differences:
            raise ClientOrderIdConflictError(order.client_order_id, order.order_id, differences)

    def keep_only(self, client_order_ids: set[str]) -> None:
        """Forget every client order id but `client_order_ids` (an adapter reused run after run holds no more)."""
        self._sent = {cid: sent for cid, sent in self._sent.items() if cid in client_order_ids}
        self._expected = {cid: sent for cid, sent in self._expected.items() if cid in client_order_ids}


@runtime_checkable
class ExpectsSent(Protocol):
    """A broker whose orders may outlive the run (Alpaca, the remote simulator; the in-process simulator when the
    Python API reuses it for another run), so that its client order ids may already name orders of
    another run under the same run id: a fresh run looks its first id up (`repeg.api`), and a resumed run tells it
    what the journal says was sent under an id before looking it up: an order found under it that differs is then
    refused (`ClientOrderIdConflictError`), not adopted, as in the process that sent it."""

    def expect(self, client_order_id: str, sent: Sent) -> None: ...


class Broker(Protocol):
    @property
    def name(self) -> str:
        """Short name for logs and the journal (e.g. 'simulator', 'alpaca-paper')."""
        ...

    @property
    def supports_replace(self) -> bool:
        """True when `replace_order` exists; else the engine re-pegs by cancel, confirm, submit."""
        ...

    @property
    def pushes_updates(self) -> bool:
        """True when order updates arrive through `subscribe_updates`; else the engine polls `get_order`."""
        ...

    async def submit_order(self, request: OrderRequest) -> BrokerOrder: ...

    async def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        """Replace an open order: returns the NEW order (new id); the old one goes replaced."""
        ...

    async def cancel_order(self, order_id: str) -> None:
        """Request a cancel. Confirmation arrives as an update (or by polling)."""
        ...

    async def get_order(self, order_id: str) -> BrokerOrder: ...

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None: ...

    async def list_open_orders(self) -> list[BrokerOrder]: ...

    async def get_account(self) -> Account: ...

    async def get_positions(self) -> list[Position]: ...

    async def get_asset(self, symbol: str) -> Asset:
        """Asset flags; raises `UnknownSymbolError` for a symbol the broker does not know."""
        ...

    def subscribe_updates(self, sink: UpdateSink) -> Unsubscribe | None:
        """Register a callback for pushed order updates (called on the event loop, in order). The callable returned
        removes it (the engine calls it as the run ends, so a broker reused across runs keeps no past run's sink);
        None: the broker keeps it as long as it lives."""
        ...
