"""Pure parts of the Alpaca adapter: error mapping, backoff, rate limiter, update tracking, credentials."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from alpaca.common.exceptions import APIError
from tests.fakes.alpaca_fixtures import locals_a_traceback_renderer_shows
from tests.fakes.log_capture import every_level_captured

from repeg.brokers.alpaca.credentials import load_credentials
from repeg.brokers.alpaca.limiter import TokenBucket
from repeg.brokers.alpaca.mapping import (
    map_api_error,
    order_payload,
    rate_limit_reset,
    replace_payload,
    status_in_message,
)
from repeg.brokers.alpaca.retry import Backoff, BackoffPolicy
from repeg.brokers.alpaca.tracker import OrderTracker, advances, fill_between
from repeg.domain.orders import (
    BrokerOrder,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    ReplaceRequest,
    Side,
)
from repeg.engine.clock import VirtualClock, run_virtual
from repeg.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    ConfigError,
    DuplicateClientOrderIdError,
    InsufficientBuyingPowerError,
    LiveTradingNotConfirmedError,
    OrderNotCancelableError,
    OrderNotFoundError,
    OrderRejectedError,
    RateLimitedError,
)

if TYPE_CHECKING:
    from repeg.brokers.alpaca.adapter import AlpacaBroker

T0 = datetime(2026, 3, 2, 15, tzinfo=UTC)


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status


class _HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.response = _Response(status)


def api_error(status: int, code: int | None, message: str) -> APIError:
    body = json.dumps({"code": code, "message": message}) if code is not None else message
    return APIError(body, _HttpError(status))


# --- error mapping -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, 42900000, RateLimitedError),
        (500, 50000000, BrokerUnavailableError),
        (503, None, BrokerUnavailableError),
        (401, 40110000, AuthenticationError),
        (403, 40010000, AuthenticationError),
        (403, 40310000, OrderRejectedError),
        (404, 40410000, OrderNotFoundError),
        (422, 40010001, OrderRejectedError),
    ],
)
def test_http_status_and_code_map_to_the_typed_error(status, code, expected):
    error = map_api_error(api_error(status, code, "broker words"), "submit")
    assert type(error) is expected


def test_a_pattern_day_trading_refusal_is_an_order_rejection_not_refused_credentials():
    # 403 with 40310100: Alpaca denies the trade (pattern day trading / intraday margin protection); the keys
    # are fine, so the leg must say "rejected", not "credentials refused".
    message = "trade denied due to pattern day trading protection"
    error = map_api_error(api_error(403, 40310100, message), "submit", client_order_id="c1")
    assert type(error) is OrderRejectedError
    assert error.broker_message == message


@pytest.mark.parametrize("message", ["insufficient buying power", "Insufficient Buying Power"])
def test_a_buy_refused_for_want_of_buying_power_is_typed_as_the_simulator_refuses_it(message):
    # HTTP 403, code 40310000, "insufficient buying power" (Alpaca's POST /v2/orders: "Buying power or shares is
    # not sufficient"): the engine sends a smaller escalation on this refusal, whichever broker answered it.
    error = map_api_error(api_error(403, 40310000, message), "submit", client_order_id="c1")
    assert type(error) is InsufficientBuyingPowerError
    assert (error.broker_message, error.code) == (message, "40310000")


def test_a_sell_refused_for_want_of_shares_is_no_buying_power_refusal():
    message = "insufficient qty available for order (requested: 10, available: 5)"
    error = map_api_error(api_error(403, 40310000, message), "submit", client_order_id="c1")
    assert type(error) is OrderRejectedError


def test_the_broker_message_and_code_are_kept():
    error = map_api_error(api_error(403, 40310000, "insufficient buying power"), "submit")
    assert error.broker_message == "insufficient buying power"
    assert error.code == "40310000"
    assert "insufficient buying power" in str(error)


def test_a_non_json_error_body_is_kept_verbatim():
    error = map_api_error(api_error(502, None, "<html>bad gateway</html>"), "get_order")
    assert isinstance(error, BrokerUnavailableError)
    assert error.broker_message == "<html>bad gateway</html>"


def test_a_duplicate_client_order_id_is_its_own_error():
    error = map_api_error(
        api_error(422, 40010001, "client_order_id must be unique"), "submit", client_order_id="c1"
    )
    assert isinstance(error, DuplicateClientOrderIdError)
    assert error.client_order_id == "c1"


def test_an_already_filled_cancel_is_not_cancelable_with_the_state():
    message = 'order is already in "filled" state'
    error = map_api_error(api_error(422, 42210000, message), "cancel", order_id="o1")
    assert isinstance(error, OrderNotCancelableError)
    assert (error.order_id, error.status, error.broker_message) == ("o1", "filled", message)


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ('order is already in "canceled" state', "canceled"),
        ("order is pending replace", "pending_replace"),
        ("order is partially_filled", "partially_filled"),
        ("something else", "unknown"),
    ],
)
def test_the_state_is_read_from_the_message(message, status):
    assert status_in_message(message) == status


def test_order_payload_carries_exact_decimal_strings():
    request = OrderRequest(
        client_order_id="c1",
        symbol="X",
        side=Side.BUY,
        qty=Decimal("0.123456789"),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("0.1234"),
    )
    payload = order_payload(request)
    assert payload["qty"] == "0.123456789"
    assert payload["limit_price"] == "0.1234"
    assert payload["client_order_id"] == "c1"
    assert payload["time_in_force"] == "day"


def test_replace_payload_sends_a_changed_qty_and_leaves_an_unchanged_one_out():
    request = ReplaceRequest(order_id="o1", client_order_id="c2", qty=Decimal(3), limit_price=Decimal("1E+2"))
    assert replace_payload(request, Decimal(5)) == {"qty": "3", "limit_price": "100", "client_order_id": "c2"}
    assert replace_payload(request, Decimal("3.0")) == {"limit_price": "100", "client_order_id": "c2"}


class _RateLimited(_HttpError):
    """A 429 whose response carries `headers`."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(429)
        self.response.headers = headers  # type: ignore[attr-defined]


def test_a_429_whose_date_no_clock_can_be_set_to_is_read_as_one_without_a_date():
    # 4c900cb measures the rate reset against the answer's Date: a Date of year 9999 put the local time past the
    # calendar, and OverflowError escaped from the 429 path (the request, a submit or a stop's cancel, crashed
    # untyped instead of waiting for the reset). Such a Date is read as missing: the local clock.
    reset = T0 + timedelta(seconds=2)
    headers = {"X-RateLimit-Reset": str(int(reset.timestamp())), "Date": "Fri, 31 Dec 9999 23:59:59 GMT"}
    error = APIError(json.dumps({"code": 42900000, "message": "too many requests"}), _RateLimited(headers))
    assert rate_limit_reset(error, T0) == reset


