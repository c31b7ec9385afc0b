"""What the user asks for (a trade list or target weights) and what the engine executes (leg specs)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from repeg.domain.orders import Side
from repeg.domain.ticks import ZERO


class TradeIntent(BaseModel):
    """One row of a trade list: a quantity or a dollar notional, never both."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    symbol: str = Field(min_length=1)
    side: Side
    qty: Decimal | None = Field(default=None, gt=ZERO)
    notional: Decimal | None = Field(default=None, gt=ZERO)

    @model_validator(mode="after")
    def _exactly_one_amount(self) -> TradeIntent:
        if (self.qty is None) == (self.notional is None):
            raise ValueError("exactly one of qty or notional is required")
        return self


class TargetWeight(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    symbol: str = Field(min_length=1)
    weight: Decimal = Field(ge=ZERO, le=Decimal(1))


class PlanKind(StrEnum):
    TRADES = "trades"
    WEIGHTS = "weights"


class Plan(BaseModel):
    """A parsed, validated plan file. `source` names the file for error messages and the journal."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    source: str
    kind: PlanKind
    trades: tuple[TradeIntent, ...] = ()
    weights: tuple[TargetWeight, ...] = ()

    @model_validator(mode="after")
    def _one_kind(self) -> Plan:
        if self.kind is PlanKind.TRADES and (self.weights or not self.trades):
            raise ValueError("a trade-list plan holds trades only, and at least one")
        if self.kind is PlanKind.WEIGHTS and (self.trades or not self.weights):
            raise ValueError("a weights plan holds weights only, and at least one")
        return self


class LegSpec(BaseModel):
    """One symbol's order as the engine will execute it: an exact side and quantity.

    `notional` legs (buys given in dollars) are sized to a quantity at the start of their phase, from the
    quote then valid; `qty` is then None until sized.
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    index: int = Field(ge=0)
    symbol: str
    side: Side
    qty: Decimal | None = Field(default=None, gt=ZERO)
    notional: Decimal | None = Field(default=None, gt=ZERO)
    whole_shares: bool = False
    #: True for a full exit: the exact position quantity is sold, never rounded.
    full_exit: bool = False

    @model_validator(mode="after")
    def _exactly_one_amount(self) -> LegSpec:
        if (self.qty is None) == (self.notional is None):
            raise ValueError("exactly one of qty or notional is required")
        return self


class SkippedTrade(BaseModel):
    """A trade that was not sent, and why (e.g. below the minimum notional): reported, not failed."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    symbol: str
    side: Side
    qty: Decimal
    reason: str
