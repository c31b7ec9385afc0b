"""What a report of a journaled run reads: the run rebuilt from its events, and each leg's order path over time.

The result (legs, counts, quality) is the one `repeg show` prints, from the same fold and builder
(`repeg.report.result.result_from_events`); the order chains are the fold's records. What the fold does not keep
is *when* each limit price rested and each execution happened: `leg_paths` reads that from the events, as
`repeg.lab.models.PathEvent`s, so that the backtest report's drawing (`repeg.lab.report_figures.add_path`) draws
a run's orders too.

Guarantees of a leg's path:

- a limit price starts at the first report of each order of the chain (its acceptance, or the first update of an
  order whose answer was adopted later), a replacement as a `replace`, anything else as a `submit`;
- a cancel, expiry or rejection closes the line only when it concerns the order resting now, so a late update
  of an older order of the chain never cuts the line of its replacement; a replace the broker refuses after
  accepting it puts the line back at the limit of the order that stays live;
- every execution is counted once, by the growth of its order's cumulative filled quantity (the fold's own rule,
  so duplicated or polled updates never draw a fill twice); its price is the broker's fill price, or, when an
  update carries no fill, the price implied by the order's cumulative average (rounded to $0.0001, half even);
- an escalation's order the broker never reported (its submit unanswered) is a `submit` where it was sent: it may
  be open at the broker, so the escalation is not drawn as one that sent no order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np

from repeg.domain.events import (
    AlpacaFeedSource,
    IntentAction,
    LegEscalated,
    LegFinished,
    MarketSource,
    OrderAccepted,
    OrderFailed,
    OrderIntent,
    OrderUpdated,
    QuoteFileSource,
    RunEvent,
    RunStarted,
    SyntheticSource,
)
from repeg.domain.orders import BrokerOrder, Fill, OrderEvent, OrderStatus, OrderType
from repeg.domain.run import RunFolder, RunState
from repeg.domain.ticks import ZERO
from repeg.errors import QuoteFileError, RepegError, ReportError
from repeg.lab.models import PathEvent, PathEventKind
from repeg.lab.report_data import DEFAULT_MAX_QUOTES, MarketSeries, decimate, market_from_tapes
from repeg.market.loaders import load_quotes
from repeg.market.source import check_recorded, file_sha256
from repeg.market.synthetic import GENERATOR_VERSION
from repeg.market.tape import QuoteTape, to_ns
from repeg.report.result import ExecutionResult, journaled_result

_PRICE_UNIT = Decimal("0.0001")
_ONE = Decimal(1)
#: Statuses that end an order without a fill of its remainder (nor a replacement): its limit no longer rests.
_ENDED = frozenset(
    {OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED, OrderStatus.DONE_FOR_DAY}
)


@dataclass(frozen=True)
class RunReport:
    """A journaled run as a report shows it."""

    run_id: str
    #: Where the journal lives, safe to print (no password).
    journal: str
    started: RunStarted
    state: RunState
    result: ExecutionResult
    #: Each leg's order path in time order, by leg index.
    paths: dict[int, tuple[PathEvent, ...]]
    #: The run's first and last events: a limit still resting at the end of the journal is drawn to `last_ts`.
    first_ts: datetime
    last_ts: datetime


@dataclass(frozen=True)
class MarketView:
    """The quotes to draw behind a run's orders, per symbol, and what to say where there are none."""

    #: Per symbol found in the quote file: its quotes over the run's window, sampled (see `market_view`).
    series: Mapping[str, MarketSeries]
    #: One sentence for the report when some figure has no quotes behind it (None when every figure has them).
    note: str | None


def plain(qty: Decimal) -> Decimal:
    """The same quantity without the journal's trailing zeros (10.000000000 -> 10, 12.500 -> 12.5), as shown."""
    whole = qty.to_integral_value()
    return whole.quantize(_ONE) if qty == whole else qty.normalize()