# --- backoff -------------------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_within_half_and_full_and_is_capped():
    backoff = Backoff(BackoffPolicy(base_delay=1.0, max_delay=8.0, seed=5))
    delays = [backoff.delay(n) for n in range(1, 8)]
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))


def test_backoff_stays_capped_after_a_thousand_and_more_failures():
    # The stream reconnects with up to 1,000,000 attempts: after ~1,025 failures in a row (hours of outage at
    # 30 s apart) `2.0 ** n` overflowed, and the OverflowError ended the reconnect loop for good.
    backoff = Backoff(BackoffPolicy(max_attempts=1_000_000, base_delay=1.0, max_delay=30.0))
    assert 15.0 <= backoff.delay(1_100) <= 30.0


def test_backoff_is_deterministic_for_a_seed_and_differs_between_seeds():
    def draws(seed: int) -> list[float]:
        backoff = Backoff(BackoffPolicy(seed=seed))
        return [backoff.delay(n) for n in range(1, 6)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


# --- rate limiter (virtual time) -----------------------------------------------------------------------------


def test_the_token_bucket_holds_the_rate_after_the_burst():
    async def main() -> timedelta:
        clock = VirtualClock(T0)
        bucket = TokenBucket(clock, rate_per_minute=200, burst=10)
        for _ in range(30):
            await bucket.acquire()
        return clock.now() - T0

    elapsed = run_virtual(main)
    # 10 at once, then 20 more refilled at (200 - 10) per minute, one every 60/190 s
    assert elapsed == pytest.approx(timedelta(seconds=20 * 60 / 190), abs=timedelta(milliseconds=5))


def test_the_token_bucket_never_lets_more_than_the_rate_through_in_any_minute():
    """Alpaca's limit is per minute: a full burst plus a minute of refill must not exceed it."""

    async def main() -> list[datetime]:
        clock = VirtualClock(T0)
        bucket = TokenBucket(clock, rate_per_minute=200, burst=10)
        times = []
        while clock.now() < T0 + timedelta(minutes=3):
            await bucket.acquire()
            times.append(clock.now())
        return times

    times = run_virtual(main)
    busiest = max(sum(1 for t in times if start <= t < start + timedelta(minutes=1)) for start in times)
    assert 195 <= busiest <= 200  # the budget, used (not merely a slower bucket)


def test_a_token_bucket_whose_burst_is_the_whole_rate_is_refused():
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(VirtualClock(T0), rate_per_minute=10, burst=10)


def test_the_token_bucket_does_not_wait_within_the_burst():
    async def main() -> int:
        clock = VirtualClock(T0)
        bucket = TokenBucket(clock, rate_per_minute=200, burst=10)
        for _ in range(10):
            await bucket.acquire()
        return bucket.waited

    assert run_virtual(main) == 0


def test_a_held_token_bucket_lets_nothing_through_before_the_announced_reset():
    async def main() -> datetime:
        clock = VirtualClock(T0)
        bucket = TokenBucket(clock, rate_per_minute=200, burst=10)
        bucket.hold_until(T0 + timedelta(seconds=42))
        bucket.hold_until(T0 + timedelta(seconds=5))  # an earlier reset never shortens the hold
        await bucket.acquire()
        return clock.now()

    assert run_virtual(main) == T0 + timedelta(seconds=42)


def test_a_token_bucket_with_a_deadline_waits_out_a_hold_that_ends_by_it():
    async def main() -> datetime:
        clock = VirtualClock(T0)
        bucket = TokenBucket(clock, rate_per_minute=200, burst=10)
        bucket.hold_until(T0 + timedelta(seconds=42))
        with bucket.bounded(T0 + timedelta(seconds=60)):
            await bucket.acquire()
        return clock.now()

    assert run_virtual(main) == T0 + timedelta(seconds=42)


def test_a_token_bucket_refuses_at_once_a_hold_past_its_deadline():
    async def main() -> datetime:
        clock = VirtualClock(T0)
        bucket = TokenBucket(clock, rate_per_minute=200, burst=10)
        bucket.hold_until(T0 + timedelta(seconds=42))
        with (
            bucket.bounded(T0 + timedelta(seconds=30)),
            pytest.raises(RateLimitedError, match="past the stop's deadline"),
        ):
            await bucket.acquire()
        return clock.now()

    assert run_virtual(main) == T0


def test_a_token_bucket_waits_for_a_hold_again_once_the_stop_that_bounded_it_is_over():
    """A stop's deadline is the stop's: set for good, it refused every later hold on the same adapter."""

    async def main() -> tuple[datetime | None, datetime]:
        clock = VirtualClock(T0)
        bucket = TokenBucket(clock, rate_per_minute=200, burst=10)
        with bucket.bounded(T0 + timedelta(seconds=60)), bucket.bounded(T0 + timedelta(seconds=90)):
            inner = bucket.deadline  # a stop within a stop keeps the earlier deadline
        bucket.hold_until(T0 + timedelta(seconds=120))
        await bucket.acquire()
        assert bucket.deadline is None
        return inner, clock.now()

    assert run_virtual(main) == (T0 + timedelta(seconds=60), T0 + timedelta(seconds=120))


async def test_a_stop_bound_called_without_with_says_so_and_bounds_nothing():
    """`broker.stopping()` called bare (its form before it became a context manager) returned an unentered
    generator: the stop ran with its waits unbounded, without a word. It now warns when dropped never entered."""
    broker = _broker_over(object())
    with pytest.warns(RuntimeWarning, match=r"stopping\(\) was never entered"):
        broker.stopping()  # dropped at once (reference counting): its warning is immediate
    assert broker._http.stop_deadline is None
    with broker.stopping():
        assert broker._http.stop_deadline is not None
    assert broker._http.stop_deadline is None


# --- tracker -------------------------------------------------------------------------------------------------


def order(status: OrderStatus, filled: str = "0", avg: str | None = None, oid: str = "o1") -> BrokerOrder:
    return BrokerOrder(
        order_id=oid,
        client_order_id="c1",
        symbol="X",
        side=Side.BUY,
        qty=Decimal(10),
        order_type=OrderType.LIMIT,
        limit_price=Decimal(10),
        status=status,
        filled_qty=Decimal(filled),
        filled_avg_price=None if avg is None else Decimal(avg),
        created_at=T0,
        updated_at=T0,
    )


def test_a_later_fill_advances_and_a_stale_state_does_not():
    partial = order(OrderStatus.PARTIALLY_FILLED, "4", "10")
    assert advances(partial, order(OrderStatus.FILLED, "10", "10"))
    assert not advances(partial, order(OrderStatus.NEW))
    assert not advances(order(OrderStatus.CANCELED), order(OrderStatus.PENDING_CANCEL))


def test_fills_are_priced_from_the_change_in_cumulative_averages():
    before = order(OrderStatus.PARTIALLY_FILLED, "4", "10.00")
    after = order(OrderStatus.FILLED, "10", "10.06")
    fill = fill_between(before, after, T0)
    assert fill is not None
    assert fill.qty == Decimal(6)
    assert fill.price == Decimal("10.10")  # (10 * 10.06 - 4 * 10.00) / 6


def test_the_tracker_pushes_each_fill_once_whatever_the_source_order():
    tracker = OrderTracker()
    pushed = []
    tracker.add_sink(pushed.append)
    tracker.claim("c1")
    tracker.absorb(order(OrderStatus.NEW), T0)
    tracker.absorb(order(OrderStatus.FILLED, "10", "9.99"), T0, hint="fill")  # from a poll
    tracker.absorb(
        order(OrderStatus.PARTIALLY_FILLED, "5", "9.99"), T0, hint="partial_fill"
    )  # late stream event
    tracker.absorb(order(OrderStatus.FILLED, "10", "9.99"), T0, hint="fill")  # stream repeat
    assert [u.event for u in pushed] == [OrderEvent.NEW, OrderEvent.FILL]
    assert sum(u.fill.qty for u in pushed if u.fill is not None) == 10


def test_the_tracker_ignores_orders_of_other_clients():
    tracker = OrderTracker()
    pushed = []
    tracker.add_sink(pushed.append)
    assert tracker.absorb(order(OrderStatus.FILLED, "10", "1"), T0) is None
    assert pushed == []


def test_a_rest_answer_does_not_suppress_the_pushed_fill():
    tracker = OrderTracker()
    pushed = []
    tracker.add_sink(pushed.append)
    tracker.remember(order(OrderStatus.FILLED, "10", "9.99"))
    tracker.absorb(order(OrderStatus.FILLED, "10", "9.99"), T0, hint="fill")
    assert [u.event for u in pushed] == [OrderEvent.FILL]
    assert tracker.working_ids() == []


# --- credentials ---------------------------------------------------------------------------------------------


def test_credentials_come_from_the_environment_first(tmp_path: Path):
    credentials = load_credentials(
        {"APCA_API_KEY_ID": "PK1", "APCA_API_SECRET_KEY": "s1"}, tmp_path / "none.toml"
    )
    assert credentials.key_id == "PK1"


def test_credentials_from_a_file_outside_a_checkout(tmp_path: Path):
    path = tmp_path / "alpaca.toml"
    path.write_text('[alpaca]\nkey_id = "PK2"\nsecret_key = "s2"\n', encoding="utf-8")
    path.chmod(0o600)
    credentials = load_credentials({}, path)
    assert (credentials.key_id, credentials.secret_key.get_secret_value()) == ("PK2", "s2")


@pytest.mark.parametrize(
    "extra", ["requests_per_minute = 150", 'base_url = "https://paper-api.alpaca.markets"', "[alpaca.stream]"]
)
def test_a_credentials_file_key_repeg_does_not_read_is_refused_not_ignored(tmp_path: Path, extra: str):
    # Its `[alpaca]` table is named as docs/ALPACA.md's tunables table is: a tunable (or an endpoint) written there
    # was silently ignored, the run going on with the defaults (or the endpoint of --broker).
    path = tmp_path / "alpaca.toml"
    path.write_text(f'[alpaca]\nkey_id = "PK7"\nsecret_key = "S3CRET-7"\n{extra}\n', encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_credentials({}, path)
    name = extra.strip("[]").split(" ")[0]
    assert info.value.key == f"{path}: {name if name.startswith('alpaca.') else 'alpaca.' + name}"
    assert "S3CRET" not in str(info.value)


def test_a_credentials_file_inside_a_git_checkout_is_refused(tmp_path: Path):
    (tmp_path / ".git").mkdir()
    path = tmp_path / "conf" / "alpaca.toml"
    path.parent.mkdir()
    path.write_text('[alpaca]\nkey_id = "PK3"\nsecret_key = "s3"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_credentials({}, path)
    assert "git checkout" in str(info.value)
    assert "s3" not in str(info.value)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602], ids=oct)
def test_a_credentials_file_others_may_read_or_write_is_refused_before_it_is_read(tmp_path: Path, mode: int):
    # As ssh refuses an unprotected private key: a secret other users could read (or keys they could swap for
    # theirs) is refused, naming the file, its mode and the fix, never the secret.
    path = tmp_path / "alpaca.toml"
    path.write_text('[alpaca]\nkey_id = "PK5"\nsecret_key = "S3CRET-5"\n', encoding="utf-8")
    path.chmod(mode)
    with pytest.raises(ConfigError) as info:
        load_credentials({}, path)
    assert info.value.key == str(path)
    assert f"{mode:04o}" in str(info.value)
    assert "chmod 600" in str(info.value)
    assert "S3CRET" not in str(info.value)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_shared_credentials_file_of_another_user_is_refused_with_advice_the_user_can_follow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # A keys file of root's (or a colleague's) shared through a group: f8634a71's "chmod 600 <file>" is a command
    # the user may not run, and after which they could no longer read the file.
    path = tmp_path / "alpaca.toml"
    path.write_text('[alpaca]\nkey_id = "PK6"\nsecret_key = "S3CRET-6"\n', encoding="utf-8")
    path.chmod(0o640)
    monkeypatch.setattr(os, "getuid", lambda: path.stat().st_uid + 1)
    with pytest.raises(ConfigError) as info:
        load_credentials({}, path)
    assert f"chmod 600 {path}" not in str(info.value)
    assert "owned by another user" in str(info.value)
    assert "APCA_API_KEY_ID and APCA_API_SECRET_KEY" in str(info.value)
    assert "S3CRET" not in str(info.value)


def test_missing_credentials_name_the_environment_variables(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_credentials({}, tmp_path / "absent.toml")
    assert "APCA_API_SECRET_KEY" in str(info.value)


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"APCA_API_KEY_ID": "AKENV"}, "APCA_API_SECRET_KEY"),
        ({"APCA_API_SECRET_KEY": "S3CRET-ENV"}, "APCA_API_KEY_ID"),
    ],
    ids=["key-id-only", "secret-only"],
)
def test_one_credential_in_the_environment_is_refused_not_completed_from_the_file(
    tmp_path: Path, env: dict[str, str], missing: str
):
    # Half the keys exported (the other forgotten or misspelt) meant the environment's account: taking both keys
    # from the file instead silently trades another account (or live keys where paper ones were meant).
    path = tmp_path / "alpaca.toml"
    path.write_text('[alpaca]\nkey_id = "PKFILE"\nsecret_key = "S3CRET-FILE"\n', encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_credentials(env, path)
    assert info.value.key == missing
    assert "S3CRET" not in str(info.value)


def test_the_refusal_of_a_secret_without_its_key_id_leaves_no_frame_holding_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Read from the process's environment, as the CLI reads it (a mapping passed in is the caller's own local).
    monkeypatch.setenv("APCA_API_SECRET_KEY", "S3CRET-ENV-77")
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    with pytest.raises(ConfigError) as info:
        load_credentials(None, tmp_path / "absent.toml")
    shown = locals_a_traceback_renderer_shows(info.value)
    assert shown, "no frame was walked: the test would prove nothing"
    assert not [text for text in shown if "S3CRET-ENV-77" in text]


