"""Deterministic ids and configuration validation."""

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repeg.config import ExecutionConfig, classic_ladder, config_from_mapping, load_config
from repeg.domain.ids import MAX_CLIENT_ORDER_ID, client_order_id, leg_id, new_run_id, validate_run_id
from repeg.errors import ConfigError

run_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", fullmatch=True)


@given(run_ids, st.integers(0, 99_999), st.integers(0, 999))
def test_client_order_ids_are_deterministic_and_bounded(run_id, leg, attempt):
    first = client_order_id(run_id, leg, attempt)
    assert first == client_order_id(run_id, leg, attempt)
    assert 0 < len(first) <= MAX_CLIENT_ORDER_ID


@given(run_ids, st.integers(0, 9999), st.integers(0, 99))
def test_client_order_ids_differ_by_leg_and_attempt(run_id, leg, attempt):
    ids = {client_order_id(run_id, leg, attempt), client_order_id(run_id, leg + 1, attempt)}
    ids.add(client_order_id(run_id, leg, attempt + 1))
    assert len(ids) == 3


def test_negative_leg_or_attempt_is_refused():
    with pytest.raises(ValueError, match=">= 0"):
        client_order_id("run", -1, 0)


def test_run_id_validation_names_the_value():
    assert validate_run_id("run-1") == "run-1"
    with pytest.raises(ValueError, match="'bad id'"):
        validate_run_id("bad id")


def test_new_run_id_is_a_pure_function_of_its_material():
    assert new_run_id("a") == new_run_id("a") != new_run_id("b")
    assert validate_run_id(new_run_id("a"))
    assert leg_id("r1", 3) == "r1-L0003"


def test_defaults_match_the_documented_schedule():
    # Rest at the mid for 1 s, then the far touch: see docs/EXECUTION_QUALITY.md for why.
    config = ExecutionConfig()
    assert config.initial_offset == Decimal("0.5")
    assert config.repeg_steps == (Decimal("1.0"),)
    assert config.max_repegs == 1
    assert config.fill_wait.total_seconds() == 1
    assert config.total_wait.total_seconds() == 120
    assert config.grace.total_seconds() == 5
    assert config.quote_age_limit.total_seconds() == 5
    assert config.quote_wait_limit.total_seconds() == 30
    assert config.check_interval.total_seconds() == 1


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"fill_wait_seconds": -1}, "fill_wait_seconds"),
        ({"repeg_steps": []}, "repeg_steps"),
        ({"repeg_steps": ["0.5", "0.4"]}, "repeg_steps"),
        ({"repeg_steps": ["0", "0.5"]}, "repeg_steps"),
        ({"repeg_steps": ["0.5", "1.5"]}, "repeg_steps"),
        ({"max_total_wait": 5, "fill_wait_seconds": 10}, "max_total_wait"),
        ({"initial_offset": "2"}, "initial_offset"),
        ({"no_such_key": 1}, "no_such_key"),
    ],
)
def test_bad_config_raises_config_error_naming_the_key(data, key):
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(data)
    assert caught.value.key == key
    assert key in str(caught.value)


def test_classic_ladder_is_the_original_schedule_and_takes_overrides():
    config = classic_ladder(max_total_wait=60)
    assert config.initial_offset == Decimal(0)
    assert config.repeg_steps == (Decimal("0.5"), Decimal("0.75"), Decimal("1.0"))
    assert config.max_repegs == 3
    assert config.fill_wait_seconds == 10
    assert config.max_total_wait == 60


def test_classic_ladder_validates_its_overrides():
    with pytest.raises(ConfigError) as caught:
        classic_ladder(fill_wait_seconds=-1)
    assert caught.value.key == "fill_wait_seconds"


def test_load_config_reads_the_execution_table(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[execution]\nfill_wait_seconds = 3\ninitial_offset = 0.25\nrepeg_steps = ["0.3", "1.0"]\n'
    )
    config = load_config(path)
    assert (config.fill_wait_seconds, config.initial_offset) == (3, Decimal("0.25"))
    assert config.repeg_steps == (Decimal("0.3"), Decimal("1.0"))


