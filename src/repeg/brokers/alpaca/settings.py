"""Tunables and endpoints of the Alpaca adapter (defaults are Alpaca's documented limits and our safe margins)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from repeg.brokers.alpaca.retry import BackoffPolicy, Count
from repeg.brokers.alpaca.stream import StreamSettings
from repeg.config import Seconds, missing_or_refused


class AlpacaMode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


class DataFeed(StrEnum):
    IEX = "iex"
    SIP = "sip"


class AlpacaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Client-side limit: at most this many requests in any 60 s (Alpaca allows 200 per minute per account); a
    #: finite number (TOML `inf` would switch the limiter off).
    requests_per_minute: Annotated[float, Count] = Field(default=200.0, gt=0, allow_inf_nan=False)
    #: Requests that may go at once; part of `requests_per_minute`, not on top of it, so it must be under it (the
    #: default too: checked against a `requests_per_minute` of 10 or less).
    burst: Annotated[int, Count] = Field(default=10, ge=1, validate_default=True)
    #: Every HTTP request gets these (the SDK sets none): seconds to connect, seconds to read the answer.
    connect_timeout: Seconds = Field(default=3.05, gt=0)
    read_timeout: Seconds = Field(default=10.0, gt=0)
    #: Retries of HTTP 429, 5xx and timeouts.
    retry: BackoffPolicy = BackoffPolicy()
    stream: StreamSettings = StreamSettings()
    #: Quote feed: REST latest-quote polling interval while the market-data stream is down.
    quote_poll_every: Seconds = Field(default=1.0, gt=0)

    @field_validator("burst")
    @classmethod
    def _burst_within_the_rate(cls, burst: int, info: ValidationInfo) -> int:
        rate = info.data.get("requests_per_minute")
        if isinstance(rate, float) and burst >= rate:
            raise ValueError(
                f"must be under requests_per_minute ({rate:g}): the burst is part of the minute's budget"
            )
        return burst

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> AlpacaSettings:
        """Validate an `[alpaca]` TOML table (e.g. `requests_per_minute = 150`, `[alpaca.stream]
        silence_after = 30`); the first bad key raises `ConfigError` naming it as `alpaca.<key>`."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(["alpaca", *(str(part) for part in first["loc"])])
            raise missing_or_refused(first, key) from None  # pydantic's text prints the value: not chained


class AlpacaUrls(BaseModel):
    """Where the clients connect. `for_mode` gives Alpaca's real endpoints; tests pass a loopback server."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trading: str
    data: str
    trade_stream: str
    data_stream: str

    @classmethod
    def for_mode(cls, mode: AlpacaMode, feed: DataFeed) -> AlpacaUrls:
        host = "paper-api.alpaca.markets" if mode is AlpacaMode.PAPER else "api.alpaca.markets"
        return cls(
            trading=f"https://{host}",
            data="https://data.alpaca.markets",
            trade_stream=f"wss://{host}/stream",
            data_stream=f"wss://stream.data.alpaca.markets/v2/{feed.value}",
        )

    @classmethod
    def loopback(cls, base_url: str, feed: DataFeed = DataFeed.IEX) -> AlpacaUrls:
        """Every endpoint on one local server (the fake Alpaca of the tests): `http://127.0.0.1:PORT`."""
        ws = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        return cls(
            trading=base_url, data=base_url, trade_stream=f"{ws}/stream", data_stream=f"{ws}/v2/{feed.value}"
        )
