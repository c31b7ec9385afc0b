"""Whole-run invariants over randomised (seeded, derandomised) simulated runs.

Each example draws a small plan (a trade list or weights; sells and buys; fractionable or not), an execution
configuration within its valid ranges, simulator latency on or off and a partial-fill seed, runs it through
`repeg.api.execute_async` on the built-in simulator with a SQLite journal, and checks what a user relies on
(`run_invariants_support.check_run`): quantities and prices of every fill, the account's books, the journal's
fold, terminal states and the run status, unique client order ids, legal and collared limits. The same case run
twice gives the same ids and the same result.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from tests.integration.run_invariants_support import RunOutcome, check_run, run_case
from tests.integration.run_resume_support import check_resumed, crash_and_resume

from repeg.brokers.simulator.account import SimAccount
from repeg.brokers.simulator.fill_models import FillModel, PaperFillModel
from repeg.brokers.simulator.latency import LatencyModel
from repeg.brokers.simulator.queue_model import QueueFillModel
from repeg.config import ExecutionConfig
from repeg.domain.events import OrderIntent
from repeg.domain.plan import Plan
from repeg.errors import RepegError
from repeg.journal.faults import POINTS
from repeg.market.loaders import load_quotes, load_trades
from repeg.market.tape import QuoteTape, TradeTape
from repeg.planning.parse import parse_csv
from repeg.simulation import MarketSettings, SymbolSettings, synthetic_market

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
PRICES = {"AAA": Decimal("42.17"), "BBB": Decimal("0.9995"), "CCC": Decimal("7.05"), "DDD": Decimal("0.0123")}


def _tape(seed: int, invalid_rate: float, duration: float = 900) -> QuoteTape:
    """Three symbols for 15 minutes, one trading across $1 (sub-penny ticks below), some quotes invalid."""
    market = MarketSettings(
        duration_seconds=duration,
        quote_interval_seconds=0.5,
        invalid_rate=invalid_rate,
        symbols={s: SymbolSettings(price=p, daily_vol=0.6, spread_ticks=3) for s, p in PRICES.items()},
    )
    return synthetic_market(market, list(SYMBOLS), seed=seed)


#: The third ends 4 s in: a run outlives its quotes (the last one stays current, and grows stale).
TAPES = {1: _tape(1, 0.0), 2: _tape(2, 0.2), 3: _tape(3, 0.1, duration=4)}

qty = st.sampled_from(["1", "3", "17", "250", "0.5", "2.25", "0.123456789", "0.000000001", "1000000"])

trade_rows = st.lists(
    st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(["buy", "sell"]), qty),
    min_size=1,
    max_size=3,
    unique_by=lambda row: row[0],
)
weights = st.dictionaries(
    st.sampled_from(SYMBOLS), st.sampled_from(["0", "0.1", "0.25", "0.3"]), min_size=1, max_size=3
)


notional_rows = st.lists(
    st.tuples(
        st.sampled_from(SYMBOLS), st.sampled_from(["buy", "sell"]), st.sampled_from(["5", "100", "1234.56"])
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda row: row[0],
)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    kind = draw(st.sampled_from(["qty", "notional", "weight"]))
    if kind != "weight":
        rows = draw(trade_rows if kind == "qty" else notional_rows)
        body = "".join(f"{s},{d},{q}\n" for s, d, q in rows)
        return parse_csv(f"symbol,side,{kind}\n" + body, "p.csv")
    table = draw(weights)
    return parse_csv("symbol,weight\n" + "".join(f"{s},{w}\n" for s, w in table.items()), "w.csv")


@st.composite
def configs(draw: st.DrawFn) -> ExecutionConfig:
    steps = draw(
        st.sampled_from([("1.0",), ("0.5", "1.0"), ("0.25", "0.75"), ("0.5", "0.75", "1.0"), ("0.1",)])
    )
    offset = draw(st.sampled_from([s for s in ("0", "0.25", "0.5") if Decimal(s) <= Decimal(steps[0])]))
    fill_wait = draw(st.sampled_from([0.5, 1.0, 3.0, 10.0]))
    escalation = draw(st.sampled_from(["market", "collared_limit"]))
    collar_pct = draw(st.sampled_from([Decimal("0.5"), Decimal(2), Decimal(5)]))
    collar_bps = draw(st.sampled_from([Decimal(1), Decimal(10), Decimal(40)]))
    if escalation == "collared_limit" and collar_bps >= collar_pct * 100:
        collar_bps = Decimal(1)
    return ExecutionConfig(
        initial_offset=Decimal(offset),
        repeg_steps=tuple(Decimal(s) for s in steps),
        fill_wait_seconds=fill_wait,
        wait_between_checks=draw(st.sampled_from([0.25, 1.0, 4.0])),
        max_total_wait=fill_wait * draw(st.sampled_from([1, 2, 5])),
        grace_window=draw(st.sampled_from([0.0, 1.0, 5.0])),
        on_no_quote=draw(st.sampled_from(["skip", "market"])),
        escalation=escalation,
        escalation_collar_bps=collar_bps,
        price_collar_pct=collar_pct,
        quote_wait=draw(st.sampled_from([0.0, 5.0])),
        quote_max_age=draw(st.sampled_from([0.3, 5.0])),
        max_spread_pct=draw(st.sampled_from([Decimal("0.05"), Decimal(10)])),
        min_notional=draw(st.sampled_from([Decimal(0), Decimal(1), Decimal(20)])),
        max_order_notional=draw(st.sampled_from([None, Decimal(5000)])),
    )


@st.composite
def accounts(draw: st.DrawFn) -> SimAccount:
    held = draw(
        st.dictionaries(
            st.sampled_from(SYMBOLS), st.sampled_from(["5", "100", "0.75", "1000", "0.000000001"])
        )
    )
    non_fractionable = draw(st.lists(st.sampled_from(SYMBOLS), unique=True, max_size=2))
    return SimAccount(
        cash=Decimal(draw(st.sampled_from(["0", "50", "2000", "100000", "1000000000"]))),
        positions={s: Decimal(q) for s, q in held.items()},
        non_fractionable=tuple(non_fractionable),
    )


latencies = st.sampled_from(
    [
        None,
        LatencyModel(
            submit_ack=timedelta(milliseconds=50),
            cancel=timedelta(milliseconds=200),
            replace=timedelta(milliseconds=300),
        ),
        LatencyModel(
            submit_ack=timedelta(seconds=1), cancel=timedelta(seconds=2), replace=timedelta(seconds=2)
        ),
        LatencyModel(submit_ack=timedelta(0), cancel=timedelta(seconds=0.7), replace=timedelta(seconds=0.1)),
    ]
)

CASES = settings(
    max_examples=int(os.environ.get("REPEG_INVARIANT_EXAMPLES", "40")),
    deadline=None,
    derandomize="REPEG_INVARIANT_RANDOM" not in os.environ,  # set it to explore beyond CI's fixed cases
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _run(
    plan: Plan,
    tape: QuoteTape,
    account: SimAccount,
    config: ExecutionConfig,
    *,
    seed: int,
    latency: LatencyModel | None,
    fill_model: FillModel | None = None,
    start: datetime | None = None,
) -> RunOutcome | RepegError:
    """The run, journaled in a fresh directory, or the typed error that refused it before any order was sent."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            return run_case(
                plan,
                tape,
                account,
                config,
                seed=seed,
                latency=latency,
                journal_dir=Path(tmp),
                fill_model=fill_model,
                start=start,
            )
        except RepegError as exc:
            return exc