@dataclass
class _PathBuilder:
    """One leg's path, built event by event."""

    events: list[PathEvent] = field(default_factory=list)
    resting_order: str | None = None
    seen: set[str] = field(default_factory=set)
    filled: dict[str, Decimal] = field(default_factory=dict)
    #: Per order, the cumulative notional of its executions so far; None once one's price is unknown.
    notional: dict[str, Decimal | None] = field(default_factory=dict)
    #: An escalation's submits the broker has neither reported nor refused (yet), by client order id: where each
    #: goes in the path.
    unanswered: dict[str, tuple[int, PathEvent]] = field(default_factory=dict)

    def path(self) -> tuple[PathEvent, ...]:
        """The path, with each escalation's submit the broker never reported where it was sent: it went out (and
        may be open at the broker, as the leg's error says), so the escalation is not one that sent no order."""
        events = list(self.events)
        for position, event in sorted(self.unanswered.values(), key=lambda item: item[0], reverse=True):
            events.insert(position, event)
        return tuple(events)

    def submit_sent(self, intent: OrderIntent) -> None:
        """A submit after the leg escalated: kept until the broker reports its order (`order_reported`)."""
        cid = intent.client_order_id
        if cid is None or intent.action is not IntentAction.SUBMIT:
            return
        if any(e.kind is PathEventKind.ESCALATE for e in self.events):
            price = intent.limit_price if intent.order_type is OrderType.LIMIT else None
            qty = None if intent.qty is None else plain(intent.qty)
            submitted = PathEvent(ts=intent.ts, kind=PathEventKind.SUBMIT, price=price, qty=qty)
            self.unanswered[cid] = (len(self.events), submitted)

    def order_reported(self, order: BrokerOrder, ts: datetime, fill: Fill | None) -> None:
        """The broker's view of one order: its first report starts its limit, a growth of its cumulative fill is
        an execution, and an end without a fill or a replacement closes its limit if that is the one resting."""
        self.unanswered.pop(order.client_order_id, None)
        if order.order_id not in self.seen:
            self.seen.add(order.order_id)
            kind = PathEventKind.REPLACE if order.replaces else PathEventKind.SUBMIT
            price = order.limit_price if order.order_type is OrderType.LIMIT else None
            self.events.append(
                PathEvent(ts=ts, kind=kind, price=price, qty=plain(order.qty), order_id=order.order_id)
            )
            self.resting_order = order.order_id
        self._executions(order, ts, fill)
        if order.status in _ENDED and order.order_id == self.resting_order:
            self.events.append(PathEvent(ts=ts, kind=PathEventKind.CANCEL, order_id=order.order_id))
            self.resting_order = None

    def order_restored(self, order: BrokerOrder, ts: datetime) -> None:
        """A refused replace: `order`, the one it was to replace, rests again at its own limit."""
        if order.order_id == self.resting_order or order.status.is_terminal:
            return
        price = order.limit_price if order.order_type is OrderType.LIMIT else None
        self.events.append(
            PathEvent(
                ts=ts, kind=PathEventKind.REPLACE, price=price, qty=plain(order.qty), order_id=order.order_id
            )
        )
        self.resting_order = order.order_id

    def mark(self, kind: PathEventKind, ts: datetime, qty: Decimal | None = None) -> None:
        self.events.append(PathEvent(ts=ts, kind=kind, qty=None if qty is None else plain(qty)))

    def _executions(self, order: BrokerOrder, ts: datetime, fill: Fill | None) -> None:
        before = self.filled.get(order.order_id, ZERO)
        if order.filled_qty <= before:
            return
        qty = order.filled_qty - before
        earlier = self.notional.get(order.order_id, ZERO)  # None: some earlier execution's price is unknown
        total = None if order.filled_avg_price is None else order.filled_qty * order.filled_avg_price
        price: Decimal | None = None
        if fill is not None and fill.qty == qty:
            price, ts = fill.price, fill.ts
        elif total is not None and earlier is not None:
            price = ((total - earlier) / qty).quantize(_PRICE_UNIT, rounding=ROUND_HALF_EVEN)
        if total is None:
            total = None if price is None or earlier is None else earlier + price * qty
        self.filled[order.order_id] = order.filled_qty
        self.notional[order.order_id] = total
        self.events.append(
            PathEvent(ts=ts, kind=PathEventKind.FILL, price=price, qty=plain(qty), order_id=order.order_id)
        )