def test_load_config_reports_unreadable_toml(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text("[execution\n")
    with pytest.raises(ConfigError, match="cannot read TOML"):
        load_config(path)


@pytest.mark.parametrize(
    "key",
    [
        "fill_wait_seconds",
        "wait_between_checks",
        "max_total_wait",
        "grace_window",
        "quote_max_age",
        "quote_wait",
    ],
)
def test_boolean_for_a_time_is_refused_not_read_as_one_second(key):
    # TOML `fill_wait_seconds = true` must not silently mean 1 s (Decimal keys already refuse booleans).
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({key: True})
    assert (caught.value.key, caught.value.value) == (key, True)


@pytest.mark.parametrize("value", [float("inf"), 1e300])
@pytest.mark.parametrize("key", ["max_total_wait", "quote_wait", "grace_window", "quote_max_age"])
def test_time_too_large_for_the_clock_is_refused_naming_the_key(key, value):
    # These used to pass validation, then raise OverflowError when the run turned them into a timedelta.
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({key: value})
    assert caught.value.key == key


@pytest.mark.parametrize("key", ["fill_wait_seconds", "wait_between_checks", "quote_max_age"])
def test_positive_time_below_one_microsecond_is_refused(key):
    # 1e-7 s passes `> 0` but becomes timedelta(0): a zero polling interval or re-peg wait.
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({key: 1e-7})
    assert caught.value.key == key


def test_one_microsecond_is_the_smallest_positive_time():
    assert config_from_mapping({"wait_between_checks": 1e-6}).check_interval.total_seconds() == 1e-6


def test_max_total_wait_below_fill_wait_names_max_total_wait():
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"max_total_wait": 5, "fill_wait_seconds": 10})
    assert (caught.value.key, caught.value.value) == ("max_total_wait", 5)
    assert "at least fill_wait_seconds" in caught.value.reason


def test_load_config_reports_a_file_that_is_not_utf8(tmp_path: Path):
    # UnicodeDecodeError escaped load_config (only OSError and TOML errors were caught).
    path = tmp_path / "c.toml"
    path.write_bytes(b"[execution]\n# caf\xe9\nfill_wait_seconds = 3\n")
    with pytest.raises(ConfigError, match="cannot read TOML"):
        load_config(path)


def test_fill_wait_beyond_the_default_max_total_wait_is_refused():
    # Field validators skip defaults unless asked: max_total_wait left at 120 must still be checked.
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"fill_wait_seconds": 200})
    assert (caught.value.key, caught.value.value) == ("max_total_wait", 120.0)


@pytest.mark.parametrize("bps", [Decimal(10_000), Decimal(25_000)])
def test_escalation_collar_of_100_percent_or_more_is_refused(bps):
    # A sell collar of 100% bounds nothing (the limit fell to the lowest legal price); it was accepted, and the
    # escalation was then refused mid-run by price_collar_pct, failing legs after their passive phase.
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"escalation": "collared_limit", "escalation_collar_bps": bps})
    assert (caught.value.key, caught.value.value) == ("escalation_collar_bps", bps)


def test_escalation_collar_just_under_100_percent_is_accepted():
    config = config_from_mapping({"escalation_collar_bps": "9999.99"})
    assert config.escalation_collar_bps == Decimal("9999.99")


@pytest.mark.parametrize("bps", [Decimal(500), Decimal(600)])
def test_escalation_collar_at_or_beyond_the_price_collar_is_refused_at_start(bps):
    # A collared escalation limit lies the collar beyond the far touch, so at the arrival quote it is already
    # further than the collar from the arrival mid: price_collar_pct refused every escalation mid-run, failing
    # the leg after its passive phase (the demo's KO leg: "price_collar_pct is 5, refused value 6.0667").
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(
            {"escalation": "collared_limit", "escalation_collar_bps": bps, "price_collar_pct": 5}
        )
    assert (caught.value.key, caught.value.value) == ("escalation_collar_bps", bps)
    assert "price_collar_pct" in caught.value.reason


def test_escalation_collar_under_the_price_collar_is_accepted():
    config = config_from_mapping(
        {"escalation": "collared_limit", "escalation_collar_bps": "499.99", "price_collar_pct": 5}
    )
    assert config.escalation_collar_bps == Decimal("499.99")


