"""The live view and exit codes: what a terminal user sees while a run works, and what a script gets back."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal, localcontext

import pytest
from rich.console import Console

from repeg.cli.exit_codes import ExitCode, exit_code_for_error, exit_code_for_status
from repeg.cli.live import LiveView
from repeg.cli.render import legs_table
from repeg.domain.events import (
    IntentAction,
    LegEscalated,
    LegFinished,
    LegPlanned,
    LegSkipped,
    OrderAccepted,
    OrderIntent,
    OrderUpdated,
    PhaseStarted,
    RunEvent,
)
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import BrokerOrder, OrderEvent, OrderStatus, OrderType, OrderUpdate, Side
from repeg.domain.plan import LegSpec, SkippedTrade
from repeg.domain.run import RunFolder
from repeg.errors import (
    BrokerUnavailableError,
    ConfigError,
    InvariantViolationError,
    JournalError,
    MarketClosedError,
    MarketDataError,
    OrderRejectedError,
    PlanInputError,
    QuoteFileError,
    RunNotFoundError,
    SafetyLimitError,
    UnknownSymbolError,
)
from repeg.report.text import qty_text

T0 = datetime(2026, 1, 2, 14, 30, tzinfo=UTC)


def base(leg_index: int | None = None) -> dict[str, object]:
    return {"run_id": "r1", "ts": T0, "correlation_id": "r1", "leg_index": leg_index}


def run_events() -> list[RunEvent]:
    spec = LegSpec(index=0, symbol="AAPL", side=Side.SELL, qty=Decimal(150))
    return [
        LegPlanned(spec=spec, **base(0)),
        LegSkipped(
            skipped=SkippedTrade(symbol="KO", side=Side.BUY, qty=Decimal("0.5"), reason="tiny"), **base()
        ),
        PhaseStarted(side=Side.SELL, **base()),
        OrderIntent(
            action=IntentAction.SUBMIT,
            client_order_id="r1-L0000-A00",
            order_type=OrderType.LIMIT,
            qty=Decimal(150),
            limit_price=Decimal("190.12"),
            reason="initial",
            **base(0),
        ),
    ]


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def console() -> Console:
    return Console(file=io.StringIO(), width=120, force_terminal=True, record=True)


async def test_live_view_shows_symbol_side_qty_limit_and_state() -> None:
    screen = console()
    with LiveView(screen) as view:
        for event in run_events():
            await view.emit(event)
    text = screen.export_text()
    assert "sell phase" in text
    row = [line for line in text.splitlines() if "AAPL" in line][-1]  # the final frame
    for cell in ("sell", "150", "190.12", "submitting"):
        assert cell in row
    assert "skipped" in [line for line in text.splitlines() if "KO" in line][-1]


async def test_live_view_throttles_redraws_but_always_draws_the_final_state() -> None:
    clock = FakeMonotonic()
    view = LiveView(console(), min_interval=1.0, monotonic=clock)
    with view:
        for event in run_events():
            await view.emit(event)  # all within one wall interval: only the first draws
        assert view.draws == 1
        clock.now = 1.5
        await view.emit(run_events()[2])
        assert view.draws == 2
    assert view.draws == 3


async def test_live_view_draws_what_the_throttle_held_back_once_its_interval_has_passed() -> None:
    # A real-time run: the order acknowledged right after its intent then rests for minutes with no event; the
    # screen must not keep showing the state before the acknowledgement all that time.
    view = LiveView(console(), min_interval=0.05, monotonic=FakeMonotonic())
    with view:
        for event in run_events():
            await view.emit(event)  # within one interval: only the first draws
        assert view.draws == 1
        await asyncio.sleep(0.3)  # no further event
        assert view.draws == 2


@pytest.mark.parametrize(
    ("qty", "text"),
    [(Decimal("12.500000000"), "12.5"), (Decimal(100), "100"), (Decimal("1E+2"), "100"), (None, "-")],
)
def test_quantities_print_without_trailing_zeros(qty: Decimal | None, text: str) -> None:
    assert qty_text(qty) == text


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("completed", ExitCode.OK),
        ("completed_with_skips", ExitCode.OK),
        ("partial", ExitCode.PARTIAL),
        ("failed", ExitCode.FAILED),
        ("mystery", ExitCode.INTERNAL),
    ],
)
def test_run_status_maps_to_exit_code(status: str, code: ExitCode) -> None:
    assert exit_code_for_status(status) is code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (PlanInputError("p.csv", 2, "qty", "-1", "bad"), ExitCode.BAD_INPUT),
        (UnknownSymbolError("ZZZ"), ExitCode.BAD_INPUT),
        (ConfigError("fill_wait_seconds", -1, "bad"), ExitCode.BAD_INPUT),
        (SafetyLimitError("max_run_notional", Decimal(1), Decimal(2)), ExitCode.BAD_INPUT),
        (QuoteFileError("q.csv", 3, "bad"), ExitCode.BAD_INPUT),
        (MarketClosedError("closed; pass --allow-closed"), ExitCode.BAD_INPUT),
        (MarketDataError("feed down"), ExitCode.FAILED),
        (OrderRejectedError("rejected"), ExitCode.FAILED),
        (BrokerUnavailableError("down"), ExitCode.FAILED),
        (RunNotFoundError("nope", "repeg.db"), ExitCode.BAD_INPUT),
        (JournalError("disk full"), ExitCode.FAILED),
        (InvariantViolationError("bug"), ExitCode.INTERNAL),
        (RuntimeError("bug"), ExitCode.INTERNAL),
    ],
)
def test_error_maps_to_exit_code(error: BaseException, code: ExitCode) -> None:
    assert exit_code_for_error(error) is code


def test_large_runs_show_working_legs_first_and_count_the_rest() -> None:
    folder = RunFolder()
    for index in range(50):
        spec = LegSpec(index=index, symbol=f"S{index:02d}", side=Side.BUY, qty=Decimal(1))
        folder.apply(LegPlanned(spec=spec, **base(index)))
    folder.apply(LegFinished(status="skipped", reason="no quote", **base(0)))
    screen = console()
    screen.print(legs_table(folder.snapshot(), max_rows=10))
    text = screen.export_text()
    assert "S01" in text
    assert "S00" not in text  # finished: gives its row to a working leg
    assert "40 more legs" in text
    assert "0/50 legs filled" in text


def test_results_table_shows_a_skipped_trades_reason_in_its_state_column() -> None:
    from repeg.cli.render import results_table
    from repeg.report.result import build_result

    folder = RunFolder()
    for event in run_events():
        folder.apply(event)
    table = results_table(build_result(folder.snapshot()))
    headers = [column.header for column in table.columns]
    assert headers[-1] == "state"
    state = table.columns[-1]
    assert "skipped: tiny" in str(list(state.cells)[-1])


@pytest.mark.parametrize(
    ("status", "update", "shown"),
    [
        (
            LegStatus.FAILED,
            {"error": "price_collar_pct 5 exceeded: 5.2%"},
            "failed: price_collar_pct 5 exceeded",
        ),
        (
            LegStatus.INCOMPLETE,
            {"error": "order o1 was never reported closed"},
            "incomplete: order o1 was never",
        ),
        (
            LegStatus.SKIPPED,
            {"reason": "scaled to zero by the buying-power shortfall"},
            "skipped: scaled to zero",
        ),
    ],
)
def test_results_table_says_why_a_leg_did_not_fill(
    status: LegStatus, update: dict[str, str], shown: str
) -> None:
    # The error and reason were only in --json and the journal: the table said "failed" and nothing more.
    from repeg.cli.render import results_table
    from repeg.report.result import build_result

    folder = RunFolder()
    for event in run_events():
        folder.apply(event)
    result = build_result(folder.snapshot())
    leg = result.legs[0].model_copy(update={"status": status, **update})
    table = results_table(result.model_copy(update={"legs": (leg, *result.legs[1:])}))
    state = str(next(iter(table.columns[-1].cells)))
    assert shown in state


def test_results_table_shows_a_skipped_notional_trades_dollars_as_requested() -> None:
    from repeg.cli.render import results_table
    from repeg.report.result import build_result

    folder = RunFolder()
    skipped = SkippedTrade(
        symbol="KO", side=Side.BUY, qty=Decimal(0), notional=Decimal(500), reason="no price"
    )
    for event in (*run_events()[:1], LegSkipped(skipped=skipped, **base())):
        folder.apply(event)
    table = results_table(build_result(folder.snapshot()))
    requested = table.columns[[column.header for column in table.columns].index("requested")]
    assert list(requested.cells)[-1] == "$500.00"


def test_quality_table_never_rounds_a_buy_scale_short_of_one_up_to_100_percent() -> None:
    # Scales are kept to 1e-6 (rounded down): 0.999999 printed "buys scaled to (buying power short) 100.00%".
    from repeg.cli.render import quality_table
    from repeg.report.result import build_result

    folder = RunFolder()
    for event in (*run_events(), PhaseStarted(side=Side.BUY, scale=Decimal("0.999999"), **base())):
        folder.apply(event)
    screen = io.StringIO()
    Console(file=screen, width=120).print(quality_table(build_result(folder.snapshot())))
    text = screen.getvalue()
    assert "buys scaled to (buying power short)" in text
    assert "99.99%" in text


async def test_live_view_does_not_mark_escalated_a_leg_filled_before_its_escalation_sent_anything() -> None:
    # The final frame agrees with the result: the escalation was decided, but the order filled during the cancel.
    events = [
        *run_events(),
        LegEscalated(remaining_qty=Decimal(150), reason="steps_exhausted", **base(0)),
        LegFinished(status=LegStatus.FILLED.value, reason="", **base(0)),
    ]
    screen = console()
    with LiveView(screen) as view:
        for event in events:
            await view.emit(event)
    row = [line for line in screen.export_text().splitlines() if "AAPL" in line][-1]
    assert "escalated" not in row


def _aapl_order(client_order_id: str, order_type: OrderType, status: OrderStatus) -> BrokerOrder:
    limit = Decimal("190.12") if order_type is OrderType.LIMIT else None
    return BrokerOrder(
        order_id=f"o-{client_order_id}",
        client_order_id=client_order_id,
        symbol="AAPL",
        side=Side.SELL,
        qty=Decimal(150),
        order_type=order_type,
        limit_price=limit,
        status=status,
        created_at=T0,
        updated_at=T0,
    )


async def test_live_view_marks_escalated_a_leg_whose_escalation_sent_its_remainder() -> None:
    # The test above checks only that the mark is absent: a view that never drew "(escalated)" passed it, and no
    # other test looks for the mark. Here the resting limit is cancelled and the remainder goes to market.
    first = _aapl_order("r1-L0000-A00", OrderType.LIMIT, OrderStatus.NEW)
    canceled = first.model_copy(update={"status": OrderStatus.CANCELED})
    events = [
        *run_events(),
        OrderAccepted(action=IntentAction.SUBMIT, order=first, **base(0)),
        LegEscalated(remaining_qty=Decimal(150), reason="steps_exhausted", **base(0)),
        OrderIntent(
            action=IntentAction.CANCEL,
            client_order_id=first.client_order_id,
            order_id=first.order_id,
            **base(0),
        ),
        OrderUpdated(update=OrderUpdate(event=OrderEvent.CANCELED, order=canceled, ts=T0), **base(0)),
        OrderIntent(
            action=IntentAction.SUBMIT,
            client_order_id="r1-L0000-A01",
            order_type=OrderType.MARKET,
            qty=Decimal(150),
            attempt=1,
            reason="escalate",
            **base(0),
        ),
    ]
    screen = console()
    with LiveView(screen) as view:
        for event in events:
            await view.emit(event)
    row = [line for line in screen.export_text().splitlines() if "AAPL" in line][-1]
    assert "(escalated)" in row


def test_quality_table_never_rounds_a_fill_rate_short_of_all_up_to_100_percent() -> None:
    # 0.9996 of the quantity filled before escalation printed "fill rate before escalation 100.0%".
    from repeg.cli.render import quality_table
    from repeg.report.quality import QualitySummary
    from repeg.report.result import build_result

    folder = RunFolder()
    for event in run_events():
        folder.apply(event)
    result = build_result(folder.snapshot())
    result = result.model_copy(
        update={"quality": QualitySummary(fill_rate_before_escalation=Decimal("0.9996"))}
    )
    screen = io.StringIO()
    Console(file=screen, width=120).print(quality_table(result))
    row = next(line for line in screen.getvalue().splitlines() if "fill rate before escalation" in line)
    assert "99.9%" in row


def test_a_cost_that_rounds_to_zero_prints_without_a_minus_sign() -> None:
    # A saving of 0.001 bp rounds to Decimal("-0.00"), which printed "-0.00 bps": a cost of nothing reads as a saving.
    from repeg.report.text import signed_text

    assert signed_text(Decimal("-0.00"), 2) == "+0.00"
    assert signed_text(Decimal("-0.0004"), 3) == "+0.000"
    assert signed_text(Decimal("-0.0006"), 3) == "-0.001"


def test_prices_money_and_costs_print_rounded_half_even_whatever_the_callers_decimal_context() -> None:
    # A format spec rounds by the ambient decimal context: a program that set rounding toward +inf printed an
    # average fill of 100.00661 as 100.0067, and a cost of +1.2341 bps as +1.24.
    from repeg.report.text import money_text, price_text, signed_text

    with localcontext(rounding=ROUND_CEILING):
        shown = (
            price_text(Decimal("100.00661")),
            money_text(Decimal("1234.561")),
            signed_text(Decimal("1.2341"), 2),
        )
    assert shown == ("100.0066", "1,234.56", "+1.23")
    assert (price_text(Decimal("100.00665")), signed_text(Decimal("-0.0004"), 3)) == ("100.0066", "+0.000")


def test_quality_table_says_the_fill_rate_is_a_share_of_the_quantity() -> None:
    # Not of the legs: one large escalated leg among many small passive ones reads as a low rate.
    from repeg.cli.render import quality_table
    from repeg.report.result import build_result

    folder = RunFolder()
    for event in run_events():
        folder.apply(event)
    screen = io.StringIO()
    Console(file=screen, width=120).print(quality_table(build_result(folder.snapshot())))
    assert "fill rate before escalation (share of quantity)" in screen.getvalue()


def test_live_view_on_a_narrow_terminal_shows_every_digit_of_a_fractional_quantity() -> None:
    # A terminal resized to 60 columns: rich shrinks the columns, and a number must wrap rather than lose its last
    # digits to an ellipsis ("12345…" reads as another quantity).
    spec = LegSpec(index=0, symbol="BRK.B", side=Side.SELL, qty=Decimal("12345.123456789"))
    intent = OrderIntent(
        action=IntentAction.SUBMIT,
        client_order_id="r1-L0000-A00",
        order_type=OrderType.LIMIT,
        qty=Decimal("12345.123456789"),
        limit_price=Decimal("1234.5678"),
        reason="initial",
        **base(0),
    )
    folder = RunFolder()
    for event in (LegPlanned(spec=spec, **base(0)), PhaseStarted(side=Side.SELL, **base()), intent):
        folder.apply(event)
    screen = Console(file=io.StringIO(), width=60, force_terminal=True, record=True)
    screen.print(legs_table(folder.snapshot()))
    cells = [line.split("│")[4].strip() for line in screen.export_text().splitlines() if line.startswith("│")]
    assert "".join(cells) == "12345.123456789"


def test_results_table_on_an_80_column_terminal_shows_every_digit_of_a_fractional_quantity() -> None:
    from repeg.cli.render import results_table
    from repeg.report.result import build_result

    spec = LegSpec(index=0, symbol="BRK.B", side=Side.SELL, qty=Decimal("12345.123456789"))
    folder = RunFolder()
    folder.apply(LegPlanned(spec=spec, **base(0)))
    screen = Console(file=io.StringIO(), width=80, force_terminal=True, record=True)
    screen.print(results_table(build_result(folder.snapshot())))
    rows = [line.split("│") for line in screen.export_text().splitlines() if line.startswith("│")]
    assert "".join(row[4].strip() for row in rows) == "12345.123456789"