@CASES
@given(
    plan=plans(),
    config=configs(),
    account=accounts(),
    latency=latencies,
    seed=st.integers(0, 50),
    tape_seed=st.sampled_from(sorted(TAPES)),
    partial_rate=st.sampled_from([0.1, 0.5, 1.0, -1.0]),
)
def test_every_run_keeps_the_books_fills_journal_and_limits_consistent(
    *,
    plan: Plan,
    config: ExecutionConfig,
    account: SimAccount,
    latency: LatencyModel | None,
    seed: int,
    tape_seed: int,
    partial_rate: float,
) -> None:
    tape = TAPES[tape_seed]
    # a negative rate stands for the queue model without prints (only crossing quotes fill resting limits)
    model: FillModel = (
        QueueFillModel(tape, None, seed=seed)
        if partial_rate < 0
        else PaperFillModel(tape, seed=seed, partial_rate=partial_rate)
    )
    outcome = _run(plan, tape, account, config, seed=seed, latency=latency, fill_model=model)
    # a refusal before any order is sent is a typed error, not a broken run
    if isinstance(outcome, RepegError):
        event(f"refused: {type(outcome).__name__}")
        return
    event(f"status: {outcome.result.status}")
    event(f"fills: {'some' if outcome.executions else 'none'}")
    check_run(outcome, config)


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "quotes"