def test_hardening_switches_off_sdk_retries_and_sets_timeouts():
    from alpaca.trading.client import TradingClient

    from repeg.brokers.alpaca.factory import harden
    from repeg.brokers.alpaca.settings import AlpacaSettings

    client = TradingClient("PK", "secret", paper=True, url_override="http://127.0.0.1:9")
    harden(client, AlpacaSettings(connect_timeout=1.5, read_timeout=4.0))
    assert client._retry == 0
    adapter = client._session.get_adapter("https://paper-api.alpaca.markets")
    assert adapter._timeout == (1.5, 4.0)


def test_alpaca_settings_from_a_toml_table_name_the_bad_key():
    from repeg.brokers.alpaca.settings import AlpacaSettings

    settings = AlpacaSettings.from_mapping({"requests_per_minute": 150, "stream": {"silence_after": 30}})
    assert (settings.requests_per_minute, settings.stream.silence_after) == (150, 30)
    with pytest.raises(ConfigError) as info:
        AlpacaSettings.from_mapping({"stream": {"poll_every": -1}})
    assert info.value.key == "alpaca.stream.poll_every"


def test_alpaca_settings_refuse_a_burst_as_large_as_the_rate():
    from repeg.brokers.alpaca.settings import AlpacaSettings

    with pytest.raises(ConfigError, match="requests_per_minute") as info:
        AlpacaSettings.from_mapping({"requests_per_minute": 10, "burst": 10})
    assert info.value.key == "alpaca.burst"