def _apply(builder: _PathBuilder, event: RunEvent) -> None:
    if isinstance(event, OrderAccepted):
        builder.order_reported(event.order, event.ts, None)
    elif isinstance(event, OrderUpdated):
        update = event.update
        builder.order_reported(update.order, event.ts, update.fill)
        if update.event is OrderEvent.REPLACE_REJECTED:
            builder.order_restored(update.order, event.ts)
    elif isinstance(event, OrderIntent):
        builder.submit_sent(event)
    elif isinstance(event, OrderFailed) and event.action is IntentAction.SUBMIT:
        builder.unanswered.pop(event.client_order_id or "", None)  # refused: no order went out
    elif isinstance(event, LegEscalated):
        builder.mark(PathEventKind.ESCALATE, event.ts, event.remaining_qty)
    elif isinstance(event, LegFinished):
        builder.mark(PathEventKind.END, event.ts)


def _fold_with_paths(events: Iterable[RunEvent]) -> tuple[RunState, dict[int, tuple[PathEvent, ...]]]:
    """The fold of the run and every leg's path; an event belongs to the leg the fold applied it to (an update
    journaled without its leg is attributed by its client order id, exactly as the fold does)."""
    folder = RunFolder()
    builders: dict[int, _PathBuilder] = {}
    for event in events:
        changed = folder.apply(event)
        if changed is not None:
            _apply(builders.setdefault(changed.index, _PathBuilder()), event)
    paths = {index: builder.path() for index, builder in sorted(builders.items())}
    return folder.snapshot(), paths


def leg_paths(events: Iterable[RunEvent]) -> dict[int, tuple[PathEvent, ...]]:
    """Every leg's order path (see the module docstring), by leg index, in journal order."""
    return _fold_with_paths(events)[1]


def run_report(run_id: str, events: Sequence[RunEvent], journal: str) -> RunReport:
    """The report of `run_id` from its journaled events; a run with no start in its journal is refused.

    Its header is the last start journaled (the one in effect after a restart, as the fold reads it).
    """
    starts = [event for event in events if isinstance(event, RunStarted)]
    if not starts:
        raise ReportError(run_id, f"the journal {journal} holds no run_started event for this run")
    state, paths = _fold_with_paths(events)
    return RunReport(
        run_id=run_id,
        journal=journal,
        started=starts[-1],
        state=state,
        result=journaled_result(state),
        paths=paths,
        first_ts=min(event.ts for event in events),
        last_ts=max(event.ts for event in events),
    )


#: The most quotes a report generates again to draw a synthetic run's market (ten symbols at the synthetic
#: market's own maximum per symbol: a few seconds and a few hundred MB); a larger recorded market is not drawn.
MAX_REBUILT_QUOTES = 10_000_000
SYNTHETIC_REBUILT = "the synthetic market rebuilt from the seed ({seed}) and settings the run recorded"
#: Quotes drawn on either side of the run's events.
WINDOW_PAD = timedelta(seconds=60)
NO_QUOTE_FILE = (
    "The journal records no market data for this run (the remote simulator's own market, or a run journaled before "
    "repeg recorded it), and no quote file was named (--quotes): the figures show the orders only."
)
#: The note of an Alpaca run's report without --quotes: the journal names its feed, whose quotes it does not store.
ALPACA_FEED = "The run priced from the {feed}, and no quote file was named (--quotes): the figures show the orders only."
ORDERS_ONLY = "The figures show the orders only (--quotes draws another file)."
NO_MARKET_NOTE = "No quotes are drawn (--no-market): the figures show the orders only."


