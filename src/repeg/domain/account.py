"""Account, positions and asset facts as read from a broker."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict


class Account(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    cash: Decimal
    buying_power: Decimal
    equity: Decimal


class Position(BaseModel):
    """A holding. `qty` is signed: negative for a short."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    market_value: Decimal


class Asset(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    symbol: str
    tradable: bool
    fractionable: bool
    shortable: bool = False