def _raw_order(status: str) -> dict[str, object]:
    from tests.fakes.alpaca_matching import FakeOrder

    return FakeOrder(
        id="61e69015-d9d0-4b31-a5bd-8e3ad0a0bd2e",
        client_order_id="r1-L0000-A00",
        symbol="AAPL",
        side="buy",
        qty=Decimal(5),
        type="limit",
        limit_price=Decimal("99.00"),
        time_in_force="day",
        status=status,
        created_at=T0,
        updated_at=T0,
    ).to_json()


def test_an_order_pending_review_is_read_as_accepted_not_an_internal_error():
    # alpaca-py knows `pending_review` (an order held for review): it is open, not yet working.
    from repeg.brokers.alpaca.mapping import parse_order

    assert parse_order(_raw_order("pending_review")).status is OrderStatus.ACCEPTED


def test_an_order_repeg_cannot_read_is_a_broker_error():
    # The Broker port raises only BrokerError: the engine reconciles those, anything else ends the run.
    from repeg.brokers.alpaca.mapping import parse_order
    from repeg.errors import BrokerError

    with pytest.raises(BrokerError):
        parse_order(_raw_order("a_status_from_the_future"))


async def test_an_account_the_sdk_cannot_validate_is_a_broker_error():
    # alpaca-py validates answers against its enums; Alpaca adding a value (alpaca-py issue #436: a new
    # clearing_broker) must surface as the port's BrokerError, not as a bare pydantic error.
    from alpaca.trading.models import TradeAccount
    from pydantic import SecretStr

    from repeg.brokers.alpaca.adapter import AlpacaBroker
    from repeg.brokers.alpaca.credentials import AlpacaCredentials
    from repeg.brokers.alpaca.settings import AlpacaSettings
    from repeg.engine.clock import RealClock
    from repeg.errors import BrokerError

    class Client:
        def get_account(self) -> TradeAccount:
            return TradeAccount.model_validate({"id": "not-a-uuid"})

    broker = AlpacaBroker(
        Client(),  # type: ignore[arg-type]
        name="alpaca-paper",
        clock=RealClock(),
        settings=AlpacaSettings(),
        credentials=AlpacaCredentials(key_id="PK", secret_key=SecretStr("s")),
        stream_url="ws://127.0.0.1:9/stream",
    )
    with pytest.raises(BrokerError, match="get_account"):
        await broker.get_account()


async def test_an_asset_the_sdk_cannot_validate_is_a_broker_error_naming_the_symbol():
    # get_asset is parsed by alpaca-py's Asset model outside the shared REST plumbing: a new enum value (an asset
    # class, an exchange) must surface as the port's BrokerError, not as a bare pydantic error.
    from alpaca.trading.models import Asset as SdkAsset
    from pydantic import SecretStr

    from repeg.brokers.alpaca.adapter import AlpacaBroker
    from repeg.brokers.alpaca.credentials import AlpacaCredentials
    from repeg.brokers.alpaca.settings import AlpacaSettings
    from repeg.engine.clock import RealClock
    from repeg.errors import BrokerError

    class Client:
        def get_asset(self, symbol: str) -> SdkAsset:
            return SdkAsset.model_validate({"id": "not-a-uuid", "symbol": symbol})

    broker = AlpacaBroker(
        Client(),  # type: ignore[arg-type]
        name="alpaca-paper",
        clock=RealClock(),
        settings=AlpacaSettings(),
        credentials=AlpacaCredentials(key_id="PK", secret_key=SecretStr("s")),
        stream_url="ws://127.0.0.1:9/stream",
    )
    with pytest.raises(BrokerError, match="get_asset AAPL"):
        await broker.get_asset("AAPL")


def test_a_refused_cancel_is_pushed_even_when_the_order_did_not_change():
    """Alpaca's `order_cancel_rejected` may carry the order exactly as last reported: it is still news."""
    tracker = OrderTracker()
    pushed = []
    tracker.add_sink(pushed.append)
    tracker.claim("c1")
    tracker.absorb(order(OrderStatus.NEW), T0, hint="new")
    tracker.absorb(order(OrderStatus.NEW), T0, hint="order_cancel_rejected")
    tracker.absorb(order(OrderStatus.NEW), T0, hint="new")  # a plain repeat is still dropped
    assert [u.event for u in pushed] == [OrderEvent.NEW, OrderEvent.CANCEL_REJECTED]


def test_a_refused_replace_keeps_its_event_over_a_fill_it_reports():
    tracker = OrderTracker()
    pushed = []
    tracker.add_sink(pushed.append)
    tracker.claim("c1")
    tracker.absorb(order(OrderStatus.PENDING_REPLACE), T0)
    tracker.absorb(order(OrderStatus.PARTIALLY_FILLED, "4", "10"), T0, hint="order_replace_rejected")
    assert [u.event for u in pushed] == [OrderEvent.PENDING_REPLACE, OrderEvent.REPLACE_REJECTED]
    assert pushed[-1].fill is not None
    assert pushed[-1].fill.qty == Decimal(4)


