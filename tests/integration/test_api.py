"""The facade on the real simulator: reads the account, prices at arrival, refuses before sending, then runs."""

from __future__ import annotations

import asyncio
import warnings
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal, localcontext
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.fakes.alpaca_fixtures import connect
from tests.fakes.alpaca_server import FakeAlpacaServer
from tests.integration.test_alpaca_end_to_end import FAST_RUN

import repeg
from repeg.api import execute, execute_async
from repeg.brokers.simulator.account import SimAccount
from repeg.brokers.simulator.factory import build_simulation
from repeg.brokers.simulator.latency import LatencyModel
from repeg.config import ExecutionConfig
from repeg.domain.events import OrderIntent, OrderUpdated, RunEnded, RunEvent, RunStarted
from repeg.domain.orders import Side
from repeg.domain.plan import Plan, PlanKind, TargetWeight, TradeIntent
from repeg.engine.clock import RealClock, VirtualClock, run_virtual
from repeg.errors import ConfigError, NotTradableError, RepegError, SafetyLimitError, UnknownSymbolError
from repeg.market.loaders import load_quotes
from repeg.market.tape import QuoteTape
from repeg.planning.derive import FRACTION_LEFT, NO_PRICE
from repeg.planning.parse import parse_csv
from repeg.simulation import MarketSettings, SymbolSettings, simulate

