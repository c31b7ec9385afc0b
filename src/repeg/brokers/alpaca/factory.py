"""Build the Alpaca broker and quote feed for a run, with the safety checks that must pass before any order.

`build_alpaca` is the one entry point for the CLI and the Python API.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
import structlog
from alpaca.common.rest import RESTClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.trading.client import TradingClient

from repeg.brokers.alpaca.adapter import AlpacaBroker
from repeg.brokers.alpaca.credentials import AlpacaCredentials, load_credentials
from repeg.brokers.alpaca.http import TimeoutAdapter
from repeg.brokers.alpaca.settings import AlpacaMode, AlpacaSettings, AlpacaUrls, DataFeed
from repeg.engine.clock import Clock
from repeg.errors import LiveTradingNotConfirmedError, MarketClosedError
from repeg.market.alpaca_feed import AlpacaQuoteFeed

log = structlog.get_logger(__name__)


def harden(client: RESTClient, settings: AlpacaSettings) -> None:
    """Switch off the SDK's own retries (ours are bounded, jittered, idempotent) and set our HTTP timeouts."""
    client._retry = 0
    adapter = TimeoutAdapter((settings.connect_timeout, settings.read_timeout))
    client._session.mount("http://", adapter)
    client._session.mount("https://", adapter)


_LIVE_HOST = urlsplit(AlpacaUrls.for_mode(AlpacaMode.LIVE, DataFeed.IEX).trading).hostname


def is_live_endpoint(url: str) -> bool:
    """Whether `url` is Alpaca's live trading host: orders sent there trade real money, whatever the mode says.

    Read as the SDK's HTTP client (requests) sends it, which connects to an FQDN's trailing-dot form as to the
    host and ends the host at a backslash; a url it cannot prepare reaches no host.
    """
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except requests.RequestException:
        return False
    return (urlsplit(prepared.url or "").hostname or "").rstrip(".") == _LIVE_HOST


def venue_of(mode: AlpacaMode, trading_url: str) -> AlpacaMode:
    """Where orders sent to `trading_url` trade: live for the live mode, and for Alpaca's live trading host
    whatever the mode says (real money: it needs the confirmation, and is named, journaled, as live)."""
    return AlpacaMode.LIVE if mode is AlpacaMode.LIVE or is_live_endpoint(trading_url) else AlpacaMode.PAPER


def broker_name(mode: AlpacaMode) -> str:
    return f"alpaca-{mode.value}"


async def build_alpaca(
    mode: AlpacaMode | str,
    *,
    confirm_live: bool,
    allow_closed: bool,
    clock: Clock,
    feed: DataFeed | str = DataFeed.IEX,
    credentials: AlpacaCredentials | None = None,
    urls: AlpacaUrls | None = None,
    settings: AlpacaSettings | None = None,
) -> tuple[AlpacaBroker, AlpacaQuoteFeed]:
    """A connected `AlpacaBroker` and `AlpacaQuoteFeed` for `mode` ("paper" or "live").

    Before returning: live mode, or `urls` whose trading host is Alpaca's live one, without `confirm_live`
    raises `LiveTradingNotConfirmedError` (nothing is contacted); the market clock is read and a closed market
    raises `MarketClosedError` unless `allow_closed` (then `broker.market_clock` says when it opens, and DAY orders queue until then); the trade-update stream
    is connected (`AuthenticationError` if the keys are refused). Call `aclose()` on both when done.
    Credentials default to `load_credentials()`; `urls` default to Alpaca's endpoints for the mode and feed.
    The broker is named (and a run journaled) by the venue it trades on: `alpaca-live` for the live host.
    """
    mode, feed = AlpacaMode(mode), DataFeed(feed)
    urls = urls or AlpacaUrls.for_mode(mode, feed)
    if venue_of(mode, urls.trading) is AlpacaMode.LIVE and not confirm_live:
        raise LiveTradingNotConfirmedError(broker_name(AlpacaMode.LIVE))
    settings = settings or AlpacaSettings()
    credentials = credentials or load_credentials()
    broker = build_readonly_broker(mode, clock=clock, credentials=credentials, urls=urls, settings=settings)
    await _check_market(broker, allow_closed)
    data = StockHistoricalDataClient(
        credentials.key_id, credentials.secret_key.get_secret_value(), url_override=urls.data
    )
    harden(data, settings)
    quote_feed = AlpacaQuoteFeed(data, urls.data_stream, credentials, clock, feed=feed, settings=settings)
    try:
        await broker.start()
    except BaseException:
        await broker.aclose()
        raise
    return broker, quote_feed


def build_readonly_broker(
    mode: AlpacaMode | str,
    *,
    clock: Clock,
    credentials: AlpacaCredentials | None = None,
    urls: AlpacaUrls | None = None,
    settings: AlpacaSettings | None = None,
) -> AlpacaBroker:
    """An `AlpacaBroker` whose trade stream is not started: enough for reads (account, clock, positions,
    assets) and no market check. `repeg check` uses it: it sends no orders, so it needs no `--confirm` even for
    a live account. (`build_alpaca` builds on it, then checks the market and starts the stream.)
    Named by the venue its trading url reaches (`venue_of`): `alpaca-live` for Alpaca's live host, whatever `mode`.
    """
    settings = settings or AlpacaSettings()
    credentials = credentials or load_credentials()
    urls = urls or AlpacaUrls.for_mode(AlpacaMode(mode), DataFeed.IEX)
    venue = venue_of(AlpacaMode(mode), urls.trading)
    trading = TradingClient(
        credentials.key_id,
        credentials.secret_key.get_secret_value(),
        paper=venue is AlpacaMode.PAPER,
        url_override=urls.trading,
    )
    harden(trading, settings)
    return AlpacaBroker(
        trading,
        name=broker_name(venue),
        clock=clock,
        settings=settings,
        credentials=credentials,
        stream_url=urls.trade_stream,
    )


async def _check_market(broker: AlpacaBroker, allow_closed: bool) -> None:
    market = await broker.get_market_clock()
    if market.is_open:
        return
    if not allow_closed:
        raise MarketClosedError(
            f"the market is closed (next open {market.next_open.isoformat()}); pass --allow-closed to queue DAY orders"
        )
    log.warning("market_closed_run_allowed", next_open=market.next_open.isoformat(), broker=broker.name)