def test_a_refusal_of_an_order_already_closed_is_not_pushed():
    tracker = OrderTracker()
    pushed = []
    tracker.add_sink(pushed.append)
    tracker.claim("c1")
    tracker.absorb(order(OrderStatus.FILLED, "10", "10"), T0, hint="fill")
    tracker.absorb(order(OrderStatus.FILLED, "10", "10"), T0, hint="order_cancel_rejected")
    assert [u.event for u in pushed] == [OrderEvent.FILL]


class _ManyOpenOrders:
    """A trading client whose account has more open orders than one page holds (Alpaca's maximum: 500)."""

    def __init__(self, count: int) -> None:
        import uuid

        self.orders = [
            {**_raw_order("new"), "id": str(uuid.UUID(int=k + 1)), "client_order_id": f"other-{k}"}
            for k in range(count)
        ]
        self.pages = 0

    def get_orders(self, request):  # the SDK call: one page, at most `limit` orders
        from alpaca.trading.models import Order as SdkOrder

        self.pages += 1
        return [SdkOrder(**raw) for raw in self.orders[: request.limit]]

    def get(self, path: str, params: dict[str, object]) -> list[dict[str, object]]:
        assert path == "/orders"
        assert params["status"] == "open"
        assert params["direction"] == "asc"
        self.pages += 1
        ids = [raw["id"] for raw in self.orders]
        after = params.get("after_order_id")
        start = 0 if after is None else ids.index(after) + 1
        return self.orders[start : start + int(params["limit"])]  # type: ignore[call-overload]


async def test_list_open_orders_reads_every_page_beyond_alpacas_500_limit():
    from pydantic import SecretStr

    from repeg.brokers.alpaca.adapter import AlpacaBroker
    from repeg.brokers.alpaca.credentials import AlpacaCredentials
    from repeg.brokers.alpaca.settings import AlpacaSettings
    from repeg.engine.clock import RealClock

    client = _ManyOpenOrders(1001)
    broker = AlpacaBroker(
        client,  # type: ignore[arg-type]
        name="alpaca-paper",
        clock=RealClock(),
        settings=AlpacaSettings(requests_per_minute=10_000, burst=100),
        credentials=AlpacaCredentials(key_id="PK", secret_key=SecretStr("s")),
        stream_url="ws://127.0.0.1:9/stream",
    )
    orders = await broker.list_open_orders()
    assert len(orders) == 1001
    assert len({o.order_id for o in orders}) == 1001
    assert client.pages == 3


class _TwoOrders:
    """A trading client answering order look-ups from `raw`, by order id, and the list of those still open."""

    def __init__(self) -> None:
        self.raw: dict[str, dict[str, object]] = {}

    def get(self, path: str, params: object = None) -> object:
        if path == "/orders":
            return [raw for raw in self.raw.values() if raw["status"] not in {"filled", "canceled"}]
        return self.raw[path.removeprefix("/orders/")]


async def test_reconcile_polls_every_working_order_when_one_cannot_be_read():
    # One order repeg cannot read (a status from the future) must not stop the poll of the others: their fills
    # would be missed after every reconnect, for as long as that order stays open.
    client = _TwoOrders()
    ids = ["00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"]
    for k, order_id in enumerate(ids):
        client.raw[order_id] = {**_raw_order("new"), "id": order_id, "client_order_id": f"r1-L{k:04d}-A00"}
    broker = _broker_over(client)
    pushed: list[object] = []
    broker.subscribe_updates(pushed.append)
    for order_id in ids:
        await broker.get_order(order_id)
    client.raw[ids[0]] = {**client.raw[ids[0]], "status": "a_status_from_the_future"}
    client.raw[ids[1]] = {
        **client.raw[ids[1]],
        "status": "filled",
        "filled_qty": "5",
        "filled_avg_price": "99.00",
        "filled_at": client.raw[ids[1]]["updated_at"],
    }
    await broker.reconcile()
    fills = [u for u in pushed if getattr(u, "event", None) is OrderEvent.FILL]
    assert [u.order.order_id for u in fills] == [ids[1]]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [b'alpaca = "S3CRETs3cret"\n', b'[alpaca]\nkey_id = "PK4"\nsecret_key = "s4\xff"\n'],
    ids=["alpaca-not-a-table", "not-utf8"],
)
def test_an_unusable_credentials_file_is_a_config_error_naming_it(tmp_path: Path, body: bytes):
    # `alpaca = "..."` (no [alpaca] table) crashed with AttributeError ('str' object has no attribute 'get'), a
    # file not in UTF-8 with UnicodeDecodeError: an internal error (exit 1), not a refused configuration.
    path = tmp_path / "alpaca.toml"
    path.write_bytes(body)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_credentials({}, path)
    assert str(path) in str(info.value)
    assert "S3CRET" not in str(info.value)
    assert "s4" not in str(info.value)


async def test_another_clients_open_order_of_a_kind_repeg_does_not_read_is_logged_at_debug_not_info():
    # Every reconcile poll lists the account's open orders; another client's stop order (a kind repeg never
    # sends) was logged `open_order_not_ours_skipped` at info on every poll: noise in every --log-json run.
    client = _TwoOrders()
    stop = {**_raw_order("new"), "client_order_id": "another-client-1", "type": "stop", "stop_price": "90.00"}
    client.raw[str(stop["id"])] = stop
    broker = _broker_over(client)
    with every_level_captured() as lines:
        assert await broker.list_open_orders() == []  # type: ignore[attr-defined]
    skipped = [line for line in lines if line["event"] == "open_order_not_ours_skipped"]
    assert [line["log_level"] for line in skipped] == ["debug"]


def _broker_over(client: object) -> AlpacaBroker:
    """An Alpaca adapter over a fake REST `client` (its stream never connected)."""
    from pydantic import SecretStr

    from repeg.brokers.alpaca.adapter import AlpacaBroker
    from repeg.brokers.alpaca.credentials import AlpacaCredentials
    from repeg.brokers.alpaca.settings import AlpacaSettings
    from repeg.engine.clock import RealClock

    return AlpacaBroker(
        client,  # type: ignore[arg-type]
        name="alpaca-paper",
        clock=RealClock(),
        settings=AlpacaSettings(),
        credentials=AlpacaCredentials(key_id="PK", secret_key=SecretStr("s")),
        stream_url="ws://127.0.0.1:9/stream",
    )


def _unreadable_update_levels(broker: object, order: dict[str, object]) -> list[object]:
    with every_level_captured() as lines:
        update = {"event": "new", "timestamp": order["updated_at"], "order": order}
        broker._on_stream_update(update)  # type: ignore[attr-defined]
    return [line["log_level"] for line in lines if line["event"] == "trade_update_unreadable"]


