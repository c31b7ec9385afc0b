"""The cut of an escalated buy to the buying power left: the quantity it covers and the reason the leg ends with."""

from __future__ import annotations

from decimal import Decimal

import pytest

from repeg.domain.buying_power import BuyingPowerCap, covered_qty


@pytest.mark.parametrize(
    ("whole_shares", "expected"),
    [(True, Decimal(152)), (False, Decimal("152.808506487"))],
)
def test_the_quantity_covered_is_rounded_down_to_the_brokers_precision(
    whole_shares: bool, expected: Decimal
) -> None:
    # The run-invariant case: 37.102 shares left at up to 42.29 cost 1,569.06 against 1,566.72 of buying power.
    assert covered_qty(Decimal("37.102"), Decimal("42.29"), Decimal("1566.72"), whole_shares) <= Decimal(
        "37.102"
    )
    covered = covered_qty(Decimal(1000), Decimal("10.2510"), Decimal("1566.44"), whole_shares)
    assert covered == expected
    assert covered * Decimal("10.2510") <= Decimal("1566.44")  # never more than the buying power pays for
    step = Decimal(1) if whole_shares else Decimal("1e-9")
    assert (covered + step) * Decimal("10.2510") > Decimal("1566.44")  # and the most it pays for


def test_the_quantity_covered_never_exceeds_what_was_asked() -> None:
    assert covered_qty(Decimal(3), Decimal(10), Decimal(1000), True) == Decimal(3)


@pytest.mark.parametrize(
    ("price", "buying_power"),
    [
        (Decimal(10), Decimal(0)),
        (Decimal(10), Decimal(-5)),
        (Decimal(0), Decimal(100)),
        (Decimal(10), Decimal(9)),
    ],
)
def test_nothing_is_covered_without_buying_power_a_price_or_a_whole_share(
    price: Decimal, buying_power: Decimal
) -> None:
    assert covered_qty(Decimal(5), price, buying_power, True) == 0


def test_the_reason_names_requested_sent_and_buying_power_exactly() -> None:
    cap = BuyingPowerCap(
        requested_qty=Decimal("37.102000000"),
        sent_qty=Decimal("37.047056041"),
        buying_power=Decimal("1566.72"),
        price=Decimal("42.29"),
    )
    assert cap.reason == (
        "insufficient buying power for the escalation: requested 37.102, sent 37.047056041 (buying power 1566.72"
        " covers 37.047056041 at up to 42.29 a share)"
    )
    nothing = cap.model_copy(update={"sent_qty": Decimal(0), "buying_power": Decimal("1E+1")})
    assert "nothing sent (buying power 10 covers 0" in nothing.reason  # plain notation, never 1E+1