def test_market_escalation_is_not_bound_by_the_escalation_collar():
    # With market escalation the collar only buffers the buy sizing: a tight price collar must not refuse it.
    config = config_from_mapping({"price_collar_pct": "0.25"})
    assert (config.escalation, config.escalation_collar_bps) == ("market", Decimal(50))


@pytest.mark.parametrize("limit", ["max_order_notional", "max_run_notional"])
def test_min_notional_above_a_notional_limit_is_refused_naming_min_notional(limit):
    # Every trade is then either skipped (under min_notional) or refuses the plan (over the limit): such a
    # configuration can never trade, and was accepted.
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"min_notional": 100, limit: 50})
    assert (caught.value.key, caught.value.value) == ("min_notional", Decimal(100))
    assert limit in caught.value.reason


def test_min_notional_equal_to_the_order_limit_is_accepted():
    config = config_from_mapping({"min_notional": 50, "max_order_notional": 50, "max_run_notional": 50})
    assert config.min_notional == config.max_order_notional == Decimal(50)


def test_load_config_reads_a_run_configuration_without_an_execution_table_as_the_defaults(tmp_path: Path):
    # `repeg run --config` takes such a file (execution at its defaults); load_config refused it, reading the
    # [simulator] table as an unknown execution key.
    path = tmp_path / "c.toml"
    path.write_text("[simulator]\nseed = 3\n")
    assert load_config(path) == ExecutionConfig()


def test_load_config_still_refuses_a_misspelt_execution_table(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text("[executon]\nfill_wait_seconds = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "executon"


def test_load_config_refuses_a_key_outside_the_tables_of_a_run_configuration(tmp_path: Path):
    # Written above [execution] (so outside it), the key was silently ignored: the run used the default.
    path = tmp_path / "c.toml"
    path.write_text("fill_wait_seconds = 3\n[execution]\nmax_total_wait = 60\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.key, caught.value.value) == ("fill_wait_seconds", 3)


def test_a_key_refused_across_keys_is_shown_with_the_value_as_written():
    # Field errors show the value as written (600); the cross-key checks showed the parsed Decimal('600').
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"escalation": "collared_limit", "escalation_collar_bps": 600})
    assert str(caught.value).startswith("config escalation_collar_bps=600: ")


@pytest.mark.parametrize(
    ("offset", "steps"),
    [("0.75", ["0.5", "1.0"]), ("0.5", ["0.25", "0.5"]), ("1", ["0.9"])],
)
def test_an_initial_offset_beyond_the_first_repeg_step_is_refused_at_start(offset, steps):
    # Both price at near + fraction x spread: on a 100.00/100.08 quote, offset 0.75 rests a buy at 100.06 and a
    # first step of 0.5 re-priced it to 100.04, away from the far side the schedule exists to approach.
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"initial_offset": offset, "repeg_steps": steps})
    assert (caught.value.key, caught.value.value) == ("initial_offset", offset)
    assert f"first re-peg step ({steps[0]})" in caught.value.reason


def test_an_initial_offset_equal_to_the_first_repeg_step_is_accepted():
    # Same fraction, from the quote of that moment: the re-peg follows a moved market, never away from it.
    config = config_from_mapping({"initial_offset": "0.5", "repeg_steps": ["0.5", "1.0"]})
    assert (config.initial_offset, config.repeg_steps[0]) == (Decimal("0.5"), Decimal("0.5"))


def test_run_id_refusal_states_the_first_character_rule():
    # "-ab" is 1-32 letters, digits, '-' or '_': the message stated a rule the refused id satisfies.
    with pytest.raises(ValueError) as caught:
        validate_run_id("-ab")
    message = str(caught.value)
    assert "'-ab'" in message
    assert "the first a letter or digit" in message


