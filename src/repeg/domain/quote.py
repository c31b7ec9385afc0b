"""The top of book, and the one rule that decides whether a quote may be priced from."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator

from repeg.domain.ticks import ZERO


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
    """Classify a quote. Pure; checks run in order, so the most fundamental defect is the one reported."""
    if quote is None:
        return QuoteVerdict.MISSING
    checks = (
        (quote.bid <= ZERO and quote.ask <= ZERO, QuoteVerdict.ZERO),
        (quote.bid <= ZERO or quote.ask <= ZERO, QuoteVerdict.ONE_SIDED),
        (quote.bid > quote.ask, QuoteVerdict.CROSSED),
        (quote.bid == quote.ask, QuoteVerdict.LOCKED),
        (now - quote.ts > max_age, QuoteVerdict.STALE),
    )
    for failed, verdict in checks:
        if failed:
            return verdict
    if quote.spread / quote.mid * 100 > max_spread_pct:
        return QuoteVerdict.WIDE
    return QuoteVerdict.VALID
