"""The simulated account's starting state, as configured (e.g. a `[simulator]` TOML table)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation, getcontext
from types import MappingProxyType
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from repeg.config import ascii_number, missing_or_refused, not_negative_zero
from repeg.domain.plan import refuse_unplanned

#: Alpaca's share precision: the simulator refuses any order quantity finer than this.
_QTY_STEP = Decimal("0.000000001")
#: The largest holding: far beyond any real one (and any lab basket's), and small enough that a position kept to
#: 1e-9 shares stays exact in Decimal's 28 digits (1e19 has no room left for the 1e-9 grid) after later buys.
MAX_POSITION = Decimal(10) ** 18
#: The most starting cash: far beyond any real account, and small enough that the books stay exact in Decimal's
#: 28 digits after a fill (a notional has up to 13 decimals: 1e-9 shares at a $0.0001 price); $1e28 lost cents.
MAX_CASH = Decimal(10) ** 15

#: The validation context of an account whose symbols are a quote file's as written, not a plan's: the lab's, whose
#: basket trades the file's own symbol ("brk b" say) as written (`repeg.lab.backtest`, `runner.run_basket`).
AS_WRITTEN: Mapping[str, bool] = MappingProxyType({"symbols_as_written": True})


def share_grid_fault(qty: Decimal) -> str | None:
    """What keeps `qty` from being a whole number of 1e-9 shares (Alpaca's precision), in words that follow the
    quantity ("is too large: ..."); None when it is one. The simulator refuses an order of such a quantity, and a
    holding of one (its full exit would be such an order)."""
    try:
        on_grid = qty == qty.quantize(_QTY_STEP)
    except InvalidOperation:  # kept to 1e-9 shares, it needs more digits than the context holds
        return f"is too large: to the {_QTY_STEP} share it needs more than {getcontext().prec} digits"
    return None if on_grid else f"is finer than {_QTY_STEP} shares"


def _decimal_from_number(value: object) -> object:
    """TOML gives floats for `1000000.50`; read them through their text so 0.1 stays 0.1."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return ascii_number(value)  # "\u0661" is 1 to Decimal: ASCII digits only, as everywhere in the config


def _position_valid(qty: Decimal) -> Decimal:
    """A long holding the simulator can trade out of: over 0, at most `MAX_POSITION`, on the 1e-9 share grid (so
    that its full exit is an order the simulator takes). Refused at `positions.<symbol>`, with the value written."""
    if qty <= 0:
        raise PydanticCustomError("position", "must be over 0")
    if qty > MAX_POSITION:
        raise PydanticCustomError(
            "position", "must be at most {limit} shares", {"limit": f"{MAX_POSITION:,}"}
        )
    if share_grid_fault(qty) is not None:  # never too large: MAX_POSITION to 1e-9 shares is 28 digits
        raise PydanticCustomError("position", "must be a multiple of {step} shares", {"step": str(_QTY_STEP)})
    return qty


#: One holding's quantity: read through its text when TOML gives a float, then `_position_valid`.
Position = Annotated[Decimal, BeforeValidator(_decimal_from_number), AfterValidator(_position_valid)]


class SimAccount(BaseModel):
    """Starting cash and holdings of a cash account (buying power is cash less open buy orders)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cash: Decimal = Field(default=Decimal(1_000_000), ge=0)
    #: Long positions only (the simulator does not lend shares): symbol -> quantity.
    positions: dict[str, Position] = Field(default_factory=dict)
    non_tradable: tuple[str, ...] = ()
    non_fractionable: tuple[str, ...] = ()

    @field_validator("cash", mode="before")
    @classmethod
    def _cash_text(cls, value: object) -> object:
        return _decimal_from_number(value)

    @field_validator("cash")
    @classmethod
    def _cash_bounded(cls, value: Decimal) -> Decimal:
        not_negative_zero(value)
        if value > MAX_CASH:
            raise PydanticCustomError("cash", "must be at most {limit}", {"limit": f"{MAX_CASH:,}"})
        return value

    @field_validator("positions", "non_tradable", "non_fractionable")
    @classmethod
    def _symbols_as_plans_name_them(
        cls, value: dict[str, Decimal] | tuple[str, ...], info: ValidationInfo
    ) -> dict[str, Decimal] | tuple[str, ...]:
        """A symbol written otherwise than a plan names it (`plan_symbol`: lower case, padded) would never meet
        the plan's: a holding no plan can sell, a refusal that refuses nothing. Refused, naming it, except in an
        account validated `AS_WRITTEN` (no plan trades it: a basket trades its quote file's symbols as written)."""
        if not (isinstance(info.context, Mapping) and info.context.get("symbols_as_written") is True):
            refuse_unplanned(value)
        return value

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> SimAccount:
        """Validate a `[simulator]` table; the first bad key raises `ConfigError` naming it."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in first["loc"]) or "simulator"
            # Not chained to pydantic's error: its text prints the input, which a ConfigError may withhold.
            raise missing_or_refused(first, key) from None
