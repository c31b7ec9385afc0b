"""Policies as configuration: specs, names and TOML, and what each lab policy decides in each leg state."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from repeg.config import EscalationStyle, ExecutionConfig
from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.order_record import OrderRecord
from repeg.domain.orders import OrderStatus, OrderType, Side
from repeg.domain.plan import LegSpec
from repeg.domain.quote import Quote, QuoteVerdict
from repeg.errors import ConfigError
from repeg.lab.fit import AdaptiveParams, FitConfig, FitRule, table_key
from repeg.lab.models import DataRef
from repeg.lab.policies import (
    REASON_CROSS,
    AdaptivePolicy,
    AdaptiveSpec,
    LadderSpec,
    MarketPolicy,
    MarketSpec,
    TouchThenMarketPolicy,
    TouchThenMarketSpec,
    build_policy,
    ladder_config,
    policy_spec,
)
from repeg.policy.decide import Escalate, LadderPolicy, Replace, Skip, Submit, Wait

T0 = datetime(2018, 1, 3, 15, 0, tzinfo=UTC)
CONFIG = ExecutionConfig(max_total_wait=60.0, fill_wait_seconds=10.0)
QUOTE = Quote(
    symbol="XXX",
    bid=Decimal("100.00"),
    bid_size=Decimal(100),
    ask=Decimal("100.04"),
    ask_size=Decimal(100),
    ts=T0,
)
V = QuoteVerdict.VALID


def _leg(status: LegStatus = LegStatus.PLANNED, side: Side = Side.BUY, **changes: object) -> LegState:
    spec = LegSpec(index=0, symbol="XXX", side=side, qty=Decimal(100))
    fields: dict[str, object] = {"phase_started_at": T0, **changes}
    return LegState(spec=spec, status=status, **fields)


def _working(limit: str, side: Side = Side.BUY) -> LegState:
    return _leg(LegStatus.WORKING, side, submitted_at=T0, limit_price=Decimal(limit))


def _params(join: float, improve: float) -> AdaptiveParams:
    cfg = FitConfig(horizons_s=(5.0, 30.0), offsets_ticks=(0, 1))
    costs = {
        table_key(h, o): ((join if o == 0 else improve),) * cfg.n_cells for h in (5.0, 30.0) for o in (0, 1)
    }
    return AdaptiveParams(
        rule=FitRule.PAPER,
        fit_data=DataRef(symbol="XXX", day=date(2018, 1, 2), quotes_file="q", trades_file=None, digest="d"),
        config=cfg,
        samples=1,
        wait_cost=costs,
        counts={k: (1,) * cfg.n_cells for k in costs},
    )


# --- specs -------------------------------------------------------------------------------------------------


def test_names_resolve_to_specs_and_default_is_a_known_policy() -> None:
    assert policy_spec("market").kind == "market"
    assert policy_spec("touch-then-market").kind == "touch-then-market"
    assert policy_spec("default") == LadderSpec(
        name="default", initial_offset=Decimal("0.5"), repeg_steps=(Decimal("1.0"),), fill_wait_seconds=1.0
    )


def test_toml_spec_is_read_with_its_parameters(tmp_path: Path) -> None:
    path = tmp_path / "fast_ladder.toml"
    path.write_text('[policy]\nkind = "ladder"\nrepeg_steps = ["0.5", "1.0"]\nfill_wait_seconds = 5\n')
    spec = policy_spec(str(path))
    assert isinstance(spec, LadderSpec)
    assert spec.repeg_steps == (Decimal("0.5"), Decimal("1.0"))
    assert spec.name == "fast_ladder"


def test_toml_spec_with_a_bad_value_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('kind = "touch-then-market"\nwait_seconds = -1\n')
    with pytest.raises(ConfigError, match="wait_seconds"):
        policy_spec(str(path))


def test_unknown_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown policy"):
        policy_spec("no-such-policy")


def test_ladder_spec_maps_onto_the_engine_ladder_through_execution_config() -> None:
    spec = LadderSpec(initial_offset=Decimal("0.25"), repeg_steps=(Decimal("1.0"),), fill_wait_seconds=20)
    cfg = ladder_config(spec, CONFIG)
    assert (cfg.initial_offset, cfg.repeg_steps, cfg.fill_wait_seconds) == (
        Decimal("0.25"),
        (Decimal("1.0"),),
        20,
    )
    assert isinstance(build_policy(spec, CONFIG), LadderPolicy)


def test_ladder_wait_never_stretches_the_time_budget() -> None:
    short = CONFIG.model_copy(update={"max_total_wait": 5.0, "fill_wait_seconds": 5.0})
    cfg = ladder_config(LadderSpec(fill_wait_seconds=10), short)
    assert (cfg.max_total_wait, cfg.fill_wait_seconds) == (5.0, 5.0)


def test_ladder_with_steps_not_increasing_is_refused_naming_the_key() -> None:
    with pytest.raises(ValidationError, match="repeg_steps"):
        LadderSpec(repeg_steps=(Decimal("0.75"), Decimal("0.5")))


def test_ladder_collared_escalation_beyond_the_runs_price_collar_is_refused_naming_the_key() -> None:
    spec = LadderSpec(escalation=EscalationStyle.COLLARED_LIMIT, escalation_collar_bps=Decimal(600))
    with pytest.raises(ConfigError) as caught:
        ladder_config(spec, CONFIG)  # CONFIG's price collar: 5% = 500 bps
    assert (caught.value.key, caught.value.value) == ("escalation_collar_bps", Decimal(600))


def test_a_refused_collared_ladder_shows_the_collar_as_written() -> None:
    # It read "config escalation_collar_bps=Decimal('600'): ...", Python's repr, where every other configuration
    # error shows the value as a TOML file writes it (`repeg.config.refused`).
    spec = LadderSpec(escalation=EscalationStyle.COLLARED_LIMIT, escalation_collar_bps=Decimal(600))
    with pytest.raises(ConfigError) as caught:
        ladder_config(spec, CONFIG)
    assert str(caught.value).startswith("config escalation_collar_bps=600: a collared escalation")


def test_adaptive_without_parameters_is_refused() -> None:
    with pytest.raises(ConfigError, match="fitted parameters"):
        build_policy(AdaptiveSpec(), CONFIG)


# --- market --------------------------------------------------------------------------------------------------


def test_market_policy_sends_a_market_order_at_arrival() -> None:
    action = MarketPolicy(CONFIG).decide(_leg(), QUOTE, V, T0)
    assert isinstance(action, Submit)
    assert action.order_type is OrderType.MARKET


def test_market_policy_waits_for_a_valid_quote() -> None:
    action = MarketPolicy(CONFIG).decide(_leg(), None, QuoteVerdict.MISSING, T0)
    assert action == Wait(until=T0 + timedelta(seconds=1))


def test_leg_still_without_a_quote_at_the_deadline_is_skipped() -> None:
    action = MarketPolicy(CONFIG).decide(_leg(), None, QuoteVerdict.MISSING, T0 + timedelta(seconds=60))
    assert isinstance(action, Skip)


def test_nothing_is_decided_while_the_broker_answers() -> None:
    assert MarketPolicy(CONFIG).decide(_leg(LegStatus.SUBMITTING), QUOTE, V, T0) == Wait()


# --- touch then market ---------------------------------------------------------------------------------------


def _touch(wait: float = 30.0, follow: bool = False) -> TouchThenMarketPolicy:
    policy = build_policy(TouchThenMarketSpec(wait_seconds=wait, follow=follow), CONFIG)
    assert isinstance(policy, TouchThenMarketPolicy)
    return policy


def test_touch_joins_the_bid_for_a_buy_and_the_ask_for_a_sell() -> None:
    buy = _touch().decide(_leg(), QUOTE, V, T0)
    sell = _touch().decide(_leg(side=Side.SELL), QUOTE, V, T0)
    assert isinstance(buy, Submit)
    assert isinstance(sell, Submit)
    assert (buy.limit_price, sell.limit_price) == (Decimal("100.00"), Decimal("100.04"))


def test_touch_escalates_after_its_wait() -> None:
    leg = _working("100.00")
    assert isinstance(_touch(30).decide(leg, QUOTE, V, T0 + timedelta(seconds=29)), Wait)
    assert _touch(30).decide(leg, QUOTE, V, T0 + timedelta(seconds=30)) == Escalate(reason="touch_timeout")


def test_touch_escalates_at_the_budget_deadline_even_with_a_longer_wait() -> None:
    action = _touch(300).decide(_working("100.00"), QUOTE, V, T0 + timedelta(seconds=60))
    assert action == Escalate(reason="deadline")


def test_touch_follows_the_moving_bid_only_when_asked() -> None:
    moved = QUOTE.model_copy(update={"bid": Decimal("100.01")})
    assert isinstance(_touch(follow=False).decide(_working("100.00"), moved, V, T0), Wait)
    assert _touch(follow=True).decide(_working("100.00"), moved, V, T0) == Replace(
        limit_price=Decimal("100.01"), step=0, reason="repeg"
    )


def test_escalated_idle_leg_sends_its_remainder_at_market() -> None:
    leg = _leg(LegStatus.IDLE, submitted_at=T0, escalated=True)
    action = _touch().decide(leg, QUOTE, V, T0 + timedelta(seconds=31))
    assert isinstance(action, Submit)
    assert action.order_type is OrderType.MARKET


# --- adaptive ------------------------------------------------------------------------------------------------


def _adaptive(join: float, improve: float) -> AdaptivePolicy:
    policy = build_policy(AdaptiveSpec(margin_units=5.0), CONFIG, adaptive_params=_params(join, improve))
    assert isinstance(policy, AdaptivePolicy)
    return policy


def test_adaptive_crosses_at_arrival_with_a_market_order_when_waiting_is_dearer() -> None:
    action = _adaptive(join=300.0, improve=300.0).decide(_leg(), QUOTE, V, T0)
    assert action == Submit(order_type=OrderType.MARKET, reason=REASON_CROSS)


def test_adaptive_rests_one_tick_inside_when_that_is_cheapest() -> None:
    action = _adaptive(join=50.0, improve=0.0).decide(_leg(), QUOTE, V, T0)
    assert isinstance(action, Submit)
    assert action.limit_price == Decimal("100.01")


def test_adaptive_working_order_escalates_when_crossing_becomes_cheapest() -> None:
    action = _adaptive(join=300.0, improve=300.0).decide(
        _working("100.00"), QUOTE, V, T0 + timedelta(seconds=5)
    )
    assert action == Escalate(reason=REASON_CROSS)


def _working_at_market() -> LegState:
    """A leg whose market order (a cross at arrival) the broker accepted and has not filled yet."""
    market = OrderRecord(client_order_id="c0", attempt=0, order_id="o0", order_type=OrderType.MARKET)
    return _leg(
        LegStatus.WORKING, submitted_at=T0, orders=(market,), active_client_order_id=market.client_order_id
    )


def test_adaptive_leaves_its_own_market_order_to_fill_rather_than_escalating_it() -> None:
    # It crossed at arrival; a quote comes before the fill and crossing is still cheapest. Escalating would mark a
    # deliberate cross as an escalation, cancel the market order and send the same one again.
    action = _adaptive(join=300.0, improve=300.0).decide(_working_at_market(), QUOTE, V, T0)
    assert isinstance(action, Wait)


def test_a_market_order_working_at_the_deadline_is_left_to_fill_not_escalated() -> None:
    # As the engine's ladder (`works_at_market`): escalating it would only cancel it and send it again.
    action = build_policy(MarketSpec(), CONFIG).decide(
        _working_at_market(), QUOTE, V, T0 + timedelta(seconds=60)
    )
    assert isinstance(action, Wait)


def test_adaptive_does_not_move_for_a_saving_within_the_margin() -> None:
    # Resting at the bid is valued 50, one tick inside 47: a 3-unit saving is below the 5-unit margin.
    action = _adaptive(join=50.0, improve=47.0).decide(
        _working("100.00"), QUOTE, V, T0 + timedelta(seconds=1)
    )
    assert isinstance(action, Wait)


def test_adaptive_moves_a_limit_left_behind_the_touch() -> None:
    moved = QUOTE.model_copy(update={"bid": Decimal("100.02"), "ask": Decimal("100.06")})
    action = _adaptive(join=50.0, improve=60.0).decide(
        _working("100.00"), moved, V, T0 + timedelta(seconds=1)
    )
    assert action == Replace(limit_price=Decimal("100.02"), step=0, reason="repeg")


def test_adaptive_crossing_after_its_limit_was_cancelled_escalates() -> None:
    # Its limit filled 40 of 100 and was cancelled for a re-peg (a part-filled order is not replaced): the leg is
    # idle and crossing is now cheapest. That gives up resting as crossing from a working limit does, yet a market
    # order sent as a plan counted as no escalation in the run's result and the lab's escalation rate.
    limit = OrderRecord(
        client_order_id="c0",
        attempt=0,
        order_id="o0",
        order_type=OrderType.LIMIT,
        qty=Decimal(100),
        limit_price=Decimal("100.00"),
        status=OrderStatus.CANCELED,
        filled_qty=Decimal(40),
    )
    leg = _leg(LegStatus.IDLE, submitted_at=T0, orders=(limit,))
    action = _adaptive(join=300.0, improve=300.0).decide(leg, QUOTE, V, T0 + timedelta(seconds=5))
    assert action == Escalate(reason=REASON_CROSS)


def test_adaptive_crosses_when_too_little_time_is_left() -> None:
    action = _adaptive(join=-100.0, improve=-100.0).decide(
        _working("100.00"), QUOTE, V, T0 + timedelta(seconds=56)
    )
    assert action == Escalate(reason=REASON_CROSS)


def _trend_params() -> AdaptiveParams:
    """Resting is cheap after a favourable mid move (trend bucket 0), dear after an adverse one (bucket 2)."""
    base = _params(join=0.0, improve=0.0)
    by_trend = {0: -50.0, 1: 150.0, 2: 300.0}
    row = tuple(by_trend[cell % 3] for cell in range(base.config.n_cells))
    return base.model_copy(update={"wait_cost": dict.fromkeys(base.wait_cost, row)})


def _quote_at(second: int, bid: str, ask: str) -> Quote:
    return QUOTE.model_copy(
        update={"bid": Decimal(bid), "ask": Decimal(ask), "ts": T0 + timedelta(seconds=second)}
    )


def test_adaptive_reads_the_recent_mid_trend_from_the_quotes_it_is_shown() -> None:
    falling = build_policy(AdaptiveSpec(), CONFIG, adaptive_params=_trend_params())
    rising = build_policy(AdaptiveSpec(), CONFIG, adaptive_params=_trend_params())
    falling.decide(_leg(), _quote_at(0, "100.10", "100.14"), V, T0)
    rising.decide(_leg(), _quote_at(0, "99.90", "99.94"), V, T0)
    now = T0 + timedelta(seconds=6)
    after_fall = falling.decide(_leg(), _quote_at(6, "100.00", "100.04"), V, now)
    after_rise = rising.decide(_leg(), _quote_at(6, "100.00", "100.04"), V, now)
    assert isinstance(after_fall, Submit)
    assert after_fall.order_type is OrderType.LIMIT  # the market came down to a buyer: rest
    assert after_rise == Submit(order_type=OrderType.MARKET, reason=REASON_CROSS)  # it went up: cross


def test_adaptive_reads_a_new_orders_trend_from_the_replay_not_from_an_earlier_orders_quotes() -> None:
    # The policy is shown quotes only while an order is live: an order two minutes earlier left it the mid at
    # 99.92. The replay says the quote 5 s before the new order's quote was today's 100.00 / 100.04: a flat
    # market, where the fit says resting is cheaper than crossing. Read from its stale memory, the mid "rose"
    # 8 cents in 5 s, and the policy crossed. On 2018-01-03 half of the first decisions had the trend's sign wrong.
    flat_since = _quote_at(100, "100.00", "100.04")
    policy = build_policy(
        AdaptiveSpec(),
        CONFIG,
        adaptive_params=_trend_params(),
        quote_in_force_at=lambda symbol, at: flat_since if at >= flat_since.ts else None,
    )
    policy.decide(_leg(), _quote_at(0, "99.90", "99.94"), V, T0)  # the earlier order
    now = T0 + timedelta(seconds=120)
    action = policy.decide(_leg(phase_started_at=now), _quote_at(118, "100.00", "100.04"), V, now)
    assert isinstance(action, Submit)
    assert action.order_type is OrderType.LIMIT


def test_adaptive_wakes_at_the_next_quote_when_the_replay_can_tell() -> None:
    next_quote = T0 + timedelta(milliseconds=300)
    policy = build_policy(
        AdaptiveSpec(margin_units=5.0),
        CONFIG,
        adaptive_params=_params(join=50.0, improve=47.0),
        next_quote_at=lambda symbol, now: next_quote,
    )
    action = policy.decide(_working("100.00"), QUOTE, V, T0 + timedelta(milliseconds=100))
    assert action == Wait(until=next_quote)


# --- spec bounds: the keys a user gives (TOML, grid) are bounded as ExecutionConfig bounds the same keys ------


def _spec_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return str(path)


def test_a_spec_file_nested_too_deeply_is_refused_naming_that_file(tmp_path: Path) -> None:
    # tomllib's RecursionError escaped policy_spec; `repeg compare` then blamed its whole --policies list.
    path = _spec_file(tmp_path, "x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError) as info:
        policy_spec(path)
    assert (info.value.key, info.value.value, info.value.reason) == (
        "--policy",
        path,
        "cannot read TOML: nested too deeply",
    )


def test_a_bad_spec_value_is_named_by_its_key_not_by_the_policy_kind(tmp_path: Path) -> None:
    # The key read `policy.touch-then-market.wait_seconds`: the discriminator's tag, a key no file holds.
    with pytest.raises(ConfigError) as caught:
        policy_spec(_spec_file(tmp_path, 'kind = "touch-then-market"\nwait_seconds = -1\n'))
    assert (caught.value.key, caught.value.value) == ("policy.wait_seconds", -1)


SECRET = "PKSECRETSECRETSECRET0123456789ABCDEFGHIJ"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (f'kind = "touch-then-market"\nwait_seconds = "{SECRET}"\n', "policy.wait_seconds"),
        (f'kind = "market"\nsecret_key = "{SECRET}"\n', "policy.secret_key"),
        (f'[policy]\nkind = "{SECRET}"\n', "policy.kind"),
    ],
    ids=["wrong-kind", "unknown-key", "unknown-kind"],
)
def test_a_spec_files_value_that_could_be_a_secret_is_not_printed(
    tmp_path: Path, text: str, key: str
) -> None:
    # policy_spec put pydantic's input into its ConfigError (and chained pydantic's error, which prints it too):
    # a key pasted into the policy file printed `config policy.secret_key='PK...'`, where every other config
    # file's error names the key and the kind of what it found (`repeg.config.refused`).
    import traceback

    with pytest.raises(ConfigError) as caught:
        policy_spec(_spec_file(tmp_path, text))
    assert caught.value.key == key
    assert SECRET not in "".join(traceback.format_exception(caught.value))


def test_a_ladder_refused_under_the_runs_config_is_not_chained_to_pydantics_error() -> None:
    # ladder_config and the backtest's budget_config chained pydantic's error (its text prints the input), where
    # every other configuration reader raises its ConfigError on its own.
    spec = LadderSpec(escalation=EscalationStyle.COLLARED_LIMIT, escalation_collar_bps=Decimal(600))
    with pytest.raises(ConfigError) as caught:
        ladder_config(spec, CONFIG)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_policy_path_that_is_a_directory_is_refused_in_words_naming_the_option(tmp_path: Path) -> None:
    # It said "neither a known policy name (...) nor a readable TOML file: [Errno 21] Is a directory: '...'".
    with pytest.raises(ConfigError) as caught:
        policy_spec(str(tmp_path), "--policies")
    assert (caught.value.key, caught.value.value) == ("--policies", str(tmp_path))
    assert caught.value.reason == "a directory, not a policy name or TOML file"


def test_an_unknown_policy_kind_is_named_as_the_kind_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        policy_spec(_spec_file(tmp_path, 'kind = "twap"\n'))
    assert (caught.value.key, caught.value.value) == ("policy.kind", "twap")


TIME_KEYS = [
    ("touch-then-market", "wait_seconds"),
    ("ladder", "fill_wait_seconds"),
    ("adaptive", "poll_seconds"),
]


@pytest.mark.parametrize(("kind", "key"), TIME_KEYS)
def test_a_policy_time_given_as_a_boolean_is_refused_not_read_as_one_second(
    tmp_path: Path, kind: str, key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        policy_spec(_spec_file(tmp_path, f'kind = "{kind}"\n{key} = true\n'))
    assert (caught.value.key, caught.value.value) == (f"policy.{key}", True)


@pytest.mark.parametrize(("kind", "key"), TIME_KEYS)
@pytest.mark.parametrize("value", ["inf", "1e300"])
def test_a_policy_time_too_large_for_the_clock_is_refused_naming_the_key(
    tmp_path: Path, kind: str, key: str, value: str
) -> None:
    # A touch wait or an adaptive poll of inf crashed the backtest with OverflowError (a traceback, exit 1); a
    # ladder wait of inf silently became the time budget.
    with pytest.raises(ConfigError) as caught:
        policy_spec(_spec_file(tmp_path, f'kind = "{kind}"\n{key} = {value}\n'))
    assert (caught.value.key, caught.value.value) == (f"policy.{key}", float(value))


@pytest.mark.parametrize(("kind", "key"), TIME_KEYS)
def test_a_policy_time_under_a_microsecond_is_refused_not_read_as_zero(
    tmp_path: Path, kind: str, key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        policy_spec(_spec_file(tmp_path, f'kind = "{kind}"\n{key} = 1e-9\n'))
    assert caught.value.key == f"policy.{key}"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("escalation_collar_bps = 10000", "escalation_collar_bps"),
        ("repeg_steps = [0.75, 0.5]", "repeg_steps"),
        ("repeg_steps = []", "repeg_steps"),
        ("repeg_steps = [0, 0.5]", "repeg_steps"),
    ],
)
def test_a_ladder_spec_is_bounded_as_execution_config_bounds_the_same_key(
    tmp_path: Path, line: str, key: str
) -> None:
    # Accepted when read, refused only once a backtest built the policy (a sweep point, in its worker), and then
    # named without the policy prefix.
    with pytest.raises(ConfigError) as caught:
        policy_spec(_spec_file(tmp_path, f'kind = "ladder"\n{line}\n'))
    assert caught.value.key == f"policy.{key}"


def test_an_adaptive_margin_given_as_a_boolean_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        policy_spec(_spec_file(tmp_path, 'kind = "adaptive"\nmargin_units = true\n'))
    assert (caught.value.key, caught.value.value) == ("policy.margin_units", True)


def test_a_policy_file_that_is_not_utf8_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(b'kind = "market"\n# caf\xe9\n')
    with pytest.raises(ConfigError) as caught:
        policy_spec(str(path))
    assert (caught.value.key, caught.value.value) == ("--policy", str(path))
