"""The top of book, and the one rule that decides whether a quote may be priced from."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator

from repeg.domain.ticks import ZERO

_TWO_HUNDRED = Decimal(200)


class Quote(BaseModel):
    """National (or venue) best bid and offer for one symbol at one instant.

    A side of 0 means "no quote on that side" (Alpaca's convention); such a quote is kept as data but is never
    priced from (see `assess_quote`).
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    symbol: str
    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal
    ts: datetime

    @field_validator("ts")
    @classmethod
    def _aware(cls, ts: datetime) -> datetime:
        if ts.tzinfo is None:
            raise ValueError("quote timestamp must be timezone-aware (UTC)")
        return ts

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    @property
    def spread(self) -> Decimal:
        return self.ask - self.bid


class QuoteVerdict(StrEnum):
    """Why a quote may or may not be priced from. Only VALID may be used."""

    VALID = "valid"
    MISSING = "missing"
    ZERO = "zero"  # a side at 0 or below: no price at all
    ONE_SIDED = "one_sided"  # one side positive, the other absent
    CROSSED = "crossed"  # bid > ask
    LOCKED = "locked"  # bid == ask: no spread to be passive in
    STALE = "stale"
    WIDE = "wide"  # spread over max_spread_pct of the mid


def assess_quote(
    quote: Quote | None, now: datetime, max_age: timedelta, max_spread_pct: Decimal
) -> QuoteVerdict:
    """Classify a quote. Pure; checks run in order, so the most fundamental defect is the one reported.

    WIDE compares `spread / mid * 100 > max_spread_pct` in the exact form `spread * 200 > max_spread_pct *
    (bid + ask)`: Decimal products of short prices are exact, so no division rounds near the limit.
    """
    if quote is None:
        return QuoteVerdict.MISSING
    bid, ask = quote.bid, quote.ask
    if bid <= ZERO or ask <= ZERO:
        return QuoteVerdict.ZERO if bid <= ZERO and ask <= ZERO else QuoteVerdict.ONE_SIDED
    if bid >= ask:
        return QuoteVerdict.CROSSED if bid > ask else QuoteVerdict.LOCKED
    if now - quote.ts > max_age:
        return QuoteVerdict.STALE
    if (ask - bid) * _TWO_HUNDRED > max_spread_pct * (bid + ask):
        return QuoteVerdict.WIDE
    return QuoteVerdict.VALID
