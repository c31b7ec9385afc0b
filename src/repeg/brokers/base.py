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


@runtime_checkable
class ExpectsSent(Protocol):
    """A broker whose orders outlive the process (Alpaca), so that its client order ids may already name orders of
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
