"""Plan files: every accepted shape, and every defect named by file, row, field and value."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from repeg.domain.orders import Side
from repeg.domain.plan import Plan, PlanKind, TargetWeight, TradeIntent
from repeg.errors import PlanInputError
from repeg.planning.parse import load_plan, parse_csv, parse_json


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def csv_error(text: str) -> PlanInputError:
    with pytest.raises(PlanInputError) as info:
        parse_csv(text, "plan.csv")
    return info.value


def json_error(text: str) -> PlanInputError:
    with pytest.raises(PlanInputError) as info:
        parse_json(text, "plan.json")
    return info.value


# --- accepted shapes ----------------------------------------------------------------------------------------


def test_reads_a_qty_trade_list_from_csv(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, "t.csv", "symbol,side,qty\naapl,BUY,10\nMSFT,sell,2.5\n"))
    assert plan.kind is PlanKind.TRADES
    assert plan.source == str(tmp_path / "t.csv")
    assert [(t.symbol, t.side, t.qty, t.notional) for t in plan.trades] == [
        ("AAPL", Side.BUY, Decimal(10), None),
        ("MSFT", Side.SELL, Decimal("2.5"), None),
    ]


def test_reads_a_notional_trade_list_from_csv() -> None:
    plan = parse_csv("Symbol , Side , Notional\nSPY,buy,1000.50\n", "p.csv")
    assert plan.trades[0].notional == Decimal("1000.50")
    assert plan.trades[0].qty is None


def test_mixes_qty_and_notional_rows_when_both_columns_exist() -> None:
    plan = parse_csv("symbol,side,qty,notional\nA,buy,5,\nB,sell,,250\n", "p.csv")
    assert (plan.trades[0].qty, plan.trades[1].notional) == (Decimal(5), Decimal(250))


def test_reads_target_weights_from_csv_with_bom_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes("\ufeffsymbol,weight\nAAPL,0.25\n\nBRK.B,0.5\n".encode())
    plan = load_plan(path)
    assert plan.kind is PlanKind.WEIGHTS
    assert [(w.symbol, w.weight) for w in plan.weights] == [
        ("AAPL", Decimal("0.25")),
        ("BRK.B", Decimal("0.5")),
    ]


def test_weights_summing_to_exactly_one_are_accepted() -> None:
    plan = parse_csv("symbol,weight\nA,0.1\nB,0.2\nC,0.7\n", "p.csv")
    assert sum(w.weight for w in plan.weights) == Decimal(1)


def test_json_numbers_are_parsed_as_exact_decimals(tmp_path: Path) -> None:
    plan = load_plan(
        write(
            tmp_path,
            "w.json",
            '{"weights": [{"symbol": "A", "weight": 0.1}, {"symbol": "B", "weight": 0.2}]}',
        )
    )
    assert [w.weight for w in plan.weights] == [Decimal("0.1"), Decimal("0.2")]


def test_reads_a_trade_list_from_a_top_level_json_array() -> None:
    plan = parse_json(
        '[{"symbol": "A", "side": "buy", "qty": "3"}, {"symbol": "B", "side": "sell", "notional": 99}]',
        "p.json",
    )
    assert (plan.trades[0].qty, plan.trades[1].notional) == (Decimal(3), Decimal(99))


# --- file-level defects -------------------------------------------------------------------------------------


def test_empty_csv_file_is_refused() -> None:
    error = csv_error("")
    assert (error.file, error.row, error.field) == ("plan.csv", None, None)
    assert "empty plan" in str(error)


def test_blank_lines_before_the_header_are_skipped_as_blank_rows_are() -> None:
    # A file starting with blank lines was refused as "empty plan: no header and no rows".
    plan = parse_csv("\n,,\nsymbol,side,qty\nAAPL,buy,1\n", "plan.csv")
    assert ([t.symbol for t in plan.trades], plan.rows) == (["AAPL"], (4,))


def test_a_header_after_blank_lines_is_named_by_its_own_row() -> None:
    error = csv_error("\n\nsymbol,side,qtty\nAAPL,buy,1\n")
    assert (error.row, error.field, error.reason.split(" (")[0]) == (3, "qtty", "unknown column")


def test_header_without_rows_is_refused() -> None:
    assert "a header but no rows" in str(csv_error("symbol,side,qty\n"))


def test_empty_json_array_is_refused() -> None:
    assert "empty plan" in str(json_error("[]"))


def test_unsupported_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanInputError, match="unsupported plan file type"):
        load_plan(write(tmp_path, "plan.xlsx", "x"))


def test_missing_file_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(PlanInputError, match=r"nope\.csv: cannot read plan file"):
        load_plan(tmp_path / "nope.csv")


def test_invalid_json_names_the_line() -> None:
    error = json_error('[{"symbol": "A",\n "side": }]')
    assert "invalid JSON at line 2, column 10" in error.reason


def test_json_nested_too_deeply_is_bad_input_not_an_internal_error() -> None:
    # json.loads raised RecursionError: `repeg run` printed a traceback and exited 1 (a bug) for a bad file.
    error = json_error("[" * 100_000 + "]" * 100_000)
    assert (error.file, error.row, error.reason) == ("plan.json", None, "invalid JSON: nested too deeply")


def test_invalid_json_does_not_call_its_line_a_row() -> None:
    # A JSON plan's rows are its objects: "row 3" for line 3 of a pretty-printed file sent the user to the
    # third object, when the fault was in the first.
    error = json_error('[\n  {\n    "symbol": "A",,\n  }\n]')
    assert error.row is None
    assert (
        str(error)
        == "plan.json: invalid JSON at line 3, column 19: Expecting property name enclosed in double quotes"
    )


def test_json_object_with_other_keys_is_refused() -> None:
    assert 'one "trades"/"weights" key' in str(json_error('{"orders": []}'))


def test_json_row_that_is_not_an_object_is_refused() -> None:
    error = json_error('[["A", "buy", 1]]')
    assert (error.row, error.reason) == (1, "each row must be a JSON object")


# --- columns ------------------------------------------------------------------------------------------------


def test_unknown_column_is_named() -> None:
    error = csv_error("symbol,side,qty,price\nA,buy,1,10\n")
    assert (error.row, error.field) == (1, "price")
    assert str(error) == (
        "plan.csv, row 1, field 'price': unknown column (a trades plan has: notional, qty, side, symbol)"
    )


def test_missing_side_column_is_named() -> None:
    error = csv_error("symbol,qty\nA,1\n")
    assert (error.field, error.reason) == ("side", "missing column")


def test_trade_list_without_qty_or_notional_is_refused() -> None:
    assert "needs qty or notional" in str(csv_error("symbol,side\nA,buy\n"))


def test_weights_plan_with_a_side_column_is_refused() -> None:
    error = csv_error("symbol,side,weight\nA,buy,0.5\n")
    assert error.field == "side"
    assert "unknown column" in error.reason


def test_repeated_column_is_refused() -> None:
    assert csv_error("symbol,side,qty,qty\nA,buy,1,1\n").reason == "column appears twice"


def test_row_with_more_cells_than_the_header_is_refused() -> None:
    error = csv_error("symbol,side,qty\nA,buy,1,oops\n")
    assert (error.row, error.value) == (2, "oops")


def test_a_row_whose_quoted_cell_spans_lines_is_named_by_the_line_it_starts_on() -> None:
    # It was named by the line it ends on (the csv reader's line_num after reading it): row 4 here, where the
    # editor shows the row starting on line 3, and a quote file's refusal names a record's first line.
    error = csv_error('symbol,side,qty\nB,buy,1\n"A\nA",buy,1\n')
    assert (error.row, error.field) == (3, "symbol")


@pytest.mark.parametrize(
    "text",
    [
        "symbol,weight\nAAA,0.5,,\nBBB,0.25,\n",  # data rows padded, the header not
        "symbol,weight,,\nAAA,0.5,,\nBBB,0.25,,\n",  # as a spreadsheet saves a sheet once wider
        "symbol,weight,,\nAAA,0.5\nBBB,0.25, ,\n",
    ],
)
def test_empty_trailing_columns_as_a_spreadsheet_exports_them_are_read(text: str) -> None:
    # "AAA,0.5,," was refused ("row has 4 cells, the header 2"), and a header "symbol,weight,," as an unknown
    # column '': a plan saved from a spreadsheet whose sheet was once wider. A column with neither name nor value
    # holds nothing to misread.
    plan = parse_csv(text, "plan.csv")
    assert plan.weights == (
        TargetWeight(symbol="AAA", weight=Decimal("0.5")),
        TargetWeight(symbol="BBB", weight=Decimal("0.25")),
    )
    assert plan.rows == (2, 3)


@pytest.mark.parametrize(
    ("text", "row", "value", "reason"),
    [
        ("symbol,side,qty\nA,buy,1,,oops\n", 2, "oops", "row has 5 cells, the header 3"),
        ("symbol,side,qty,,\nA,buy,1,\nB,buy,1,,x\n", 3, "x", "row has 5 cells, the header 3"),
        (
            "symbol,,side,qty\nA,,buy,1\n",
            1,
            None,
            "unknown column (a trades plan has: notional, qty, side, symbol)",
        ),
    ],
)
def test_a_value_beyond_the_named_columns_or_an_unnamed_column_between_them_is_still_refused(
    text: str, row: int, value: str | None, reason: str
) -> None:
    error = csv_error(text)
    assert (error.row, error.value, error.reason) == (row, value, reason)


# --- cells --------------------------------------------------------------------------------------------------


def test_negative_qty_names_row_field_and_value() -> None:
    error = csv_error("symbol,side,qty\nA,buy,1\nB,sell,-5\n")
    assert (error.file, error.row, error.field, error.value) == ("plan.csv", 3, "qty", "-5")
    assert str(error) == "plan.csv, row 3, field 'qty' = '-5': qty must be greater than 0"


def test_zero_qty_is_refused() -> None:
    assert csv_error("symbol,side,qty\nA,buy,0\n").reason == "qty must be greater than 0"


def test_zero_notional_is_refused() -> None:
    assert csv_error("symbol,side,notional\nA,buy,0.00\n").field == "notional"


def test_non_numeric_qty_is_refused() -> None:
    error = csv_error("symbol,side,qty\nA,buy,ten\n")
    assert (error.field, error.value, error.reason) == ("qty", "ten", "not a number")


def test_underscored_number_is_not_a_number() -> None:
    assert csv_error("symbol,side,qty\nA,buy,1_000\n").reason == "not a number"


def test_infinite_qty_is_refused() -> None:
    assert csv_error("symbol,side,qty\nA,buy,Infinity\n").reason == "not a finite number"


def test_json_nan_qty_is_shown_as_written_and_refused_as_not_finite() -> None:
    # Python's json reads the non-standard NaN as a float: the error showed "= nan" and called it "not a number",
    # where the same value in a CSV file reads "= 'NaN': not a finite number".
    error = json_error('[{"symbol": "A", "side": "buy", "qty": NaN}]')
    assert (error.row, error.field, error.value, error.reason) == (1, "qty", "NaN", "not a finite number")


def test_json_negative_infinity_weight_is_shown_as_written() -> None:
    error = json_error('[{"symbol": "A", "weight": -Infinity}]')
    assert (error.row, error.field, error.value, error.reason) == (
        1,
        "weight",
        "-Infinity",
        "not a finite number",
    )


def test_json_nan_symbol_is_refused_as_a_number_not_read_as_a_ticker() -> None:
    error = json_error('[{"symbol": NaN, "side": "buy", "qty": 1}]')
    assert (error.field, error.value, error.reason) == ("symbol", "NaN", "expected text, got a number")


@pytest.mark.parametrize("number", ["1e999999999999999999999", "1e-999999999999999999999"])
def test_a_json_number_beyond_decimal_range_is_not_a_number_as_in_a_csv(number: str) -> None:
    # The same qty in a CSV reads "'1e999999999999999999999': not a number" (exit 2); in JSON the parser's
    # Decimal() raised decimal.InvalidOperation out of parse_json: `repeg run` said "internal error" (exit 1).
    error = json_error(f'[{{"symbol": "A", "side": "buy", "qty": {number}}}]')
    assert (error.row, error.field, error.value, error.reason) == (1, "qty", number, "not a number")


def test_json_boolean_qty_is_not_a_number() -> None:
    error = json_error('[{"symbol": "A", "side": "buy", "qty": true}]')
    assert (error.field, error.value, error.reason) == ("qty", True, "not a number")


def test_a_bad_json_number_is_shown_as_written_not_as_a_python_decimal() -> None:
    # The message read "plan.json, row 1, field 'qty' = Decimal('-5'): ...": Python's repr, not the user's value.
    error = json_error('[{"symbol": "A", "side": "buy", "qty": -5}]')
    assert error.value == "-5"
    assert str(error) == "plan.json, row 1, field 'qty' = '-5': qty must be greater than 0"


def test_a_json_number_where_text_belongs_is_shown_as_written() -> None:
    assert "= '7':" in str(json_error('[{"symbol": 7, "side": "buy", "qty": 1}]'))


def test_a_json_plan_that_is_not_an_array_names_what_it_is_in_json_words() -> None:
    # The value read 'Decimal' (the parser's Python type) for a plan file holding the number 5.
    assert json_error("5").value == "a number"
    assert json_error('"AAPL"').value == "a string"
    assert json_error("null").value == "null"


def test_bad_side_is_refused() -> None:
    error = csv_error("symbol,side,qty\nA,hold,1\n")
    assert (error.row, error.field, error.value, error.reason) == (
        2,
        "side",
        "hold",
        "side must be buy or sell",
    )


def test_missing_side_value_is_refused() -> None:
    assert csv_error("symbol,side,qty\nA,,1\n").reason == "missing value"


def test_missing_qty_value_is_refused() -> None:
    error = csv_error("symbol,side,qty\nA,buy,\n")
    assert (error.field, error.reason) == ("qty", "missing value")


def test_row_with_both_qty_and_notional_is_refused() -> None:
    assert csv_error("symbol,side,qty,notional\nA,buy,1,100\n").reason == "give qty or notional, not both"


def test_missing_symbol_value_is_refused() -> None:
    error = csv_error("symbol,side,qty\n,buy,1\n")
    assert (error.row, error.field, error.reason) == (2, "symbol", "missing value")


def test_malformed_symbol_is_refused() -> None:
    assert csv_error("symbol,side,qty\nA B,buy,1\n").reason == "not a valid ticker symbol"


# Dotless i and long s: upper-cased they read IBM and SPY, tickers the user never wrote.
@pytest.mark.parametrize("symbol", ["\u0131bm", "\u017fpy"])
def test_a_symbol_that_upper_cases_into_a_ticker_is_refused_not_traded_as_it(symbol: str) -> None:
    error = csv_error(f"symbol,side,qty\n{symbol},buy,1\n")
    assert (error.row, error.field, error.value) == (2, "symbol", symbol)
    assert error.reason == "not a valid ticker symbol"


def test_json_numeric_symbol_is_refused() -> None:
    assert "expected text" in json_error('[{"symbol": 7, "side": "buy", "qty": 1}]').reason


def test_duplicate_symbol_names_both_rows_and_the_value_as_written() -> None:
    # The value shown was "AAPL", the symbol as normalised: row 4 holds "aapl", and a search for AAPL found row 2.
    error = csv_error("symbol,side,qty\nAAPL,buy,1\nMSFT,buy,1\naapl,sell,2\n")
    assert (error.row, error.field, error.value) == (4, "symbol", "aapl")
    assert error.reason == "duplicate symbol (first at row 2, as 'AAPL': one symbol, AAPL)"


def test_duplicate_symbol_in_json_counts_rows_from_one() -> None:
    error = json_error('{"weights": [{"symbol": "A", "weight": "0.1"}, {"symbol": "A", "weight": "0.2"}]}')
    assert (error.row, error.reason) == (2, "duplicate symbol (first at row 1)")


def test_weight_above_one_is_refused() -> None:
    error = csv_error("symbol,weight\nA,1.5\n")
    assert (error.row, error.field, error.value, error.reason) == (
        2,
        "weight",
        "1.5",
        "weight must be within [0, 1]",
    )


def test_negative_weight_is_refused() -> None:
    assert csv_error("symbol,weight\nA,-0.1\n").reason == "weight must be within [0, 1]"


def test_missing_weight_value_is_refused() -> None:
    assert csv_error("symbol,weight\nA,\n").reason == "missing value"


def test_weights_summing_over_one_name_the_sum() -> None:
    error = csv_error("symbol,weight\nA,0.5\nB,0.3\nC,0.3\n")
    assert (error.row, error.field, error.value) == (None, "weight", "1.1")
    assert str(error) == "plan.csv, field 'weight' = '1.1': weights sum to more than 1"


def test_weights_summing_over_one_beyond_decimal_precision_are_refused() -> None:
    # 0.5000000000000000000000000001 + 0.5 needs 29 digits: the default context rounds the sum to 1.
    error = csv_error("symbol,weight\nA,0.5000000000000000000000000001\nB,0.5\n")
    assert error.reason == "weights sum to more than 1"
    assert error.value == "1.0000000000000000000000000001"


def test_weights_too_fine_to_sum_exactly_are_refused() -> None:
    error = csv_error("symbol,weight\nA,0.5\nB,1e-999999\n")
    assert (error.field, error.reason) == ("weight", "weights carry too many digits to be summed exactly")


def test_json_key_repeated_in_a_row_is_refused() -> None:
    error = json_error(
        '[{"symbol": "A", "side": "buy", "qty": 1}, {"symbol": "B", "side": "buy", "qty": 1, "qty": 900}]'
    )
    assert (error.row, error.field, error.reason) == (2, "qty", "column appears twice")


def test_json_key_repeated_with_other_case_is_refused() -> None:
    error = json_error('[{"symbol": "A", "side": "buy", "qty": 1, "QTY ": 900}]')
    assert (error.row, error.field, error.reason) == (1, "qty", "column appears twice")


def test_json_repeated_top_level_key_is_refused() -> None:
    error = json_error('{"trades": [{"symbol": "A", "side": "buy", "qty": 1}], "trades": []}')
    assert (error.field, error.reason) == ("trades", "column appears twice")


def test_json_unknown_column_names_the_row_it_first_appears_in() -> None:
    error = json_error(
        '[{"symbol": "A", "side": "buy", "qty": 1}, {"symbol": "B", "side": "buy", "qty": 1},'
        ' {"symbol": "C", "side": "buy", "qtty": 1}]'
    )
    assert (error.row, error.field, error.reason[:14]) == (3, "qtty", "unknown column")


def test_qty_beyond_share_precision_is_refused_as_bad_input() -> None:
    # 1e20 shares cannot be held to Alpaca's 1e-9 share precision within Decimal's 28 digits.
    error = csv_error("symbol,side,qty\nA,buy,1e20\n")
    assert (error.row, error.field, error.value) == (2, "qty", "1e20")
    assert error.reason == "qty must be at most 1,000,000,000,000"


def test_json_notional_beyond_the_largest_amount_is_refused() -> None:
    error = json_error('[{"symbol": "A", "side": "buy", "notional": 1e400}]')
    assert (error.row, error.field, error.reason) == (
        1,
        "notional",
        "notional must be at most 1,000,000,000,000",
    )


def test_text_after_a_closing_quote_is_refused_not_glued_to_the_value() -> None:
    # Python's lenient CSV reading turns "1"5 into 15: a mangled cell must not become another quantity.
    error = csv_error('symbol,side,qty\nA,buy,1\nB,buy,"1"5\n')
    assert (error.file, error.row) == ("plan.csv", 3)
    assert error.reason.startswith("malformed CSV")


def test_unterminated_quote_is_refused() -> None:
    error = csv_error('symbol,side,qty\nA,buy,"1\nB,sell,2\n')
    assert error.reason == "malformed CSV: unexpected end of data"


def test_oversized_csv_field_is_refused_as_bad_input(tmp_path: Path) -> None:
    # csv.Error used to escape load_plan: bad input reported as an internal failure.
    path = write(tmp_path, "big.csv", 'symbol,side,qty\nA,buy,"' + "1" * 200_000 + '"\n')
    with pytest.raises(PlanInputError) as info:
        load_plan(path)
    assert (info.value.row, info.value.reason[:13]) == (2, "malformed CSV")


def test_json_weights_key_holding_trade_rows_is_refused() -> None:
    # The wrapper key declares the plan kind: trade rows under "weights" must not be executed as trades.
    error = json_error('{"weights": [{"symbol": "A", "side": "buy", "qty": 100}]}')
    assert (error.field, error.reason) == ("weights", "holds trades rows, not weights")


def test_json_trades_key_holding_weight_rows_is_refused() -> None:
    error = json_error('{"trades": [{"symbol": "A", "weight": "0.5"}]}')
    assert (error.field, error.reason) == ("trades", "holds weights rows, not trades")


def test_notional_that_would_overflow_share_precision_at_a_sub_penny_price_is_refused() -> None:
    # $1e15 at $0.0001 is 1e19 shares: quantizing that to 1e-9 crashed derive with InvalidOperation.
    error = csv_error("symbol,side,notional\nA,buy,1000000000000000\n")
    assert (error.field, error.reason) == ("notional", "notional must be at most 1,000,000,000,000")


def test_the_largest_amount_is_accepted() -> None:
    plan = parse_csv("symbol,side,notional\nA,buy,1000000000000\n", "p.csv")
    assert plan.trades[0].notional == Decimal(10) ** 12


def test_amounts_written_with_a_positive_exponent_are_kept_in_plain_digits() -> None:
    # "KO,sell,3e3" (a full exit of 3,000 shares) was sent and reported as requested_qty "3E+3" in --json.
    plan = parse_csv("symbol,side,qty,notional\nKO,sell,3e3,\nNVDA,buy,,2.5E4\n", "plan.csv")
    assert [str(trade.qty or trade.notional) for trade in plan.trades] == ["3000", "25000"]


def test_a_weight_written_with_a_positive_exponent_is_kept_in_plain_digits() -> None:
    plan = parse_json('[{"symbol": "A", "weight": 0e3}, {"symbol": "B", "weight": "1E+0"}]', "plan.json")
    assert [str(target.weight) for target in plan.weights] == ["0", "1"]


def test_json_numbers_keep_digits_a_float_would_lose() -> None:
    # 0.1 and 0.2 survive a float -> str round trip; these do not (a float holds ~17 significant digits).
    plan = parse_json('[{"symbol": "A", "side": "buy", "qty": 12345678.123456789}]', "p.json")
    assert plan.trades[0].qty == Decimal("12345678.123456789")
    weights = parse_json('[{"symbol": "A", "weight": 0.30000000000000000001}]', "p.json").weights
    assert weights[0].weight == Decimal("0.30000000000000000001")


def test_json_object_where_text_is_expected_is_named_a_json_object() -> None:
    error = json_error('[{"symbol": {"ticker": "A"}, "side": "buy", "qty": 1}]')
    assert (error.field, error.reason) == ("symbol", "expected text, got a JSON object")


def test_json_array_where_text_is_expected_is_named_a_json_array() -> None:
    assert (
        json_error('[{"symbol": ["A"], "side": "buy", "qty": 1}]').reason == "expected text, got a JSON array"
    )


def test_a_plan_keeps_the_file_row_of_each_entry_for_later_errors() -> None:
    csv_plan = parse_csv("symbol,side,qty\nA,buy,1\n\nB,sell,2\n", "p.csv")
    json_plan = parse_json('[{"symbol": "A", "weight": 0.5}, {"symbol": "B", "weight": 0.25}]', "p.json")
    assert (csv_plan.row_of("B"), json_plan.row_of("B"), csv_plan.row_of("Z")) == (4, 2, None)


def test_a_plan_built_without_rows_reads_and_dumps_as_before() -> None:
    plan = Plan(
        source="api", kind=PlanKind.TRADES, trades=(TradeIntent(symbol="A", side=Side.BUY, qty=Decimal(1)),)
    )
    assert plan.row_of("A") is None
    assert "rows" not in plan.model_dump_json()


def test_a_plan_whose_rows_do_not_match_its_entries_is_refused() -> None:
    with pytest.raises(ValidationError, match="rows"):
        Plan(
            source="api",
            kind=PlanKind.TRADES,
            trades=(TradeIntent(symbol="A", side=Side.BUY, qty=Decimal(1)),),
            rows=(2, 3),
        )


def test_a_plan_built_in_python_takes_its_symbols_as_a_plan_file_does() -> None:
    """`repeg.execute(Plan(...))` took "aapl" as written: a weight-0 exit of a held AAPL sold nothing."""
    built = Plan(
        source="api",
        kind=PlanKind.WEIGHTS,
        weights=(
            TargetWeight(symbol=" aapl ", weight=Decimal(0)),
            TargetWeight(symbol="brk.b", weight=Decimal(0)),
        ),
    )
    parsed = parse_csv("symbol,weight\n aapl ,0\nbrk.b,0\n", "p.csv")
    assert [w.symbol for w in built.weights] == [w.symbol for w in parsed.weights] == ["AAPL", "BRK.B"]


def test_a_plan_built_in_python_refuses_one_symbol_given_twice_in_another_case() -> None:
    with pytest.raises(ValidationError, match="symbol AAPL appears twice"):
        Plan(
            source="api",
            kind=PlanKind.WEIGHTS,
            weights=(
                TargetWeight(symbol="aapl", weight=Decimal("0.1")),
                TargetWeight(symbol="AAPL", weight=Decimal("0.1")),
            ),
        )


@pytest.mark.parametrize("symbol", ["", "   "])
def test_a_trade_built_in_python_refuses_an_empty_symbol_naming_field_and_value(symbol: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TradeIntent(symbol=symbol, side=Side.BUY, qty=Decimal(1))
    error = caught.value.errors()[0]
    assert error["loc"] == ("symbol",)
    assert repr(symbol) in str(caught.value)


def test_a_trade_built_in_python_keeps_a_symbol_of_another_shape_upper_cased() -> None:
    """A basket replays the symbols its quote file holds (`engine.runner`): a ticker check here broke
    `repeg backtest` on a file whose symbol is "brk b"; a broker refuses a symbol it does not know instead."""
    assert TradeIntent(symbol="brk b", side=Side.BUY, qty=Decimal(1)).symbol == "BRK B"


def test_a_directory_as_the_plan_is_refused_as_a_directory(tmp_path: Path) -> None:
    # It said "/tmp = '': unsupported plan file type" (the empty suffix of a directory's name).
    with pytest.raises(PlanInputError) as info:
        load_plan(tmp_path)
    assert str(info.value) == f"{tmp_path}: a directory, not a plan file (.csv or .json)"


def test_a_trade_built_in_python_never_upper_cases_a_symbol_into_another_ticker() -> None:
    # "\u0131bm" (dotless i) upper-cases to IBM: built in Python it traded IBM, where the plan file refuses it.
    assert TradeIntent(symbol="\u0131bm", side=Side.BUY, qty=Decimal(1)).symbol == "\u0131bm"


@pytest.mark.parametrize("digits", ["\u0661\u0660", "\uff11\uff10", "1\u0660"])
def test_a_qty_in_non_ascii_digits_is_not_a_number_as_in_a_quote_file(digits: str) -> None:
    # Python's Decimal reads Arabic-Indic (and full-width) digits: "١٠" was a qty of 10, where a quote file, the
    # TOML config and every broker take ASCII digits only.
    error = csv_error(f"symbol,side,qty\nA,buy,{digits}\n")
    assert (error.row, error.field, error.value, error.reason) == (2, "qty", digits, "not a number")


def test_a_weight_in_non_ascii_digits_in_a_json_string_is_not_a_number() -> None:
    error = json_error('[{"symbol": "A", "weight": "0.\u0665"}]')
    assert (error.row, error.field, error.value, error.reason) == (1, "weight", "0.\u0665", "not a number")


@pytest.mark.parametrize("weight", ["-0", "-0.000", "-0e3"])
def test_a_negative_zero_weight_is_refused_as_a_negative_weight_is(weight: str) -> None:
    # -0 passed the [0, 1] check (it equals 0) and was executed as a full exit: a sign the user wrote, read as
    # an exit they may not have meant; a quote file refuses "-0" as it refuses any signed number.
    error = csv_error(f"symbol,weight\nA,{weight}\n")
    assert (error.row, error.field, error.value, error.reason) == (
        2,
        "weight",
        weight,
        "weight must be within [0, 1]",
    )


def test_a_target_weight_of_negative_zero_built_in_python_is_refused_as_a_plan_files_is() -> None:
    # A plan file's -0 weight is refused (ccd3d54d); TargetWeight(weight=Decimal("-0")) passed ge=0 and exited.
    with pytest.raises(ValidationError, match="-0"):
        TargetWeight(symbol="A", weight=Decimal("-0"))


def test_a_journaled_target_weight_of_negative_zero_reads_back_as_it_ran() -> None:
    from repeg.domain.plan import JOURNALED

    weight = TargetWeight.model_validate({"symbol": "A", "weight": Decimal("-0")}, context=JOURNALED)
    assert weight.weight.is_signed()