def _window(series: MarketSeries, start: datetime, end: datetime) -> MarketSeries:
    """The quotes in [start, end], led by the quote in force at `start` (no trade prints); none when no quote falls
    in [start, end]: the last quote of an earlier day (a file of another day) is not the market at the run."""
    first_in = int(np.searchsorted(series.quote_ts_ns, to_ns(start), side="left"))
    hi = int(np.searchsorted(series.quote_ts_ns, to_ns(end), side="right"))
    lo = max(int(np.searchsorted(series.quote_ts_ns, to_ns(start), side="right")) - 1, 0)
    if first_in >= hi:
        lo = hi
    empty = np.zeros(0, dtype=np.int64)
    return MarketSeries(
        series.quote_ts_ns[lo:hi], series.bid_units[lo:hi], series.ask_units[lo:hi], empty, empty
    )


def market_view(report: RunReport, quotes: Path | None, max_quotes: int = DEFAULT_MAX_QUOTES) -> MarketView:
    """The quotes of each of the run's symbols in `quotes` (a CSV, CSV.gz or Parquet quote file), over the run
    padded by `WINDOW_PAD` and sampled to at most `max_quotes` per symbol; the note names the symbols it lacks.

    A quote file that cannot be read is a `QuoteFileError` (the user named it); none named is said in the note.
    """
    if quotes is None:
        return MarketView(series={}, note=NO_QUOTE_FILE)
    return _tape_view(report, load_quotes(quotes), max_quotes, f"The quote file {quotes}")


def _tape_view(report: RunReport, tape: QuoteTape, max_quotes: int, named: str) -> MarketView:
    """The run's symbols in `tape`, over the run padded by `WINDOW_PAD`; the note names the symbols it lacks."""
    start, end = report.first_ts - WINDOW_PAD, report.last_ts + WINDOW_PAD
    series: dict[str, MarketSeries] = {}
    missing: list[str] = []
    for symbol in dict.fromkeys(leg.symbol for leg in report.state.legs):
        shown = None if symbol not in tape else _window(market_from_tapes(tape, None, symbol), start, end)
        if shown is None or len(shown.quote_ts_ns) == 0:  # none of the symbol, or none over the run
            missing.append(symbol)
            continue
        series[symbol] = decimate(shown, max_quotes=max_quotes)
    note = None
    if missing:
        note = (
            f"{named} has no quotes of {', '.join(missing)} over the run: those figures show the orders only."
        )
    return MarketView(series=series, note=note)


def recorded_market_view(
    report: RunReport, quotes: Path | None, max_quotes: int = DEFAULT_MAX_QUOTES
) -> MarketView:
    """The quotes behind a run's orders: from `quotes` when named, else from the quote file the run recorded
    (`RunStarted.market`) if it is still at its path with the recorded SHA-256, or from the synthetic market it
    recorded, generated again (`synthetic_market_view`).

    A recorded file that is gone or changed is not drawn, and the note says so; a named file whose SHA-256 is not
    the recorded one is drawn, and the note says that it is not the file the run replayed.
    """
    source = report.started.market
    if quotes is not None:
        view = market_view(report, quotes, max_quotes)
        return _with_note(view, _not_the_recorded_file(source, quotes))
    if isinstance(source, QuoteFileSource):
        check = check_recorded(source)
        if check.usable:
            return _recorded_file_view(report, source, max_quotes)
        return MarketView(series={}, note=f"{check.problem} {ORDERS_ONLY}")
    if isinstance(source, SyntheticSource):
        return synthetic_market_view(report, source, max_quotes)
    if isinstance(source, AlpacaFeedSource):
        return MarketView(series={}, note=ALPACA_FEED.format(feed=source.describe()))
    return market_view(report, None)


def _recorded_file_view(report: RunReport, source: QuoteFileSource, max_quotes: int) -> MarketView:
    """The recorded file drawn; one this repeg's loader refuses (a rule newer than the run, e.g. Parquet times
    without a zone) is not drawn, as a changed one is not: the user named no file, and the report is still made."""
    try:
        return market_view(report, Path(source.path), max_quotes)
    except QuoteFileError as exc:
        problem = (
            f"The quote file the run replayed, {source.path}, cannot be read now ({_clipped(str(exc))})."
        )
        return MarketView(series={}, note=f"{problem} {ORDERS_ONLY}")


