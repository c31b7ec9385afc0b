"""A run's TOML configuration: each table validated, each bad key named."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from repeg.brokers.simulator.account import SimAccount
from repeg.cli.settings import load_settings, settings_from_mapping
from repeg.config import ExecutionConfig, load_config
from repeg.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def config_error(raw: dict[str, object]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(raw)
    return info.value


def test_no_file_means_every_default() -> None:
    settings = load_settings(None)
    assert settings.execution == ExecutionConfig()
    assert settings.account.cash == Decimal(1_000_000)
    assert settings.seed == 0


def test_demo_config_reads_account_market_and_seed() -> None:
    settings = load_settings(REPO / "examples" / "demo.toml")
    assert settings.account.positions["INTC"] == Decimal(4000)
    assert settings.market.symbols["AAPL"].price == Decimal("190.00")
    assert settings.market.start == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert settings.seed == 1
    assert settings.execution.max_order_notional == Decimal(300000)


def test_unknown_top_level_table_is_refused() -> None:
    error = config_error({"executon": {}})
    assert (error.key, error.reason) == ("executon", "unknown table (known: execution, simulator)")


def test_execution_key_error_names_the_key() -> None:
    assert config_error({"execution": {"fill_wait_seconds": -1}}).key == "fill_wait_seconds"


def test_table_that_is_not_a_table_is_refused() -> None:
    assert config_error({"execution": 3}).reason == "must be a table"


def test_simulator_key_error_is_prefixed_with_its_table() -> None:
    error = config_error({"simulator": {"cash": -5}})
    assert error.key == "simulator.cash"


def test_market_key_error_is_prefixed_with_its_table() -> None:
    error = config_error({"simulator": {"market": {"duration_seconds": 0}}})
    assert error.key == "simulator.market.duration_seconds"


def test_unknown_market_symbol_setting_is_named() -> None:
    error = config_error({"simulator": {"market": {"symbols": {"AAA": {"price": "1", "colour": "red"}}}}})
    assert error.key == "simulator.market.symbols.AAA.colour"


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_seed_must_be_a_non_negative_integer(seed: object) -> None:
    error = config_error({"simulator": {"seed": seed}})
    assert (error.key, error.value) == ("simulator.seed", seed)


def test_unreadable_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[execution\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_settings(path)


def test_toml_nested_too_deeply_is_refused_naming_the_file(tmp_path: Path) -> None:
    # tomllib raised RecursionError: `repeg run --config` printed a traceback and exited 1 (a bug).
    path = tmp_path / "deep.toml"
    path.write_text("[execution]\nx = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"deep\.toml.*nested too deeply"):
        load_settings(path)


def test_execution_toml_nested_too_deeply_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"deep\.toml.*nested too deeply"):
        load_config(path)


def test_latency_is_read_in_seconds() -> None:
    settings = settings_from_mapping({"simulator": {"latency": {"submit_ack": 0.05, "cancel": 1}}})
    assert settings.latency.submit_ack == timedelta(milliseconds=50)
    assert settings.latency.cancel == timedelta(seconds=1)


def test_latency_key_error_is_prefixed_with_its_table() -> None:
    assert config_error({"simulator": {"latency": {"ack": 1}}}).key == "simulator.latency.ack"


@pytest.mark.parametrize("table", ["latency", "market"])
def test_simulator_subtable_that_is_not_a_table_is_named_with_its_table(table: str) -> None:
    error = config_error({"simulator": {table: 5}})
    assert (error.key, error.reason) == (f"simulator.{table}", "must be a table")


@pytest.mark.parametrize(
    ("simulator", "key"),
    [
        ({"positions": {"aapl": 100}}, "simulator.positions.aapl"),
        ({"non_tradable": ["AAPL", "ko"]}, "simulator.non_tradable"),
        ({"non_fractionable": ["msft"]}, "simulator.non_fractionable"),
        ({"market": {"symbols": {"nvda": {"price": "480.00"}}}}, "simulator.market.symbols.nvda"),
    ],
)
def test_a_lower_case_symbol_in_the_simulator_tables_is_refused(
    simulator: dict[str, object], key: str
) -> None:
    # Plans are read upper case: 'aapl' here would name a holding (or a setting) no plan can ever reach.
    error = config_error({"simulator": simulator})
    assert error.key == key


@pytest.mark.parametrize(
    ("simulator", "key", "value"),
    [
        ({"positions": {"AAPL ": 100}}, "simulator.positions.AAPL ", "AAPL "),
        ({"non_tradable": ["AAPL", "KO "]}, "simulator.non_tradable", "KO "),
        ({"non_fractionable": [" MSFT"]}, "simulator.non_fractionable", " MSFT"),
        ({"market": {"symbols": {"NVDA!": {"price": "480.00"}}}}, "simulator.market.symbols.NVDA!", "NVDA!"),
    ],
)
def test_a_symbol_no_plan_can_name_is_refused_in_the_simulator_tables(
    simulator: dict[str, object], key: str, value: str
) -> None:
    # A plan's symbols are trimmed tickers: non_tradable = ["KO "] left KO tradable, and a position under
    # "AAPL " was held where no plan row could ever reach it; both were accepted silently.
    error = config_error({"simulator": simulator})
    assert (error.key, error.value) == (key, value)


def test_a_default_refused_by_a_check_across_keys_is_shown_as_toml_writes_it_and_called_the_default() -> None:
    # `repeg_steps = [0.3]` alone read "config initial_offset=Decimal('0.5'): ...": Python's repr of a key the
    # file never set, with nothing saying that 0.5 is the default the other key now conflicts with.
    error = config_error({"execution": {"repeg_steps": [0.3]}})
    assert (error.key, error.value) == ("initial_offset", "0.5")
    assert "Decimal(" not in str(error)
    assert "(initial_offset is not set: 0.5 is its default)" in str(error)


def test_a_value_the_file_sets_is_shown_as_written_without_a_default_note() -> None:
    error = config_error({"execution": {"initial_offset": 0.75, "repeg_steps": [0.5]}})
    assert (error.key, error.value) == ("initial_offset", 0.75)
    assert "default" not in str(error)


@pytest.mark.parametrize("key", ["max_spread_pct", "price_collar_pct"])
def test_a_percentage_too_large_to_compute_with_is_refused_naming_its_key(key: str) -> None:
    # max_spread_pct = "1e999999" passed validation, then overflowed Decimal pricing the first quote, and
    # price_collar_pct = "1e999999" overflowed the check across keys: both a traceback and exit 1 (a bug).
    error = config_error({"execution": {key: "1e999999"}})
    assert (error.key, error.value) == (key, "1e999999")
    assert "1000000" in error.reason


@pytest.mark.parametrize("key", ["max_spread_pct", "price_collar_pct"])
def test_a_percentage_of_a_million_is_accepted(key: str) -> None:
    execution = settings_from_mapping({"execution": {key: 1_000_000}}).execution
    assert getattr(execution, key) == Decimal(1_000_000)


@pytest.mark.parametrize("price", ["1e999999", "1e20"])
def test_a_synthetic_start_price_beyond_ten_million_dollars_is_refused_naming_it(price: str) -> None:
    # price = "1e999999" raised decimal.Overflow validating it (a traceback, exit 1); "1e20" passed and then
    # overflowed the generator's int64 ticks, so every quote of the symbol was garbage and its trades skipped.
    error = config_error({"simulator": {"market": {"symbols": {"AAPL": {"price": price}}}}})
    assert (error.key, error.value) == ("simulator.market.symbols.AAPL.price", price)


def test_a_synthetic_start_price_of_ten_million_dollars_is_accepted() -> None:
    market = settings_from_mapping(
        {"simulator": {"market": {"symbols": {"BRK.A": {"price": "10000000"}}}}}
    ).market
    assert market.symbols["BRK.A"].price == Decimal(10_000_000)


@pytest.mark.parametrize("key", ["max_spread_pct", "price_collar_pct"])
def test_a_run_journaled_with_a_percentage_above_the_later_bound_still_resumes_under_it(key: str) -> None:
    # Before 55db766 a percentage had no upper bound: `max_spread_pct = 1e9` (never refuse a quote for its spread)
    # started runs. Such an interrupted run, its orders possibly working at the broker, must resume under what it
    # journaled, as it does when a check across keys was added later; the bound holds for new configurations.
    from repeg.cli.journal_cmds import config_from_record

    config = config_from_record({key: '"1000000000"'})
    assert getattr(config, key) == Decimal(1_000_000_000)


def test_a_run_journaled_with_a_negative_zero_before_it_was_refused_still_resumes_under_it() -> None:
    # Before 78cddb08 `min_notional = -0.0` (and the other keys taking 0 or more) started runs; the engine
    # journaled them as below. A fresh configuration refuses -0; the journaled one must resume as it ran.
    from repeg.cli.journal_cmds import config_from_record

    keys = ("initial_offset", "grace_window", "quote_wait", "min_notional")
    config = config_from_record(dict.fromkeys(keys, "-0.0"))
    assert [math.copysign(1.0, getattr(config, key)) for key in keys] == [-1.0] * 4


def test_an_unknown_table_is_refused_without_a_value_it_does_not_show() -> None:
    # It printed `config alpaca=None: unknown table`: None is not what the file holds (and the table, e.g. an
    # [alpaca] table with keys, must not be printed either).
    error = config_error({"alpaca": {"key_id": "K", "secret_key": "S3CRET"}})
    assert str(error) == "config alpaca: unknown table (known: execution, simulator)"


def test_a_synthetic_symbol_without_a_price_is_refused_as_missing() -> None:
    # It printed the symbol's table as the missing price's value: `...AAPL.price={'daily_vol': 0.01}: Field required`.
    error = config_error({"simulator": {"market": {"symbols": {"AAPL": {"daily_vol": 0.01}}}}})
    assert str(error) == "config simulator.market.symbols.AAPL.price: missing (required)"


def test_top_level_execution_keys_are_refused_saying_to_put_them_under_execution(tmp_path: Path) -> None:
    # `repeg run --config` said `config fill_wait_seconds=None: unknown table`, not what to do; load_config (the
    # Python API) read the same file as [execution]. Both refuse it the same way.
    path = tmp_path / "c.toml"
    path.write_text("fill_wait_seconds = 3\n")
    with pytest.raises(ConfigError) as from_settings:
        load_settings(path)
    with pytest.raises(ConfigError) as from_api:
        load_config(path)
    assert str(from_settings.value) == str(from_api.value)
    assert str(from_settings.value).startswith("config fill_wait_seconds=3: ")
    assert "put it under [execution]" in from_settings.value.reason


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_invalid_rate_is_refused_not_read_as_a_number(value: bool) -> None:
    # TOML `false` was read as 0.0 (accepted) and `true` as 1.0 ("should be less than or equal to 0.5").
    error = config_error({"simulator": {"market": {"invalid_rate": value}}})
    assert (error.key, error.reason) == ("simulator.market.invalid_rate", "must be a number, not a boolean")


@pytest.mark.parametrize("key", ["duration_seconds", "quote_interval_seconds", "invalid_rate", "daily_vol"])
def test_nan_for_a_market_number_is_refused_as_not_a_number(key: str) -> None:
    # TOML `nan` was refused with a bound it does not cross ("should be less than or equal to 31622400", "greater
    # than 0"): df5c07d said "not NaN" for the [execution] times only, not for [simulator.market]'s numbers.
    market: dict[str, object] = {key: float("nan")}
    if key == "daily_vol":
        market = {"symbols": {"AAA": {"price": 10, key: float("nan")}}}
    error = config_error({"simulator": {"market": market}})
    assert error.reason == "must be a number, not NaN"


@pytest.mark.parametrize(
    ("field", "value"),
    [("positions", {"intc": Decimal(100)}), ("non_tradable", ("aapl",)), ("non_fractionable", (" KO",))],
)
def test_a_sim_account_refuses_a_symbol_written_otherwise_than_a_plan_names_it(
    field: str, value: object
) -> None:
    # Only `repeg run --config` refused these: from Python, `simulate(plan, account=SimAccount(positions={"intc":
    # 100}))` ran "completed" with INTC weight 0 never sold (the holding "intc" meets no plan symbol), and a
    # lower-case non_tradable refused nothing.
    with pytest.raises(ValidationError, match="must be written as a plan names it"):
        SimAccount.model_validate({field: value})


def test_a_top_level_simulator_key_is_refused_saying_where_keys_go() -> None:
    # `cash = 5` above every table was refused as an "unknown table", with nothing saying what to do.
    error = config_error({"cash": 5})
    assert (
        str(error)
        == "config cash: outside every table: put it under [execution] or [simulator], where it belongs"
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"execution": {"secret_key": "S3CRET"}},
        {"simulator": {"secret_key": "S3CRET"}},
        {"simulator": {"market": {"secret_key": "S3CRET"}}},
        {"simulator": {"latency": {"secret_key": "S3CRET"}}},
    ],
)
def test_an_unknown_key_is_refused_without_printing_its_value(raw: dict[str, object]) -> None:
    # Alpaca credentials pasted into a run configuration were printed back: "config secret_key='S3CRET': Extra
    # inputs are not permitted" (docs/ALPACA.md: the secret is "never printed in an error"). An unknown key's
    # value is not what is wrong with it: it is named, its value is not shown.
    error = config_error(raw)
    assert error.key.endswith("secret_key")
    assert "S3CRET" not in str(error)
    assert str(error).endswith("secret_key: unknown key (not permitted here)")


def test_an_alpaca_settings_table_holding_the_credentials_does_not_print_the_secret() -> None:
    # The credentials file's table is also [alpaca]: handing it to AlpacaSettings.from_mapping printed
    # "config alpaca.secret_key='S3CRET': Extra inputs are not permitted".
    from repeg.brokers.alpaca.settings import AlpacaSettings

    with pytest.raises(ConfigError) as caught:
        AlpacaSettings.from_mapping({"secret_key": "S3CRET", "key_id": "PK123", "requests_per_minute": 150})
    assert str(caught.value) == "config alpaca.secret_key: unknown key (not permitted here)"


#: A secret as Alpaca issues one (40 characters), pasted at a key that expects something else.
PASTED_SECRET = "S3CRETs3cretS3CRETs3cretS3CRETs3cretS3CR"


@pytest.mark.parametrize(
    "raw",
    [
        {"execution": PASTED_SECRET},
        {"simulator": PASTED_SECRET},
        {"simulator": {"market": PASTED_SECRET}},
        {"simulator": {"latency": PASTED_SECRET}},
        {"simulator": {"market": {"symbols": PASTED_SECRET}}},
        {"simulator": {"cash": PASTED_SECRET}},
        {"simulator": {"latency": {"submit_ack": PASTED_SECRET}}},
        {"simulator": {"market": {"invalid_rate": PASTED_SECRET}}},
        {"execution": {"repeg_steps": {"secret_key": PASTED_SECRET}}},
        {"execution": {"repeg_steps": PASTED_SECRET}},
        {"execution": {"fill_wait_seconds": PASTED_SECRET}},
        {"execution": {"initial_offset": PASTED_SECRET}},
        {"execution": {"on_no_quote": PASTED_SECRET}},
        {"simulator": {"seed": PASTED_SECRET}},
        {"simulator": {"seed": "S3CRET"}},
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_without_printing_it(raw: dict[str, object]) -> None:
    # A key pasted on the wrong line of a TOML file was printed back on stderr: "config simulator.market=
    # 'S3CRET...': must be a table" (docs/ALPACA.md: a secret is "never printed in an error"). A value of another
    # kind than the key takes is named by its kind, never shown.
    error = config_error(raw)
    assert PASTED_SECRET not in str(error)
    assert PASTED_SECRET not in repr(error)
    assert error.value is None


def test_a_value_of_the_wrong_kind_is_named_by_its_kind_and_what_was_expected() -> None:
    error = config_error({"simulator": {"market": "S3CRET"}})
    assert str(error) == "config simulator.market: must be a table (got a string)"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ({"execution": {"fill_wait_seconds": -1.0}}, "config fill_wait_seconds=-1.0: "),
        ({"execution": {"repeg_steps": ["0.75", "0.5"]}}, "config repeg_steps=['0.75', '0.5']: "),
        ({"execution": {"on_no_quote": "skpi"}}, "config on_no_quote='skpi': "),
        ({"simulator": {"seed": -3}}, "config simulator.seed=-3: "),
        ({"simulator": {"latency": {"submit_ack": -1}}}, "config simulator.latency.submit_ack=-1: "),
    ],
)
def test_an_ordinary_bad_value_is_still_printed(raw: dict[str, object], shown: str) -> None:
    # issue 2: the message names the key and the value.
    assert str(config_error(raw)).startswith(shown)


@pytest.mark.parametrize(
    ("key", "value", "choices"),
    [("on_no_quote", "Skip", "'skip' or 'market'"), ("escalation", "Market", "'market' or 'collared_limit'")],
)
def test_a_choice_in_another_case_is_refused_naming_key_value_and_choices(
    key: str, value: str, choices: str
) -> None:
    # Guard (the behaviour was right): choices are case-sensitive throughout the configuration (no key folds
    # case), and the refusal says which key, what was written and what is accepted.
    error = config_error({"execution": {key: value}})
    assert str(error) == f"config {key}={value!r}: Input should be {choices}"


@pytest.mark.parametrize(
    "table",
    [
        {"retry": PASTED_SECRET},
        {"stream": PASTED_SECRET},
        {"requests_per_minute": PASTED_SECRET},
        {"retry": {"base_delay": PASTED_SECRET}},
        {"stream": {"reconnect": {"seed": PASTED_SECRET}}},
    ],
)
def test_an_alpaca_settings_value_of_the_wrong_kind_is_not_printed(table: dict[str, object]) -> None:
    from repeg.brokers.alpaca.settings import AlpacaSettings

    with pytest.raises(ConfigError) as caught:
        AlpacaSettings.from_mapping(table)
    assert PASTED_SECRET not in str(caught.value)
    assert caught.value.value is None


def test_an_alpaca_settings_number_out_of_range_is_still_printed() -> None:
    from repeg.brokers.alpaca.settings import AlpacaSettings

    with pytest.raises(ConfigError) as caught:
        AlpacaSettings.from_mapping({"requests_per_minute": -5})
    assert str(caught.value).startswith("config alpaca.requests_per_minute=-5: ")


def test_a_credentials_file_with_its_secret_at_a_settings_key_does_not_print_it(tmp_path: Path) -> None:
    # The keys file's [alpaca] table with the secret pasted on the wrong line, read as [alpaca] settings.
    import tomllib

    from repeg.brokers.alpaca.settings import AlpacaSettings

    path = tmp_path / "alpaca.toml"
    path.write_text(f'[alpaca]\nretry = "{PASTED_SECRET}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        AlpacaSettings.from_mapping(tomllib.loads(path.read_text(encoding="utf-8"))["alpaca"])
    assert str(caught.value) == (
        "config alpaca.retry: Input should be a valid dictionary or instance of BackoffPolicy (got a string)"
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"execution": {"secret_key": PASTED_SECRET}},
        {"execution": {"fill_wait_seconds": PASTED_SECRET}},
        {"simulator": {"secret_key": PASTED_SECRET}},
        {"simulator": {"cash": PASTED_SECRET}},
        {"simulator": {"market": {"secret_key": PASTED_SECRET}}},
        {"simulator": {"latency": {"cancel": PASTED_SECRET}}},
    ],
)
def test_a_withheld_value_is_not_in_the_errors_traceback(raw: dict[str, object]) -> None:
    # The ConfigError withheld the value, but was raised `from` pydantic's ValidationError, whose text holds
    # "input_value='<secret>'": a script calling the API with an uncaught error printed it in the traceback.
    import traceback

    error = config_error(raw)
    assert PASTED_SECRET not in "".join(traceback.format_exception(error))


def test_a_withheld_alpaca_settings_value_is_not_in_the_errors_traceback() -> None:
    import traceback

    from repeg.brokers.alpaca.settings import AlpacaSettings

    with pytest.raises(ConfigError) as caught:
        AlpacaSettings.from_mapping({"secret_key": PASTED_SECRET})
    assert PASTED_SECRET not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    "table",
    [{"secret_key": PASTED_SECRET}, {"cash": PASTED_SECRET}, {"positions": {"AAPL": PASTED_SECRET}}],
    ids=["unknown-key", "cash", "position"],
)
def test_a_withheld_account_value_is_not_in_the_errors_traceback_from_sim_account(
    table: dict[str, object],
) -> None:
    # `SimAccount.from_mapping` (public: a script building the simulated account) withheld the value from its
    # ConfigError but chained it to pydantic's error, whose text prints input_value='<secret>'. Only
    # account_from_mapping, its one caller in repeg, cut that chain.
    import traceback

    from repeg.brokers.simulator.account import SimAccount

    with pytest.raises(ConfigError) as caught:
        SimAccount.from_mapping(table)
    assert PASTED_SECRET not in "".join(traceback.format_exception(caught.value))


@pytest.mark.parametrize(
    "simulator",
    [
        {"non_tradable": [PASTED_SECRET]},
        {"non_fractionable": ["AAPL", PASTED_SECRET]},
        {"positions": {PASTED_SECRET: 5}},
        {"market": {"symbols": {PASTED_SECRET: {"price": 5}}}},
    ],
    ids=["non_tradable", "non_fractionable", "positions", "market-symbols"],
)
def test_a_text_no_ticker_can_be_is_refused_as_a_symbol_without_printing_it(
    simulator: dict[str, object],
) -> None:
    # A symbol not written as a plan names it was shown as written, and again upper-cased ("symbols are upper
    # case: PK..."): a secret pasted into a symbol list printed twice, where every other configuration error
    # withholds a text longer than a ticker can be (`repeg.config.refused`).
    error = config_error({"simulator": simulator})
    assert PASTED_SECRET not in str(error)
    assert PASTED_SECRET.upper() not in str(error)
    assert "not a ticker symbol a plan can name" in error.reason


@pytest.mark.parametrize(
    "table",
    [
        {"connect_timeout": float("inf")},
        {"read_timeout": 1e300},
        {"quote_poll_every": True},
        {"stream": {"poll_every": float("inf")}},
        {"stream": {"silence_after": True}},
        {"retry": {"max_delay": float("inf")}},
    ],
    ids=["connect-inf", "read-huge", "poll-bool", "stream-poll-inf", "silence-bool", "retry-delay-inf"],
)
def test_an_alpaca_time_the_clock_or_socket_cannot_hold_is_refused_naming_the_key(
    table: dict[str, object],
) -> None:
    # AlpacaSettings took any positive float (and TOML `true` as 1 s) for its times, where ExecutionConfig's are
    # bounded (`repeg.config.Seconds`): connect_timeout = inf passed, and the first request raised OverflowError
    # ("timestamp out of range for platform time_t") from the socket; an inf poll interval overflows timedelta.
    from repeg.brokers.alpaca.settings import AlpacaSettings

    with pytest.raises(ConfigError) as caught:
        AlpacaSettings.from_mapping(table)
    key = next(iter(table))
    inner = table[key]
    expected = f"alpaca.{key}" if not isinstance(inner, dict) else f"alpaca.{key}.{next(iter(inner))}"
    assert caught.value.key == expected


def test_an_infinite_quote_interval_is_refused_not_read_as_one_quote_a_symbol() -> None:
    # `quote_interval_seconds = inf` was accepted: the market then held each symbol's opening quote alone, and the
    # run priced and filled every order from it, where every other number of the tables refuses inf.
    error = config_error({"simulator": {"market": {"quote_interval_seconds": float("inf")}}})
    assert error.key == "simulator.market.quote_interval_seconds"
    assert "finite" in error.reason


@pytest.mark.parametrize(
    ("given", "table", "key"),
    [
        ({"account": {"cash": -1}}, {"cash": -1}, "simulator.cash"),
        ({"account": {"positions": {"AAA": -1}}}, {"positions": {"AAA": -1}}, "simulator.positions.AAA"),
        ({"latency": {"submit_ack": -1}}, {"latency": {"submit_ack": -1}}, "simulator.latency.submit_ack"),
        (
            {"market": {"duration_seconds": -1}},
            {"market": {"duration_seconds": -1}},
            "simulator.market.duration_seconds",
        ),
        ({"seed": -1}, {"seed": -1}, "simulator.seed"),
    ],
)
def test_simulates_mapping_errors_name_the_key_as_the_toml_config_does(
    given: dict[str, object], table: dict[str, object], key: str
) -> None:
    # simulate named the same [simulator] keys three ways: "cash", "latency.submit_ack" and
    # "simulator.market.duration_seconds" (and "seed"), where the TOML config names each under "simulator.".
    from repeg.planning.parse import parse_csv
    from repeg.simulation import simulate

    assert config_error({"simulator": table}).key == key
    with pytest.raises(ConfigError) as info:
        simulate(parse_csv("symbol,side,qty\nAAA,buy,1\n", "p.csv"), **given)  # type: ignore[arg-type]
    assert info.value.key == key


@pytest.mark.parametrize(
    ("simulator", "key"),
    [
        ({"cash": "\u0661\u0660\u0660"}, "simulator.cash"),
        ({"positions": {"AAA": "\u0661"}}, "simulator.positions.AAA"),
        ({"market": {"symbols": {"AAA": {"price": "\u0661\u0660"}}}}, "simulator.market.symbols.AAA.price"),
    ],
)
def test_a_simulator_number_written_in_non_ascii_digits_is_refused_naming_the_key(
    simulator: dict[str, object], key: str
) -> None:
    # cash = "١٠٠" was an account of $100 (Decimal reads any script's digits), where [execution], plans and quote
    # files take ASCII digits only.
    error = config_error({"simulator": simulator})
    assert error.key == key
    assert "ASCII" in error.reason


def test_a_simulator_cash_of_negative_zero_is_refused_as_execution_keys_refuse_it() -> None:
    error = config_error({"simulator": {"cash": -0.0}})
    assert (error.key, error.reason) == ("simulator.cash", "must be 0 or more, not -0")


@pytest.mark.parametrize(
    ("given", "table"),
    [
        ({"account": {"positions": {"aaa": 1}}}, {"positions": {"aaa": 1}}),
        ({"account": {"non_tradable": ["aaa"]}}, {"non_tradable": ["aaa"]}),
        (
            {"market": {"symbols": {"aaa": {"price": "10"}}}},
            {"market": {"symbols": {"aaa": {"price": "10"}}}},
        ),
    ],
)
def test_simulates_lower_case_symbol_is_refused_as_the_toml_config_refuses_it(
    given: dict[str, object], table: dict[str, object]
) -> None:
    # From Python the same symbol read "simulator.market.symbols: Value error, symbol 'aaa' must be written as a
    # plan names it: AAA (got a table)", another key and another reason than the TOML file's refusal.
    from repeg.planning.parse import parse_csv
    from repeg.simulation import simulate

    expected = config_error({"simulator": table})
    with pytest.raises(ConfigError) as info:
        simulate(parse_csv("symbol,side,qty\nAAA,buy,1\n", "p.csv"), **given)  # type: ignore[arg-type]
    assert (info.value.key, info.value.value, info.value.reason) == (
        expected.key,
        expected.value,
        expected.reason,
    )


def test_a_remote_simulator_spec_price_written_in_non_ascii_digits_is_refused() -> None:
    # a3fe0178 refused "١٠" as [simulator]'s start price; the remote simulator's spec read {"AAA": "١٠"} as $10.
    from repeg.brokers.remote.sessions import SessionSpec

    with pytest.raises(ValidationError, match="ASCII"):
        SessionSpec.model_validate_json('{"symbols": {"AAA": "\u0661\u0660"}}')
