"""What the user asks for (a trade list or target weights) and what the engine executes (leg specs)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import MAX_EMAX, MIN_EMIN, Decimal, Inexact, localcontext
from enum import StrEnum
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from repeg.domain.orders import Side
from repeg.domain.ticks import ZERO

#: The largest qty or notional of a trade: far beyond any real trade, and small enough that a quantity kept to
#: 1e-9 shares (`ticks.round_qty_down`) stays inside Decimal's default 28 digits, even for a notional sized
#: at the lowest legal price ($0.0001: at most 1e16 shares). Beyond it, deriving the legs would fail.
MAX_AMOUNT = Decimal(10) ** 12

#: Exchange tickers plus the share-class separators brokers use (BRK.B, BRK/B, BF-B).
_SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9]*([./-][A-Z0-9]+)?$")
_MAX_SYMBOL_LEN = 12


def is_ticker(text: str) -> bool:
    """Whether `text` is a symbol as a plan names it (trimmed, upper case, a ticker of at most 12 characters)."""
    return len(text) <= _MAX_SYMBOL_LEN and _SYMBOL_RE.fullmatch(text) is not None


def plain_number_text(text: str) -> bool:
    """Whether `Decimal` may read `text` as a user wrote it: ASCII only and no `_` separators (`Decimal` reads any
    script's digits, "\u0661\u0660" as 10, and "1_0" as 10). Plans, the config and the lab's options all ask this."""
    return text.strip().isascii() and "_" not in text


def plan_symbol(value: str) -> str:
    """A plan's symbol as every path takes it (a file row or a `TradeIntent` built in Python): trimmed and upper
    case, so that "aapl" names the position, quote and asset AAPL (and is one symbol with "AAPL"); a `ValueError`
    when nothing is left. The ticker shape (`is_ticker`) is checked where a user writes a symbol (a plan file,
    the run's TOML): a basket replays whatever symbols its quote file holds, and a broker refuses a symbol it does
    not know (`UnknownSymbolError`) before any order. Only ASCII is upper-cased: "\u0131bm" (dotless i) would
    read IBM, a ticker the user never wrote; kept as written, the broker refuses it."""
    symbol = value.strip()
    symbol = symbol.upper() if symbol.isascii() else symbol
    if not symbol:
        raise ValueError(f"symbol {value!r} is blank")
    return symbol


def refuse_unplanned(symbols: Iterable[str]) -> None:
    """A `ValueError` naming the first of `symbols` written otherwise than a plan names it (`plan_symbol`: lower
    case, padded): a setting or holding under that name would never meet the plan's symbol."""
    for symbol in symbols:
        named = plan_symbol(symbol)
        if named != symbol:
            raise ValueError(f"symbol {symbol!r} must be written as a plan names it: {named}")


#: The validation context a journal reads its events back under (`repeg.journal.store`).
JOURNALED: Mapping[str, bool] = MappingProxyType({"journaled": True})


def _as_planned(value: str, info: ValidationInfo) -> str:
    """`plan_symbol`, except in a plan read back from a journal: that is the record of what ran, and a plan built in
    Python before symbols were normalised kept them as written ("aapl" and "AAPL" two weights), so it reads as is."""
    if isinstance(info.context, Mapping) and info.context.get("journaled") is True:
        return value
    return plan_symbol(value)


class TradeIntent(BaseModel):
    """One row of a trade list: a quantity or a dollar notional, never both, each at most `MAX_AMOUNT`; its symbol
    taken as a plan file's is (`plan_symbol`)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    symbol: str = Field(min_length=1)
    side: Side
    qty: Decimal | None = Field(default=None, gt=ZERO, le=MAX_AMOUNT)
    notional: Decimal | None = Field(default=None, gt=ZERO, le=MAX_AMOUNT)

    _symbol_as_planned = field_validator("symbol")(_as_planned)

    @model_validator(mode="after")
    def _exactly_one_amount(self) -> TradeIntent:
        if (self.qty is None) == (self.notional is None):
            raise ValueError("exactly one of qty or notional is required")
        return self


class TargetWeight(BaseModel):
    """One row of a target-weights plan; its symbol taken as a plan file's is (`plan_symbol`)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    symbol: str = Field(min_length=1)
    weight: Decimal = Field(ge=ZERO, le=Decimal(1))

    _symbol_as_planned = field_validator("symbol")(_as_planned)

    @field_validator("weight")
    @classmethod
    def _not_negative_zero(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        """-0 is refused, as a plan file's is: a sign written on a weight; a journaled one reads back as it ran."""
        journaled = isinstance(info.context, Mapping) and info.context.get("journaled") is True
        if value.is_signed() and not journaled:
            raise ValueError("weight must be 0 or more, not -0")
        return value


#: Digits an exact sum is computed with; a sum that needs more raises `decimal.Inexact` rather than rounding.
_SUM_DIGITS = 200


def _absent(value: object) -> bool:
    return value is None


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The sum, never rounded (the default 28-digit context rounds 1 + 1e-28 to 1); `Inexact` if it must be."""
    with localcontext() as context:
        context.prec, context.Emax, context.Emin = _SUM_DIGITS, MAX_EMAX, MIN_EMIN
        context.traps[Inexact] = True
        return sum(values, ZERO)


def _check_weights(weights: Sequence[TargetWeight]) -> None:
    """Each symbol once, the sum at most 1 (a trade list may repeat a symbol: a basket does)."""
    seen: set[str] = set()
    for target in weights:
        if target.symbol in seen:
            raise ValueError(f"symbol {target.symbol} appears twice")
        seen.add(target.symbol)
    try:
        total = exact_sum(target.weight for target in weights)
    except Inexact:
        raise ValueError("weights carry too many digits to be summed exactly") from None
    if total > Decimal(1):
        raise ValueError(f"weights sum to {total}, more than 1")


class PlanKind(StrEnum):
    TRADES = "trades"
    WEIGHTS = "weights"


def _no_rows(rows: tuple[int, ...]) -> bool:
    return not rows


class Plan(BaseModel):
    """A parsed, validated plan file. `source` names the file for error messages and the journal.

    `rows` holds the file row of each trade or weight, in order, so that a refusal found later (a symbol the
    broker does not know) names the row as a parse error would; empty for a plan built in Python or journaled
    before rows were kept, and then left out of the JSON (such a journal reads and writes exactly as before).
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    source: str
    kind: PlanKind
    trades: tuple[TradeIntent, ...] = ()
    weights: tuple[TargetWeight, ...] = ()
    rows: tuple[int, ...] = Field(default=(), exclude_if=_no_rows)

    @model_validator(mode="after")
    def _one_kind(self) -> Plan:
        if self.kind is PlanKind.TRADES and (self.weights or not self.trades):
            raise ValueError("a trade-list plan holds trades only, and at least one")
        if self.kind is PlanKind.WEIGHTS and (self.trades or not self.weights):
            raise ValueError("a weights plan holds weights only, and at least one")
        _check_weights(self.weights)
        entries = len(self.trades) + len(self.weights)
        if self.rows and len(self.rows) != entries:
            raise ValueError(f"rows holds {len(self.rows)} row numbers for {entries} entries")
        return self

    def row_of(self, symbol: str) -> int | None:
        """The file row where `symbol` first appears; None when rows are not kept or the symbol is absent."""
        if not self.rows:
            return None
        symbols = [trade.symbol for trade in self.trades] + [target.symbol for target in self.weights]
        return next((row for name, row in zip(symbols, self.rows, strict=True) if name == symbol), None)


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
    #: What a notional trade asked for, in dollars (its `qty` is only an estimate, 0 without a price). Left out of
    #: the JSON when None, so a quantity trade is journaled exactly as before.
    notional: Decimal | None = Field(default=None, exclude_if=_absent)