def synthetic_market_view(
    report: RunReport, source: SyntheticSource, max_quotes: int = DEFAULT_MAX_QUOTES
) -> MarketView:
    """The synthetic market a run recorded, generated again from its seed and settings (the same tape the run
    saw) and drawn as a quote file is. Settings that cannot be rebuilt (a tampered or foreign journal), or a
    market of more than `MAX_REBUILT_QUOTES` quotes, are not drawn: the note says why."""
    rebuilt = _rebuilt_tape(source)
    if isinstance(rebuilt, str):
        return MarketView(series={}, note=f"{rebuilt} {ORDERS_ONLY}")
    origin = f"the synthetic market (seed {source.seed})"
    view = _tape_view(report, rebuilt, max_quotes, origin[0].upper() + origin[1:])
    return _with_note(view, f"The quotes drawn are {SYNTHETIC_REBUILT.format(seed=source.seed)}.")


def _rebuilt_tape(source: SyntheticSource) -> QuoteTape | str:
    """The recorded synthetic tape, or one sentence saying why it is not rebuilt."""
    from repeg.simulation import market_from_mapping, synthetic_market

    cannot = f"The run's synthetic market (seed {source.seed}) cannot be rebuilt from its recorded settings"
    if source.generator_version != GENERATOR_VERSION:
        return (
            f"The run's synthetic market (seed {source.seed}) was made by generator version "
            f"{source.generator_version}: this repeg's generator (version {GENERATOR_VERSION}) would draw another "
            "market from the same seed and settings, so it cannot be rebuilt."
        )
    try:
        settings = market_from_mapping({key: json.loads(text) for key, text in source.settings.items()})
        names = len(set(source.symbols) | set(settings.symbols))
        per_symbol = max(1, int(settings.duration_seconds / settings.quote_interval_seconds))
        if (per_symbol + 1) * names > MAX_REBUILT_QUOTES:
            return (
                f"The run's synthetic market (seed {source.seed}) is too large to rebuild for the report: "
                f"{per_symbol:,} quotes for each of {names:,} symbols, more than {MAX_REBUILT_QUOTES:,} in all."
            )
        return synthetic_market(settings, source.symbols, seed=source.seed)
    except (RepegError, ValueError, ArithmeticError, RecursionError) as exc:
        return f"{cannot} ({_clipped(str(exc))})."


def _clipped(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters: an error may quote a recorded value, and a tampered one can be huge."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _not_the_recorded_file(source: MarketSource | None, quotes: Path) -> str | None:
    """A sentence when the named `quotes` are not the market the run recorded, or when the run recorded none that
    they could be checked against (an Alpaca run's feed, whose quotes are not stored, or nothing): the page names
    the file then, since its header names no file; None when they are the recorded file."""
    if isinstance(source, SyntheticSource):
        return f"The run ran on the synthetic market (seed {source.seed}), not on the quotes of {quotes}."
    if isinstance(source, AlpacaFeedSource):
        return f"The quotes drawn are those of {quotes}; the run priced from the {source.describe()}."
    if not isinstance(source, QuoteFileSource):
        return f"The quotes drawn are those of {quotes}, which the run's journal cannot confirm it saw."
    digest = file_sha256(quotes)
    if digest == source.sha256:
        return None
    return (
        f"The quote file {quotes} (SHA-256 {digest}) is not the one the run replayed ({source.path}, SHA-256 "
        f"{source.sha256}): the quotes drawn may not be those the run saw."
    )


def _with_note(view: MarketView, extra: str | None) -> MarketView:
    if extra is None:
        return view
    note = extra if view.note is None else f"{extra} {view.note}"
    return MarketView(series=view.series, note=note)
