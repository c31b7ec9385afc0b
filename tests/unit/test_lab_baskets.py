"""Baskets: generated from a spec or read from a CSV of arrivals."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from repeg.domain.orders import Side
from repeg.errors import ConfigError, PlanInputError
from repeg.lab.baskets import BasketSpec, SidePattern, Spacing, load_arrivals, make_basket

OPEN = datetime(2018, 1, 2, 14, 30, tzinfo=UTC)
CLOSE = datetime(2018, 1, 2, 21, 0, tzinfo=UTC)


def test_default_basket_is_200_alternating_100_share_orders() -> None:
    basket = make_basket(BasketSpec(), "XXX", OPEN, CLOSE, seed=0)
    assert len(basket) == 200
    assert [o.side for o in basket[:3]] == [Side.BUY, Side.SELL, Side.BUY]
    assert {o.qty for o in basket} == {Decimal(100)}


def test_every_budget_ends_inside_the_session() -> None:
    basket = make_basket(BasketSpec(count=50, budget_seconds=120), "XXX", OPEN, CLOSE, seed=0)
    assert basket[0].arrival >= OPEN + timedelta(seconds=60)
    assert all(o.arrival + timedelta(seconds=o.budget_seconds) <= CLOSE for o in basket)


def test_even_spacing_is_strictly_increasing() -> None:
    basket = make_basket(BasketSpec(count=10), "XXX", OPEN, CLOSE, seed=0)
    assert all(a.arrival < b.arrival for a, b in itertools.pairwise(basket))


def test_even_spacing_spreads_arrivals_over_the_session_less_both_margins_and_one_budget() -> None:
    # The module docstring gave the span as the session less both margins, leaving out the budget the code (rightly)
    # keeps free before the closing margin so that the last order's budget ends inside the session.
    basket = make_basket(BasketSpec(count=10, budget_seconds=120), "XXX", OPEN, CLOSE, seed=0)
    span = (CLOSE - OPEN).total_seconds() - 2 * 60 - 120
    assert (basket[1].arrival - basket[0].arrival).total_seconds() == pytest.approx(span / 10)


def test_random_spacing_and_sides_are_reproducible_from_the_seed() -> None:
    spec = BasketSpec(count=20, sides=SidePattern.RANDOM, spacing=Spacing.RANDOM)
    assert make_basket(spec, "XXX", OPEN, CLOSE, seed=4) == make_basket(spec, "XXX", OPEN, CLOSE, seed=4)
    assert make_basket(spec, "XXX", OPEN, CLOSE, seed=4) != make_basket(spec, "XXX", OPEN, CLOSE, seed=5)


def test_session_too_short_is_refused() -> None:
    with pytest.raises(ConfigError, match="too short"):
        make_basket(BasketSpec(), "XXX", OPEN, OPEN + timedelta(seconds=100), seed=0)


def test_arrivals_csv_is_read_sorted_with_default_budget(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text(
        "ts,side,qty,budget_seconds\n2018-01-02T15:00:00Z,sell,50,\n2018-01-02T14:45:00.5Z,BUY,100,30\n",
        encoding="utf-8",
    )
    basket = load_arrivals(path, "XXX", default_budget_seconds=90)
    assert [(o.side, o.qty, o.budget_seconds) for o in basket] == [
        (Side.BUY, Decimal(100), 30.0),
        (Side.SELL, Decimal(50), 90.0),
    ]
    assert basket[0].arrival == datetime(2018, 1, 2, 14, 45, 0, 500000, tzinfo=UTC)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_an_arrivals_csv_that_starts_with_a_utf8_bom_is_read(tmp_path: Path, suffix: str) -> None:
    # As a spreadsheet saves "CSV UTF-8": the BOM became part of the first column's name, so every row was refused
    # with "ts: not an ISO-8601 timestamp" (the value None), where plans and quote files accept the BOM.
    import gzip

    text = "\ufeffts,side,qty\n2018-01-02T15:00:00Z,buy,50\n".encode()
    path = tmp_path / f"arrivals{suffix}"
    path.write_bytes(gzip.compress(text) if suffix == ".csv.gz" else text)
    basket = load_arrivals(path, "XXX")
    assert [(o.side, o.qty) for o in basket] == [(Side.BUY, Decimal(50))]


def test_arrivals_csv_bad_side_names_row_and_field(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text("ts,side,qty\n2018-01-02T15:00:00Z,hold,50\n", encoding="utf-8")
    with pytest.raises(PlanInputError, match=r"row 2, field 'side'"):
        load_arrivals(path, "XXX")


def test_arrivals_csv_counts_a_blank_line_as_a_plan_does(tmp_path: Path) -> None:
    # Rows were numbered by record from 2, blank lines skipped: the bad side below, on line 4, was "row 3", where a
    # plan (and now a quote file) names the line an editor shows.
    path = tmp_path / "arrivals.csv"
    path.write_text(
        "ts,side,qty\n2018-01-02T15:00:00Z,buy,50\n\n2018-01-02T15:00:01Z,hold,50\n", encoding="utf-8"
    )
    with pytest.raises(PlanInputError, match=r"row 4, field 'side'"):
        load_arrivals(path, "XXX")


def test_arrivals_csv_names_a_row_spanning_lines_by_its_first_line(tmp_path: Path) -> None:
    # As a plan's: the row below starts on line 3 and was named by the line it ends on, 4.
    path = tmp_path / "arrivals.csv"
    path.write_text(
        'ts,side,qty\n2018-01-02T15:00:00Z,buy,50\n2018-01-02T15:00:01Z,"ho\nld",50\n', encoding="utf-8"
    )
    with pytest.raises(PlanInputError, match=r"row 3, field 'side'"):
        load_arrivals(path, "XXX")


@pytest.mark.parametrize(
    ("cells", "row"),
    [
        ('2018-01-02T15:00:01Z,buy,"5"0', 3),  # lenient reading took it as 50 shares
        ('2018-01-02T15:00:01Z,buy,"' + "5" * 200_000 + '"', 3),  # csv.Error escaped: an internal failure
        ('2018-01-02T15:00:01Z,"buy,50', 3),  # unterminated: read to the end as the side
    ],
)
def test_arrivals_csv_that_is_malformed_is_refused_as_a_plan_is(tmp_path: Path, cells: str, row: int) -> None:
    # A plan's CSV is read strictly and a csv.Error refused naming its row (test_plan_parse's malformed CSV
    # cases); an arrivals file was read leniently, and the csv module's own errors escaped load_arrivals.
    path = tmp_path / "arrivals.csv"
    path.write_text(f"ts,side,qty\n2018-01-02T15:00:00Z,buy,50\n{cells}\n", encoding="utf-8")
    with pytest.raises(PlanInputError) as caught:
        load_arrivals(path, "XXX")
    assert (caught.value.row, caught.value.reason[:13]) == (row, "malformed CSV")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a typo'd column was ignored: every order took the default budget, 60 s, not the 10 s written
        ("ts,side,qty,budget\n{t},buy,5,10\n", (1, "budget", None, "unknown column")),
        # an unquoted thousands separator: the cell past the header was ignored, 1 share read for 1,000
        ("ts,side,qty\n{t},buy,1,000\n", (2, None, "000", "row has 4 cells, the header 3")),
        # the later of two columns won
        ("ts,side,qty,qty\n{t},buy,5,7\n", (1, "qty", None, "column appears twice")),
        # each row was refused as 'qty: not a number'
        ("ts,side\n{t},buy\n", (1, "qty", None, "missing column")),
    ],
)
def test_an_arrivals_header_and_rows_are_held_to_a_plans_rules(
    tmp_path: Path, text: str, expected: tuple[int, str | None, str | None, str]
) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text(text.format(t="2018-01-02T15:00:00Z"), encoding="utf-8")
    with pytest.raises(PlanInputError) as caught:
        load_arrivals(path, "XXX")
    error = caught.value
    assert (error.row, error.field, error.value, error.reason.split(" (")[0]) == expected


def test_an_arrivals_file_may_end_its_header_and_rows_with_empty_cells_as_a_plan(tmp_path: Path) -> None:
    # As a spreadsheet saves a sheet once wider (942e94d for plans); blank lines before the header are skipped.
    path = tmp_path / "arrivals.csv"
    path.write_text("\nts,side,qty,,\n2018-01-02T15:00:00Z,buy,5,,\n2018-01-02T15:00:01Z,sell,7\n")
    basket = load_arrivals(path, "XXX", default_budget_seconds=30)
    assert [(o.side, o.qty, o.budget_seconds) for o in basket] == [
        (Side.BUY, Decimal(5), 30.0),
        (Side.SELL, Decimal(7), 30.0),
    ]


def test_arrivals_csv_naive_timestamp_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text("ts,side,qty\n2018-01-02T15:00:00,buy,50\n", encoding="utf-8")
    with pytest.raises(PlanInputError, match="UTC"):
        load_arrivals(path, "XXX")


def test_arrivals_csv_short_row_names_the_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text("ts,side,qty\n2018-01-02T15:00:00Z,buy\n", encoding="utf-8")
    with pytest.raises(PlanInputError, match=r"row 2, field 'qty'"):
        load_arrivals(path, "XXX")


@pytest.mark.parametrize("budget", ["nan", "inf"])
def test_arrivals_csv_non_finite_budget_names_row_and_field(tmp_path: Path, budget: str) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text(f"ts,side,qty,budget_seconds\n2018-01-02T15:00:00Z,buy,50,{budget}\n", encoding="utf-8")
    with pytest.raises(PlanInputError, match=r"row 2, field 'budget_seconds'"):
        load_arrivals(path, "XXX")


def test_an_arrivals_file_that_is_not_utf8_is_refused_naming_it(tmp_path: Path) -> None:
    # UnicodeDecodeError escaped: `repeg backtest --arrivals` printed the codec's message, naming no file.
    path = tmp_path / "arrivals.csv"
    path.write_bytes(b"ts,side,qty\n2018-01-03T15:00:00Z,buy,100\n# caf\xe9\n")
    with pytest.raises(PlanInputError) as caught:
        load_arrivals(path, "XXX")
    assert caught.value.file == str(path)


def test_a_gzipped_arrivals_file_named_in_upper_case_is_read_decompressed(tmp_path: Path) -> None:
    # The suffix was compared as '.gz' only: ARRIVALS.CSV.GZ was read as text and refused as 'not UTF-8 text',
    # where quote and trade files take '.gz' in any case.
    import gzip

    path = tmp_path / "ARRIVALS.CSV.GZ"
    path.write_bytes(gzip.compress(b"ts,side,qty\n2018-01-02T15:00:00Z,sell,25\n"))
    assert [(o.side, o.qty) for o in load_arrivals(path, "XXX")] == [(Side.SELL, Decimal(25))]