HEADER = "ts,symbol,bid,bid_size,ask,ask_size\n"
#: AAA quotes from the start; BBB's first quote arrives 10 s later.
QUOTES = HEADER + "".join(
    f"2024-01-02T14:30:{s:02d}.000000Z,{sym},{bid},100,{ask},100\n"
    for s, sym, bid, ask in [
        (0, "AAA", "10.00", "10.02"),
        (10, "BBB", "20.00", "20.04"),
        (30, "AAA", "10.01", "10.03"),
        (50, "BBB", "20.01", "20.05"),
        (59, "AAA", "10.01", "10.03"),
        (59, "BBB", "20.01", "20.05"),
    ]
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    async def emit(self, event: RunEvent) -> None:
        self.events.append(event)


@pytest.fixture
def tape(tmp_path: Path) -> QuoteTape:
    path = tmp_path / "q.csv"
    path.write_text(QUOTES, encoding="utf-8")
    return load_quotes(path)


def trades(text: str) -> repeg.Plan:
    return parse_csv("symbol,side,qty\n" + text, "p.csv")


def test_execute_runs_a_plan_on_a_prebuilt_simulation(tape: QuoteTape) -> None:
    clock = VirtualClock(tape.start)
    broker, feed = build_simulation(tape, clock, SimAccount(cash=Decimal(10_000)), seed=1)
    result = execute(trades("AAA,buy,10\n"), broker, feed, clock, run_id="api1")
    assert (result.run_id, result.status) == ("api1", "completed")
    assert result.legs[0].filled_qty == Decimal(10)


def test_the_callers_decimal_context_changes_nothing_in_a_run(tape: QuoteTape) -> None:
    # A program's own `decimal.getcontext()` (precision 6, rounding toward +inf) made planning raise
    # InvalidOperation (a quantity to 9 places needs more digits), and a coarser one rounded the report's costs up.
    def run() -> repeg.ExecutionResult:
        clock = VirtualClock(tape.start)
        broker, feed = build_simulation(tape, clock, SimAccount(cash=Decimal(10_000)), seed=1)
        return execute(trades("AAA,buy,10\nBBB,buy,7\n"), broker, feed, clock, run_id="api1")

    expected = run()
    with localcontext(prec=6, rounding=ROUND_CEILING):
        assert run() == expected
    assert expected.quality.cost_bps == Decimal("9.98")


async def test_an_alpaca_fill_is_priced_in_the_runs_decimal_context_not_the_callers(
    fake_alpaca: FakeAlpacaServer,
) -> None:
    # As docs/ALPACA.md shows, the program builds (and so starts) the broker before `execute_async`: its trade
    # stream ran in the caller's context, which (precision 5, rounding down) priced an execution of 777 at 100.01
    # as a fill at 100.00, the price `repeg show` and the run report give it.
    fake_alpaca.book.set_quote("AAPL", Decimal("100.01"), Decimal("100.10"))
    # The buy resting at the bid (100.01) is filled there once the ask comes down to it.
    fake_alpaca.book.play([(0.1, "AAPL", Decimal("99.90"), Decimal("100.01"))])
    recorder = Recorder()
    with localcontext(prec=5, rounding=ROUND_DOWN):
        broker, feed = await connect(fake_alpaca)
        try:
            result = await execute_async(
                trades("AAPL,buy,777\n"), broker, feed, RealClock(), FAST_RUN, run_id="ctx1", sinks=[recorder]
            )
        finally:
            await feed.aclose()
            await broker.aclose()
    assert result.legs[0].filled_qty == Decimal(777)
    fills = [e.update.fill for e in recorder.events if isinstance(e, OrderUpdated) and e.update.fill]
    assert [(fill.qty, fill.price) for fill in fills] == [(Decimal(777), Decimal("100.01"))]


def test_execute_async_emits_run_started_first_and_run_ended_last(tape: QuoteTape) -> None:
    recorder = Recorder()

    async def main() -> None:
        clock = VirtualClock(tape.start)
        broker, feed = build_simulation(tape, clock, SimAccount(), seed=1)
        await execute_async(trades("AAA,buy,10\n"), broker, feed, clock, sinks=[recorder])

    run_virtual(main)
    assert isinstance(recorder.events[0], RunStarted)
    assert isinstance(recorder.events[-1], RunEnded)


def test_sells_are_sent_before_any_buy(tape: QuoteTape) -> None:
    recorder = Recorder()
    account = SimAccount(cash=Decimal(0), positions={"BBB": Decimal(50)})
    plan = parse_csv("symbol,weight\nAAA,0.5\nBBB,0.4\n", "w.csv")
    result = simulate(plan, account=account, tape=tape, sinks=[recorder])
    assert result.status == "completed"
    sides = [
        result.legs[e.leg_index].side
        for e in recorder.events
        if isinstance(e, OrderIntent) and e.leg_index is not None
    ]
    assert sides.index(Side.BUY) > max(i for i, side in enumerate(sides) if side is Side.SELL)


def test_plan_may_be_given_as_a_path(tape: QuoteTape, tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text("symbol,side,qty\nAAA,buy,1\n", encoding="utf-8")
    assert simulate(str(path), tape=tape).status == "completed"


def test_arrival_price_waits_for_a_late_first_quote(tape: QuoteTape) -> None:
    result = simulate(trades("BBB,buy,5\n"), tape=tape, config=ExecutionConfig(quote_wait=30))
    assert result.legs[0].filled_qty == Decimal(5)


def test_a_basket_repeating_a_symbol_starts_without_waiting_quote_wait(tape: QuoteTape) -> None:
    # A programmatic trade list may repeat a symbol (a basket). AAA quotes from 14:30:00: the run waited the
    # whole quote_wait (30 s) for a second AAA price, as if the repeated symbol were another one.
    buys = tuple(TradeIntent(symbol="AAA", side=Side.BUY, qty=Decimal(qty)) for qty in (1, 2))
    recorder = Recorder()

    async def main() -> None:
        clock = VirtualClock(tape.start)
        broker, feed = build_simulation(tape, clock, SimAccount(), seed=1)
        plan = Plan(source="basket", kind=PlanKind.TRADES, trades=buys)
        await execute_async(plan, broker, feed, clock, sinks=[recorder])

    run_virtual(main)
    assert recorder.events[0].ts == tape.start


def test_symbol_without_a_quote_within_quote_wait_is_skipped(tape: QuoteTape) -> None:
    result = simulate(trades("AAA,buy,1\nBBB,buy,5\n"), tape=tape, config=ExecutionConfig(quote_wait=5))
    assert result.status == "completed_with_skips"
    assert [(s.symbol, s.reason) for s in result.skipped] == [("BBB", NO_PRICE)]


def test_unknown_symbol_is_refused_before_any_event(tape: QuoteTape) -> None:
    recorder = Recorder()
    with pytest.raises(UnknownSymbolError):
        simulate(trades("AAA,buy,1\nZZZ,buy,1\n"), tape=tape, sinks=[recorder])
    assert recorder.events == []


def test_unknown_symbol_names_the_plan_file_row_field_and_value(tape: QuoteTape) -> None:
    # Issue 2: bad input names file, row, field and value; a blank line does not shift the row.
    plan = parse_csv("symbol,side,qty\nAAA,buy,1\n\nZZZ,buy,1\n", "p.csv")
    with pytest.raises(UnknownSymbolError) as info:
        simulate(plan, tape=tape)
    assert str(info.value) == "p.csv, row 4, field 'symbol' = 'ZZZ': unknown to the broker"
    assert (info.value.symbol, info.value.file, info.value.row) == ("ZZZ", "p.csv", 4)


def test_non_tradable_symbol_names_the_plan_file_and_row(tape: QuoteTape) -> None:
    plan = parse_csv("symbol,weight\nAAA,0.5\n", "w.csv")
    with pytest.raises(NotTradableError) as info:
        simulate(plan, tape=tape, account=SimAccount(non_tradable=("AAA",)))
    assert str(info.value) == "w.csv, row 2, field 'symbol' = 'AAA': not tradable at the broker"


def test_non_tradable_symbol_is_refused(tape: QuoteTape) -> None:
    with pytest.raises(NotTradableError):
        simulate(trades("AAA,buy,1\n"), tape=tape, account=SimAccount(non_tradable=("AAA",)))


def test_safety_limit_refuses_before_any_event(tape: QuoteTape) -> None:
    recorder = Recorder()
    config = ExecutionConfig(max_run_notional=Decimal(100))
    with pytest.raises(SafetyLimitError) as info:
        simulate(trades("AAA,buy,5\nBBB,buy,5\n"), tape=tape, config=config, sinks=[recorder])
    assert info.value.limit == "max_run_notional"
    assert recorder.events == []


def test_malformed_run_id_is_a_config_error(tape: QuoteTape) -> None:
    with pytest.raises(ConfigError, match="run_id"):
        simulate(trades("AAA,buy,1\n"), tape=tape, run_id="no spaces allowed")


def test_an_empty_run_id_is_refused_not_replaced_by_a_fresh_one(tape: QuoteTape) -> None:
    # run_id="" (an unset variable) ran under a fresh derived id: a retry with the same "" id ran the plan again.
    with pytest.raises(ConfigError, match="run_id"):
        simulate(trades("AAA,buy,1\n"), tape=tape, run_id="")


def test_default_run_id_is_deterministic_for_the_same_plan_and_start(tape: QuoteTape) -> None:
    first = simulate(trades("AAA,buy,1\n"), tape=tape)
    second = simulate(trades("AAA,buy,1\n"), tape=tape)
    third = simulate(trades("AAA,buy,2\n"), tape=tape)
    assert first.run_id == second.run_id != third.run_id


def test_synthetic_market_covers_unlisted_symbols_with_stable_prices() -> None:
    market = MarketSettings(duration_seconds=600, symbols={"AAA": SymbolSettings(price=Decimal(50))})
    result = simulate(trades("AAA,buy,1\nQQQ,buy,1\n"), market=market, seed=4)
    assert result.status == "completed"
    prices = {leg.symbol: leg.arrival_mid for leg in result.legs}
    assert prices["AAA"] is not None
    assert abs(prices["AAA"] - 50) < 1
    assert simulate(trades("QQQ,buy,1\n"), market=market, seed=4).legs[0].arrival_mid == prices["QQQ"]


def test_every_public_name_resolves() -> None:
    for name in repeg.__all__:
        assert getattr(repeg, name) is not None
    with pytest.raises(AttributeError):
        _ = repeg.not_a_name  # type: ignore[attr-defined]


def test_arrival_price_never_comes_from_a_one_sided_quote(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        HEADER
        + "2024-01-02T14:30:00.000000Z,CCC,107.00,100,0,0\n"  # the real incident: bid 107, ask 0
        + "2024-01-02T14:30:02.000000Z,CCC,10.00,100,10.02,100\n"
        + "2024-01-02T14:30:59.000000Z,CCC,10.00,100,10.02,100\n",
        encoding="utf-8",
    )
    plan = parse_csv("symbol,weight\nCCC,0.5\n", "w.csv")
    result = simulate(plan, tape=load_quotes(path), account=SimAccount(cash=Decimal(1000)))
    assert result.legs[0].requested_qty == Decimal("49.950049950")  # 500 / 10.01, down to 1e-9


def test_execute_inside_a_running_event_loop_is_refused_with_a_typed_error(tape: QuoteTape) -> None:
    # Jupyter, an async application: asyncio's own RuntimeError came from deep inside, after a coroutine and
    # an event loop had been made and left behind ("never awaited"); it must say what to call instead.
    clock = VirtualClock(tape.start)
    broker, feed = build_simulation(tape, clock, SimAccount(cash=Decimal(10_000)), seed=1)

    async def caller() -> None:
        with pytest.raises(RepegError, match="execute_async"):
            execute(trades("AAA,buy,10\n"), broker, feed, clock, run_id="api1")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left unawaited
        asyncio.run(caller())


def test_simulate_inside_a_running_event_loop_is_refused_with_a_typed_error() -> None:
    async def caller() -> None:
        with pytest.raises(RepegError, match="running event loop"):
            simulate(trades("AAA,buy,1\n"))

    asyncio.run(caller())


def test_buys_whose_quotes_were_valid_at_different_moments_are_both_sized(tape: QuoteTape) -> None:
    # AAA quotes at :00 and :30, BBB at :10 and :50, each valid 5 s: never both at once within quote_wait. The
    # buy phase asked for every ask valid at one instant, so both buys were skipped with cash to spare.
    result = simulate(trades("AAA,buy,1\nBBB,buy,1\n"), tape=tape, account=SimAccount(cash=Decimal(1000)))
    assert result.status == "completed"


def test_a_buy_the_shortfall_scaled_to_zero_says_why_in_the_result(tape: QuoteTape) -> None:
    # $25 of cash for 1 AAA (about $10) and 1 BBB (about $20, whole shares): scaled by about 0.8, BBB rounds to
    # 0 shares and is skipped. The why was only in the journal: the result (and --json) showed a bare "skipped".
    account = SimAccount(cash=Decimal(25), non_fractionable=("BBB",))
    result = simulate(trades("AAA,buy,1\nBBB,buy,1\n"), tape=tape, account=account)
    assert result.legs[1].status == "skipped"
    assert result.legs[1].reason == f"scaled to zero (scale {result.buy_scale})"


def test_a_weight_zero_exit_built_in_python_in_lower_case_sells_the_held_position(tape: QuoteTape) -> None:
    """`Plan(weights=(TargetWeight(symbol="aaa", weight=0),))` held nothing named "aaa": it sold nothing."""
    plan = Plan(source="api", kind=PlanKind.WEIGHTS, weights=(TargetWeight(symbol="aaa", weight=Decimal(0)),))
    result = simulate(plan, account=SimAccount(positions={"AAA": Decimal(7)}), tape=tape)
    assert [(leg.symbol, leg.side, leg.filled_qty) for leg in result.legs] == [("AAA", Side.SELL, Decimal(7))]


def test_a_weight_zero_exit_of_a_fractional_non_fractionable_position_sells_its_whole_shares(
    tape: QuoteTape,
) -> None:
    """The exit sent 7.5 shares of a non-fractionable asset: refused by the broker, the leg failed, nothing sold."""
    plan = Plan(source="api", kind=PlanKind.WEIGHTS, weights=(TargetWeight(symbol="BBB", weight=Decimal(0)),))
    account = SimAccount(positions={"BBB": Decimal("7.5")}, non_fractionable=("BBB",))
    result = simulate(plan, account=account, tape=tape)
    assert [(leg.symbol, leg.status, leg.filled_qty) for leg in result.legs] == [
        ("BBB", "filled", Decimal(7))
    ]


def test_a_weight_zero_exit_that_leaves_a_fraction_of_a_non_fractionable_share_reports_it_left_held(
    tape: QuoteTape,
) -> None:
    """The exit sold 7 of 7.5 shares and the run read `completed`: nothing said that 0.5 share is still held."""
    plan = Plan(source="api", kind=PlanKind.WEIGHTS, weights=(TargetWeight(symbol="BBB", weight=Decimal(0)),))
    account = SimAccount(positions={"BBB": Decimal("7.5")}, non_fractionable=("BBB",))
    result = simulate(plan, account=account, tape=tape)
    assert result.status == "completed_with_skips"
    assert [(s.symbol, s.side, s.qty, s.reason) for s in result.skipped] == [
        ("BBB", Side.SELL, Decimal("0.5"), FRACTION_LEFT)
    ]


def test_a_synthetic_symbol_set_in_lower_case_from_python_is_refused_not_ignored() -> None:
    """`MarketSettings(symbols={"aaa": ...})` was taken, and never met the plan's AAA (plans read upper case):
    AAA got a price drawn from its name instead of the one set, and the tape a symbol no plan can name."""
    with pytest.raises(ValidationError, match="'aaa'"):
        MarketSettings(symbols={"aaa": SymbolSettings(price=Decimal("10.00"))})


def test_a_config_given_as_a_mapping_is_validated_and_used(tape: QuoteTape) -> None:
    # A dict config (as the `[execution]` table of a TOML file) failed deep in the run with an AttributeError.
    recorder = Recorder()
    simulate(trades("AAA,buy,1\n"), tape=tape, config={"fill_wait_seconds": 7}, sinks=[recorder])
    started = next(event for event in recorder.events if isinstance(event, RunStarted))
    assert started.config["fill_wait_seconds"] == "7.0"


def test_a_config_mapping_with_a_bad_key_is_a_config_error_naming_it(tape: QuoteTape) -> None:
    with pytest.raises(ConfigError, match="fill_wait_seconds") as info:
        simulate(trades("AAA,buy,1\n"), tape=tape, config={"fill_wait_seconds": -1})
    assert info.value.key == "fill_wait_seconds"


def test_a_config_of_another_kind_is_a_config_error(tape: QuoteTape) -> None:
    with pytest.raises(ConfigError, match="config"):
        simulate(trades("AAA,buy,1\n"), tape=tape, config="my.toml")  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, True, 1.5])