async def test_a_trade_update_of_another_clients_order_of_a_kind_repeg_does_not_read_is_logged_at_debug():
    # The trade-update stream carries every order of the account: each event of another client's stop order
    # (a kind repeg never sends) was a warning, "trade_update_unreadable", as if one of the run's own updates had
    # been lost.
    broker = _broker_over(_TwoOrders())
    stop = {**_raw_order("new"), "client_order_id": "another-client-1", "type": "stop", "stop_price": "90.00"}
    assert _unreadable_update_levels(broker, stop) == ["debug"]


async def test_an_unreadable_trade_update_of_one_of_the_runs_orders_is_still_a_warning():
    client = _TwoOrders()
    ours = _raw_order("new")
    client.raw[str(ours["id"])] = ours
    broker = _broker_over(client)
    await broker.get_order(str(ours["id"]))  # type: ignore[attr-defined]
    future = {**ours, "status": "a_status_from_the_future"}
    assert _unreadable_update_levels(broker, future) == ["warning"]


def _tracking_c1() -> tuple[OrderTracker, list[OrderUpdate]]:
    """A tracker that claims client order id c1 (`order`'s), and the updates it pushes."""
    tracker = OrderTracker()
    pushed: list[OrderUpdate] = []
    tracker.add_sink(pushed.append)
    tracker.claim("c1")
    return tracker, pushed


def test_a_fill_reported_before_its_price_is_pushed_priced_once_the_price_arrives():
    tracker, pushed = _tracking_c1()
    unpriced = order(OrderStatus.PARTIALLY_FILLED, "4")  # filled_qty reported before filled_avg_price
    tracker.absorb(unpriced, T0, hint="partial_fill")
    tracker.absorb(order(OrderStatus.PARTIALLY_FILLED, "4", "10"), T0)  # a poll reads the price
    fills = [u.fill for u in pushed if u.fill is not None]
    assert [(f.qty, f.price) for f in fills] == [(Decimal(4), Decimal(10))]


def test_a_fill_after_one_reported_without_its_price_is_priced_from_the_cumulative_averages():
    tracker, pushed = _tracking_c1()
    unpriced = order(OrderStatus.PARTIALLY_FILLED, "4")  # filled_qty reported before filled_avg_price
    tracker.absorb(unpriced, T0, hint="partial_fill")
    tracker.absorb(order(OrderStatus.FILLED, "10", "10.06"), T0, hint="fill")
    fills = [u.fill for u in pushed if u.fill is not None]
    assert [(f.qty, f.price) for f in fills] == [(Decimal(10), Decimal("10.06"))]


def test_a_late_refusal_carrying_fewer_fills_does_not_make_the_next_fill_count_them_again():
    tracker, pushed = _tracking_c1()
    tracker.absorb(order(OrderStatus.PARTIALLY_FILLED, "6", "10"), T0, hint="partial_fill")
    stale = order(OrderStatus.PARTIALLY_FILLED, "4", "10")  # a refusal delivered after a later fill
    tracker.absorb(stale, T0, hint="order_cancel_rejected")
    tracker.absorb(order(OrderStatus.FILLED, "10", "10"), T0, hint="fill")
    assert sum(u.fill.qty for u in pushed if u.fill is not None) == 10


def test_alpaca_settings_refuse_a_rate_under_the_default_burst():
    from repeg.brokers.alpaca.settings import AlpacaSettings

    with pytest.raises(ConfigError, match="requests_per_minute") as info:
        AlpacaSettings.from_mapping({"requests_per_minute": 5})  # the default burst of 10 is over it
    assert info.value.key == "alpaca.burst"


@pytest.mark.parametrize("key", ["requests_per_minute", "burst"])
def test_alpaca_settings_refuse_a_boolean_rate_or_burst(key: str):
    from repeg.brokers.alpaca.settings import AlpacaSettings

    with pytest.raises(ConfigError) as info:
        AlpacaSettings.from_mapping({key: True})  # TOML `true` is no request count
    assert info.value.key == f"alpaca.{key}"


@pytest.mark.parametrize("rate", [math.inf, math.nan])
def test_alpaca_settings_refuse_a_rate_that_is_not_a_finite_number(rate: float):
    from repeg.brokers.alpaca.settings import AlpacaSettings

    with pytest.raises(ConfigError, match="finite") as info:
        AlpacaSettings.from_mapping({"requests_per_minute": rate})  # TOML `inf` would switch the limiter off
    assert info.value.key == "alpaca.requests_per_minute"


class _RequestTo:
    def __init__(self, url: str) -> None:
        self.url = url


@pytest.mark.parametrize(
    ("url", "mode", "host"),
    [
        ("https://api.alpaca.markets/v2/clock", "live", "api.alpaca.markets"),
        ("https://paper-api.alpaca.markets/v2/account?x=1", "paper", "paper-api.alpaca.markets"),
    ],
)
def test_refused_keys_name_the_mode_of_the_endpoint_that_refused_them(url: str, mode: str, host: str):
    # Paper keys sent to the live endpoint (or the reverse) are refused as any bad keys: the user must be told
    # which mode's endpoint refused them, and that the two accounts have different keys.
    http_error = _HttpError(401)
    http_error.request = _RequestTo(url)  # type: ignore[attr-defined]
    error = map_api_error(
        APIError(json.dumps({"code": 40110000, "message": "unauthorized"}), http_error), "get_clock"
    )
    assert isinstance(error, AuthenticationError)
    assert f"{mode} endpoint ({host})" in str(error)
    assert "keys are per mode" in str(error)
    assert "?x=1" not in str(error)


def test_alpaca_settings_refuse_a_boolean_number_of_attempts():
    from repeg.brokers.alpaca.settings import AlpacaSettings

    with pytest.raises(ConfigError) as info:
        AlpacaSettings.from_mapping({"retry": {"max_attempts": True}})  # TOML `true` is no count
    assert info.value.key == "alpaca.retry.max_attempts"


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (404, 40410000, "order not found", OrderNotFoundError),
        (422, 40010001, "client_order_id must be unique", DuplicateClientOrderIdError),
        (422, 42210000, 'order is already in "filled" state', OrderNotCancelableError),
    ],
)
def test_every_order_error_keeps_alpacas_message_and_code(status, code, message, expected):
    error = map_api_error(api_error(status, code, message), "cancel", order_id="o1", client_order_id="c1")
    assert type(error) is expected
    assert (error.broker_message, error.code) == (message, str(code))


