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
from typing import Protocol

from repeg.domain.account import Account, Asset, Position
from repeg.domain.orders import BrokerOrder, OrderRequest, OrderUpdate, ReplaceRequest

UpdateSink = Callable[[OrderUpdate], None]


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

    def subscribe_updates(self, sink: UpdateSink) -> None:
        """Register a callback for pushed order updates (called on the event loop, in order)."""
        ...