@pytest.fixture(scope="module")
def replay() -> tuple[QuoteTape, TradeTape]:
    quotes = SHARED / "xxx_20180102_nyse_bbo.csv.gz"
    if not quotes.exists():
        pytest.skip("the shared quote files are absent")
    return load_quotes(quotes), load_trades(SHARED / "xxx_20180102_trades.csv.gz")


REPLAY_CASES = settings(CASES, max_examples=int(os.environ.get("REPEG_INVARIANT_REPLAY_EXAMPLES", "15")))


@REPLAY_CASES
@given(
    side=st.sampled_from(["buy", "sell"]),
    qty=st.sampled_from(["1", "40", "300", "0.5"]),
    config=configs(),
    latency=latencies,
    seed=st.integers(0, 20),
    queue=st.booleans(),
    minutes_in=st.sampled_from([0, 7, 95, 300]),
)
def test_replayed_runs_keep_the_same_invariants_under_paper_and_queue_fills(
    *,
    replay: tuple[QuoteTape, TradeTape],
    side: str,
    qty: str,
    config: ExecutionConfig,
    latency: LatencyModel | None,
    seed: int,
    queue: bool,
    minutes_in: int,
) -> None:
    tape, trades = replay
    plan = parse_csv(f"symbol,side,qty\nXXX,{side},{qty}\n", "r.csv")
    account = SimAccount(cash=Decimal(100_000), positions={"XXX": Decimal(500)})
    model = QueueFillModel(tape, trades, seed=seed) if queue else None
    start = tape.start + timedelta(minutes=minutes_in)
    outcome = _run(plan, tape, account, config, seed=seed, latency=latency, fill_model=model, start=start)
    if isinstance(outcome, RepegError):  # refused before any order was sent (a notional limit)
        event(f"refused: {type(outcome).__name__}")
        return
    event(f"status: {outcome.result.status}")
    check_run(outcome, config)


DETERMINISM_CASES = settings(CASES, max_examples=int(os.environ.get("REPEG_INVARIANT_TWICE_EXAMPLES", "8")))


@DETERMINISM_CASES
@given(plan=plans(), config=configs(), account=accounts(), latency=latencies, seed=st.integers(0, 50))
def test_the_same_case_run_twice_sends_the_same_ids_and_gives_the_same_result(
    plan: Plan, config: ExecutionConfig, account: SimAccount, latency: LatencyModel | None, seed: int
) -> None:
    def once() -> tuple[object, list[str]]:
        outcome = _run(plan, TAPES[1], account, config, seed=seed, latency=latency)
        if isinstance(outcome, RepegError):
            return (type(outcome).__name__, str(outcome)), []
        ids = [e.client_order_id or "" for e in outcome.events if isinstance(e, OrderIntent)]
        return outcome.result, ids

    first, second = once(), once()
    assert first == second


CRASH_CASES = settings(CASES, max_examples=int(os.environ.get("REPEG_INVARIANT_CRASH_EXAMPLES", "30")))


@CRASH_CASES
@given(
    plan=plans(),
    config=configs(),
    account=accounts(),
    latency=latencies,
    seed=st.integers(0, 50),
    # the points a run reaches most (a first submit, its answer, a fill) drawn twice as often
    crash_at=st.tuples(
        st.sampled_from([*POINTS, "submit-intent", "submit-ack", "fill"]), st.integers(1, 2), st.booleans()
    ),
)
def test_a_run_that_dies_anywhere_and_is_resumed_loses_and_duplicates_nothing(
    *,
    plan: Plan,
    config: ExecutionConfig,
    account: SimAccount,
    latency: LatencyModel | None,
    seed: int,
    crash_at: tuple[str, int, bool],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            outcome = crash_and_resume(
                plan,
                TAPES[1],
                account,
                config,
                seed=seed,
                latency=latency,
                journal_dir=Path(tmp),
                crash_at=crash_at,
            )
        except RepegError as exc:  # refused before any order was sent
            event(f"refused: {type(exc).__name__}")
            return
    if outcome is None:
        event("never reached the crash point, or sent no order before it")
        return
    event(f"resumed: {outcome.result.status}")
    check_resumed(outcome)