def test_an_order_time_without_an_offset_is_read_as_utc_not_left_naive():
    # A naive time cannot be compared with the run's aware ones (the fold compares `updated_at`s).
    from repeg.brokers.alpaca.mapping import parse_order

    order = parse_order(
        {**_raw_order("new"), "updated_at": "2026-03-02T15:00:01", "created_at": "2026-03-02T15:00:00"}
    )
    assert (order.created_at, order.updated_at) == (T0, T0 + timedelta(seconds=1))
    assert order.created_at.tzinfo is not None
    assert order.updated_at.tzinfo is not None


def _broker_pushing(ours: dict[str, object]) -> tuple[AlpacaBroker, list[OrderUpdate]]:
    """A broker over a client holding `ours`, an order it claims as the run's, and the updates it pushes."""
    client = _TwoOrders()
    client.raw[str(ours["id"])] = ours
    broker = _broker_over(client)
    pushed: list[OrderUpdate] = []
    broker.subscribe_updates(pushed.append)
    broker._tracker.claim(str(ours["client_order_id"]))  # type: ignore[attr-defined]
    return broker, pushed


async def test_a_trade_update_time_without_an_offset_is_read_as_utc_not_left_naive():
    ours = _raw_order("new")
    broker, pushed = _broker_pushing(ours)
    broker._on_stream_update({"event": "new", "timestamp": "2026-03-02T15:00:00", "order": ours})  # type: ignore[attr-defined]
    assert [u.ts for u in pushed] == [T0]
    assert pushed[0].ts.tzinfo is not None


async def test_a_streamed_execution_is_priced_at_its_own_price_not_from_the_rounded_averages():
    # A fill event carries its execution's own qty and price; the fill was priced from the change in cumulative
    # averages instead, a quotient rounded (Alpaca's average of 1 @ 10.01 and 2 @ 10.02 is 10.0166666667):
    # 2 @ 10.02000000005 went to the fills and the report.
    ours = _raw_order("new")
    broker, pushed = _broker_pushing(ours)
    for filled, avg, qty, price in [("1", "10.01", "1", "10.01"), ("3", "10.0166666667", "2", "10.02")]:
        state = {**ours, "status": "partially_filled", "filled_qty": filled, "filled_avg_price": avg}
        event = {"event": "partial_fill", "timestamp": ours["updated_at"], "order": state, "qty": qty}
        broker._on_stream_update({**event, "price": price})  # type: ignore[attr-defined]
    fills = [(u.fill.qty, u.fill.price) for u in pushed if u.fill is not None]
    assert fills == [(Decimal(1), Decimal("10.01")), (Decimal(2), Decimal("10.02"))]


def test_a_fill_event_covering_more_than_its_own_execution_is_priced_from_the_averages():
    # A missed partial fill makes the change the tracker sees larger than the event's own execution: its price
    # alone would misprice the change, so the averages price it (their notional stays the broker's).
    tracker, pushed = _tracking_c1()
    execution = (Decimal(6), Decimal("10.10"))
    tracker.absorb(order(OrderStatus.FILLED, "10", "10.06"), T0, hint="fill", execution=execution)
    assert [(u.fill.qty, u.fill.price) for u in pushed if u.fill is not None] == [
        (Decimal(10), Decimal("10.06"))
    ]


def test_a_request_no_broker_answered_says_why_though_the_error_is_not_chained():
    # 73f3cbda stopped chaining alpaca-py's errors (their frames hold the secret header): a request that reached
    # no broker then said only "no answer from the broker (ConnectionError)", never where it went or why (refused,
    # a name that does not resolve, a TLS failure).
    import socket

    import requests

    from repeg.brokers.alpaca.mapping import map_transport_error

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(requests.ConnectionError) as info:
            requests.get(f"http://127.0.0.1:{port}/v2/account", timeout=1)
    message = str(map_transport_error(info.value, "get_account"))
    assert message.startswith("get_account: no answer from the broker (ConnectionError: ")
    assert f"port={port}" in message
    assert "Connection refused" in message
    assert " object at 0x" not in message


def _absorb_fill_events(tracker: OrderTracker, events: list[tuple[str, str, str, str]]) -> None:
    """Stream fill events of order c1 (filled_qty, filled_avg_price, event qty, price) into `tracker`."""
    for filled, avg, qty, price in events:
        state = order(OrderStatus.PARTIALLY_FILLED, filled, avg)
        tracker.absorb(state, T0, hint="partial_fill", execution=(Decimal(qty), Decimal(price)))


def _fills_of_events(events: list[tuple[str, str, str, str]]) -> list[tuple[Decimal, Decimal]]:
    """The fills the tracker reports for stream fill events (filled_qty, filled_avg_price, event qty, price)."""
    tracker, pushed = _tracking_c1()
    _absorb_fill_events(tracker, events)
    return [(u.fill.qty, u.fill.price) for u in pushed if u.fill is not None]


def test_a_fill_event_whose_price_is_the_orders_average_is_priced_from_the_averages():
    # Some of Alpaca's docs call a fill event's `price` the order's average, not the execution's: 1 @ 10.00 then
    # 1 @ 10.02 reports the second at 10.01 (the average). Taken as the execution's price, 10.01 went to the fills
    # and the fold preferred that wrong sum (20.01) to the broker's notional (2 x 10.01 = 20.02).
    fills = _fills_of_events([("1", "10.00", "1", "10.00"), ("2", "10.01", "1", "10.01")])
    assert fills == [(Decimal(1), Decimal("10.00")), (Decimal(1), Decimal("10.02"))]


def test_an_average_alpaca_sent_without_its_trailing_zeros_does_not_widen_the_check_of_a_fill_price():
    # Alpaca trims a number's trailing zeros (a limit of "150"): the average of 1 @ 9.99 and 1 @ 10.01 comes as "10",
    # whose last digit is no rounding of a whole dollar. Read as one, the order's average 10 passed for the second
    # execution's price; the check is at least to the cent.
    fills = _fills_of_events([("1", "9.99", "1", "9.99"), ("2", "10", "1", "10")])
    assert fills == [(Decimal(1), Decimal("9.99")), (Decimal(1), Decimal("10.01"))]


def test_a_third_execution_is_priced_at_its_own_price_though_the_averages_before_it_were_rounded():
    # 1 @ 10.01, 2 @ 10.02, 3 @ 10.03: the averages 10.0166666667 and 10.0233333333 are rounded, and measured from
    # the rounded earlier average the third execution's price would look inconsistent with them; measured from the
    # executions reported, it is consistent and kept (not 10.0299999999 from the averages).
    events = [
        ("1", "10.01", "1", "10.01"),
        ("3", "10.0166666667", "2", "10.02"),
        ("6", "10.0233333333", "3", "10.03"),
    ]
    assert _fills_of_events(events) == [
        (Decimal(1), Decimal("10.01")),
        (Decimal(2), Decimal("10.02")),
        (Decimal(3), Decimal("10.03")),
    ]