def test_load_config_refuses_a_file_of_top_level_keys_saying_to_put_them_under_execution(tmp_path: Path):
    # load_config read such a file as [execution]; `repeg run --config` refused the same file: the two disagreed.
    path = tmp_path / "c.toml"
    path.write_text("fill_wait_seconds = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.key, caught.value.value) == ("fill_wait_seconds", 3)
    assert "put it under [execution]" in caught.value.reason


@pytest.mark.parametrize("key", ["fill_wait_seconds", "grace_window", "quote_wait"])
def test_nan_for_a_time_is_refused_as_not_a_number(key):
    # TOML `fill_wait_seconds = nan` was refused with "Input should be greater than 0" (and grace_window's
    # with "greater than or equal to 0"): a reason that does not fit the value.
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({key: float("nan")})
    assert caught.value.key == key
    assert caught.value.reason == "must be a number of seconds, not NaN"


def test_load_config_takes_a_path_given_as_text(tmp_path: Path):
    # load_plan("plan.csv") and simulate("plan.csv") take text; load_config("my.toml") raised AttributeError.
    path = tmp_path / "c.toml"
    path.write_text("[execution]\nfill_wait_seconds = 3\n")
    assert load_config(str(path)).fill_wait_seconds == 3


def test_load_config_of_a_missing_file_given_as_text_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(str(tmp_path / "missing.toml"))


def test_load_config_reads_a_file_saved_with_a_utf8_byte_order_mark(tmp_path: Path):
    # An editor's BOM (plans and quote files accept one) was refused: "cannot read TOML: Invalid statement (at
    # line 1, column 1)", naming nothing visible.
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbf[execution]\nfill_wait_seconds = 3\n")
    assert load_config(path).fill_wait_seconds == 3


@pytest.mark.parametrize(
    ("key", "text"),
    [("max_spread_pct", "\u0661\u0660"), ("min_notional", "\uff15"), ("initial_offset", "0.\u0665")],
)
def test_a_decimal_key_written_in_non_ascii_digits_is_refused_naming_key_and_value(tmp_path: Path, key, text):
    # TOML `max_spread_pct = "١٠"` was read as 10% (Decimal reads any script's digits); a plan or quote file
    # refuses such digits as not a number.
    path = tmp_path / "c.toml"
    path.write_text(f'[execution]\n{key} = "{text}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.key, caught.value.value) == (key, text)
    assert "ASCII" in caught.value.reason


@pytest.mark.parametrize(("key", "text"), [("max_spread_pct", "1_0"), ("min_notional", "1_000")])
def test_a_decimal_key_written_as_text_with_underscores_is_refused_as_a_plan_refuses_it(
    tmp_path: Path, key, text
):
    # TOML `max_spread_pct = "1_0"` was read as 10% (Decimal reads Python's digit separators); a plan refuses
    # "1_0" as not a number.
    path = tmp_path / "c.toml"
    path.write_text(f'[execution]\n{key} = "{text}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.key, caught.value.value) == (key, text)


def test_repeg_steps_written_in_non_ascii_digits_are_refused():
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"repeg_steps": ["0.5", "\u0661"]})
    assert caught.value.key == "repeg_steps.1"


@pytest.mark.parametrize("key", ["min_notional", "initial_offset", "grace_window", "quote_wait"])
def test_a_negative_zero_is_refused_as_a_negative_value_is(tmp_path: Path, key):
    # TOML `min_notional = -0.0` was kept as -0 ("notional 0.50 is below min_notional -0.0"), where a plan's -0
    # weight and a quote file's -0 are refused: a sign the user wrote on a key that takes none.
    path = tmp_path / "c.toml"
    path.write_text(f"[execution]\n{key} = -0.0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.key, caught.value.reason) == (key, "must be 0 or more, not -0")


def test_a_time_over_the_bound_is_refused_as_366_days_not_one_year() -> None:
    """MAX_SECONDS is 366 days; the refusal (of a key, a simulator latency) called it "one year", which a reader takes
    for 365: it names the days the bound holds."""
    from repeg.config import MAX_SECONDS
    from repeg.simulation import latency_from_mapping

    for refuse in (config_from_mapping, latency_from_mapping):
        key = "quote_wait" if refuse is config_from_mapping else "cancel"
        with pytest.raises(ConfigError) as caught:
            refuse({key: MAX_SECONDS + 1})
        assert "31622400 seconds (366 days)" in str(caught.value), str(caught.value)