def test_a_seed_that_is_not_a_whole_number_0_or_more_is_a_config_error_naming_it(seed: object) -> None:
    # -1 raised numpy's bare ValueError, True a pydantic ValidationError about SyntheticSource.
    with pytest.raises(ConfigError, match="seed"):
        simulate(trades("AAA,buy,1\n"), seed=seed)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "mapping", "model"),
    [
        ("account", {"cash": 5}, SimAccount(cash=Decimal(5))),
        ("market", {"duration_seconds": 600}, MarketSettings(duration_seconds=600)),
        ("latency", {"submit_ack": 1}, LatencyModel(submit_ack=1)),
    ],
)
def test_simulator_settings_given_as_mappings_are_validated_and_used(
    key: str, mapping: dict[str, object], model: object
) -> None:
    # As dicts (the [simulator] tables of a TOML file) they failed with AttributeError; the latency one only
    # mid-run, after the sells had traded. Used: the run is that of the model, not of the defaults.
    plan = trades("AAA,buy,1\n")
    result = simulate(plan, run_id="m", **{key: mapping})  # type: ignore[arg-type]
    assert result == simulate(plan, run_id="m", **{key: model})  # type: ignore[arg-type]
    assert result != simulate(plan, run_id="m")


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ({"account": {"cash": -1}}, "cash"),
        ({"market": {"duration_seconds": -1}}, "duration_seconds"),
        ({"latency": {"submit_ack": -1}}, "submit_ack"),
    ],
)
def test_a_bad_simulator_setting_given_as_a_mapping_is_a_config_error_naming_it(
    given: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=key):
        simulate(trades("AAA,buy,1\n"), **given)  # type: ignore[arg-type]


def test_runs_sharing_one_simulated_broker_leave_no_update_subscription_behind(tape: QuoteTape) -> None:
    clock = VirtualClock(tape.start)
    broker, feed = build_simulation(tape, clock, SimAccount(cash=Decimal(10_000)), seed=1)
    for run in range(3):
        execute(trades("AAA,buy,1\n"), broker, feed, clock, run_id=f"api{run}")
    assert broker._outbox._sinks == []


def test_a_bad_market_mapping_is_refused_though_a_tape_is_given(tape: QuoteTape) -> None:
    # With a tape the market is not generated, and a bad mapping (or another kind) passed unseen: the docstring
    # and README promise a ConfigError naming the key for a bad one.
    with pytest.raises(ConfigError, match="duration_seconds"):
        simulate(trades("AAA,buy,1\n"), tape=tape, market={"duration_seconds": -1})