def test_a_fill_priced_from_the_averages_after_fills_at_their_own_prices_keeps_the_brokers_notional():
    # 1 @ 10.01 and 2 @ 10.02 streamed at their own prices (30.05), then a poll: 6 at 10.0233333333. Priced from the
    # broker's rounded earlier notional (3 x 10.0166666667 = 30.0500000001), not the 30.05 reported, the fills
    # summed to 60.1399999997: neither the executions' 60.14 nor the broker's 6 x 10.0233333333 = 60.1399999998,
    # which the fold then took for an exact sum.
    tracker, pushed = _tracking_c1()
    _absorb_fill_events(tracker, [("1", "10.01", "1", "10.01"), ("3", "10.0166666667", "2", "10.02")])
    tracker.absorb(order(OrderStatus.PARTIALLY_FILLED, "6", "10.0233333333"), T0)
    notional = sum((u.fill.qty * u.fill.price for u in pushed if u.fill is not None), Decimal(0))
    assert notional.quantize(Decimal("1e-10")) == Decimal("60.1399999998")


def test_a_rest_quote_time_without_an_offset_is_read_as_utc():
    # The stream's quotes were read so already; a REST one raised ValueError (a Quote's time must be aware).
    from alpaca.data.models import Quote as SdkQuote

    from repeg.market.alpaca_feed import quote_from_sdk

    raw = {
        "t": "2026-03-02T15:00:00",
        "bp": 99.5,
        "bs": 100,
        "ap": 99.6,
        "as": 200,
        "bx": "V",
        "ax": "V",
        "c": [],
    }
    quote = quote_from_sdk("AAPL", SdkQuote("AAPL", raw))
    assert quote.ts == T0


@pytest.mark.parametrize(
    "body",
    [
        '[alpaca]\nsecret_key = "S3CRET-0123456789"\n',  # no key_id
        'alpaca = "S3CRET-0123456789"\n',  # the secret pasted as the table
    ],
    ids=["no-key-id", "alpaca-not-a-table"],
)
def test_a_refused_credentials_file_leaves_no_frame_holding_the_secret(tmp_path: Path, body: str):
    path = tmp_path / "alpaca.toml"
    path.write_text(body, encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_credentials({}, path)
    shown = locals_a_traceback_renderer_shows(info.value)
    assert shown, "no frame was walked: the test would prove nothing"
    assert not [text for text in shown if "S3CRET-0123456789" in text]


class _CreatesUnreadably(_TwoOrders):
    """A client that creates every order it is sent and answers it with a status repeg has no member for."""

    def post(self, path: str, data: dict[str, str]) -> object:
        raw = {**_raw_order("a_status_from_the_future"), "client_order_id": data["client_order_id"]}
        self.raw[str(raw["id"])] = raw
        return raw


def _buy_of_the_raw_order() -> OrderRequest:
    """The request `_raw_order` answers: 5 AAPL at a 99.00 limit, under r1-L0000-A00."""
    return OrderRequest(
        client_order_id="r1-L0000-A00",
        symbol="AAPL",
        side=Side.BUY,
        qty=Decimal(5),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("99.00"),
    )


async def test_a_submit_answered_with_an_order_repeg_cannot_read_is_of_unknown_outcome_not_refused():
    # The order exists at Alpaca: reported as a plain refusal (BrokerError), the engine records the submit refused
    # and goes on to the leg's next order, beside the first one still live at the broker.
    broker = _broker_over(_CreatesUnreadably())
    with pytest.raises(BrokerUnavailableError, match="cannot read"):
        await broker.submit_order(_buy_of_the_raw_order())  # type: ignore[attr-defined]


class _CreatesUnreadablyThenTimesOut(_TwoOrders):
    """A submit that creates its order (of a status repeg has no member for) but whose answer is lost; the order is
    not yet visible to the first look-up by client order id; the re-send is refused as a duplicate id."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def post(self, path: str, data: dict[str, str]) -> object:
        import requests

        if self.raw:
            raise api_error(422, 40010001, "client_order_id must be unique")
        raw = {**_raw_order("a_status_from_the_future"), "client_order_id": data["client_order_id"]}
        self.raw[str(raw["id"])] = raw
        raise requests.ReadTimeout("read timed out")

    def get(self, path: str, params: object = None) -> object:
        if path != "/orders:by_client_order_id":
            return super().get(path, params)
        self.lookups += 1
        if self.lookups == 1:
            raise api_error(404, 40410000, "order not found")
        return next(iter(self.raw.values()))


async def test_a_duplicate_id_whose_order_cannot_be_read_is_of_unknown_outcome_not_refused():
    # The look-up after the duplicate answer finds the order but cannot read it: its plain BrokerError replaced the
    # duplicate error, which the engine records as a refusal and sends the leg's next order beside the live one.
    client = _CreatesUnreadablyThenTimesOut()
    broker = _broker_over(client)
    with pytest.raises(BrokerUnavailableError, match="cannot read"):
        await broker.submit_order(_buy_of_the_raw_order())  # type: ignore[attr-defined]
    assert client.lookups == 2  # the look-up after the timeout, then the one after the duplicate answer


# --- the live endpoint needs the confirmation, whatever the mode says ----------------------------------------


@pytest.mark.parametrize(
    "trading",
    [
        "https://api.alpaca.markets",
        "https://API.alpaca.markets:443/",
        "https://api.alpaca.markets./",  # the FQDN's trailing dot: urllib3 connects (and verifies) without it
        "https://api.alpaca.markets\\@paper-api.alpaca.markets",  # urllib3 reads the host before the backslash
    ],
)
async def test_paper_mode_pointed_at_the_live_endpoint_still_needs_the_confirmation(
    trading: str, monkeypatch: pytest.MonkeyPatch
):
    # `build_alpaca("paper", urls=...)` with the live trading host: the confirmation was checked against the mode
    # only, so orders went to the live account (real money) without `confirm_live`.
    from pydantic import SecretStr

    from repeg.brokers.alpaca import factory
    from repeg.brokers.alpaca.credentials import AlpacaCredentials
    from repeg.brokers.alpaca.settings import AlpacaMode, AlpacaUrls, DataFeed

    def contacted(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the live endpoint was about to be contacted without the confirmation")

    monkeypatch.setattr(factory, "build_readonly_broker", contacted)  # no request leaves the test
    urls = AlpacaUrls.for_mode(AlpacaMode.LIVE, DataFeed.IEX).model_copy(update={"trading": trading})
    with pytest.raises(LiveTradingNotConfirmedError) as info:
        await factory.build_alpaca(
            "paper",
            confirm_live=False,
            allow_closed=False,
            clock=VirtualClock(T0),
            credentials=AlpacaCredentials(key_id="PK8", secret_key=SecretStr("s8")),
            urls=urls,
        )
    assert info.value.key == "--confirm"
