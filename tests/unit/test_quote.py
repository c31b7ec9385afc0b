"""Quote validation: each invalid kind is recognised; only VALID quotes are priced from."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from repeg.domain.quote import Quote, QuoteVerdict, assess_quote

NOW = datetime(2018, 1, 2, 15, 0, tzinfo=UTC)
AGE = timedelta(seconds=5)
WIDE_PCT = Decimal(10)


def quote(bid: str, ask: str, age_s: float = 0.0) -> Quote:
    return Quote(
        symbol="XXX",
        bid=Decimal(bid),
        bid_size=Decimal(100),
        ask=Decimal(ask),
        ask_size=Decimal(100),
        ts=NOW - timedelta(seconds=age_s),
    )


@pytest.mark.parametrize(
    ("q", "verdict"),
    [
        (None, QuoteVerdict.MISSING),
        (quote("0", "0"), QuoteVerdict.ZERO),
        (quote("107", "0"), QuoteVerdict.ONE_SIDED),  # the real incident: bid 107 / ask 0
        (quote("0", "107"), QuoteVerdict.ONE_SIDED),
        (quote("100.02", "100.01"), QuoteVerdict.CROSSED),
        (quote("100.01", "100.01"), QuoteVerdict.LOCKED),
        (quote("100.00", "100.02", age_s=5.001), QuoteVerdict.STALE),
        (quote("90.00", "100.00"), QuoteVerdict.WIDE),
        (quote("100.00", "100.02"), QuoteVerdict.VALID),
        (quote("100.00", "100.02", age_s=5.0), QuoteVerdict.VALID),  # exactly max age: not older
        (quote("95.00", "105.00"), QuoteVerdict.VALID),  # spread exactly 10% of the mid: not above
        (quote("94.99", "105.00"), QuoteVerdict.WIDE),
        (quote("94.9999", "105.00"), QuoteVerdict.WIDE),  # 10.00015%: one $0.0001 past the limit is past it
    ],
)
def test_each_quote_kind_is_classified(q, verdict):
    assert assess_quote(q, NOW, AGE, WIDE_PCT) is verdict


def test_a_crossed_zero_side_is_reported_as_one_sided_first():
    assert assess_quote(quote("-1", "5"), NOW, AGE, WIDE_PCT) is QuoteVerdict.ONE_SIDED


def test_quote_mid_and_spread_are_exact_decimals():
    q = quote("157.23", "157.26")
    assert q.mid == Decimal("157.245")
    assert q.spread == Decimal("0.03")


def test_naive_timestamps_are_refused():
    with pytest.raises(ValidationError, match="timezone-aware"):
        Quote(
            symbol="XXX",
            bid=Decimal(1),
            bid_size=Decimal(1),
            ask=Decimal(2),
            ask_size=Decimal(1),
            ts=datetime(2018, 1, 2, 15, 0),  # noqa: DTZ001 - the point of the test
        )


def test_quotes_are_frozen():
    q = quote("1", "2")
    with pytest.raises(ValidationError):
        q.bid = Decimal(3)  # type: ignore[misc]
