"""Run events: the single record of what a run intended and what the broker answered.

The engine emits these through an `EventSink`; the journal persists them, the live view renders them, and a
run's state is a pure fold over them (`repeg.domain.leg_fold`). Intents (`OrderIntent`) are emitted *before* the
broker call they announce, answers after, so that a crash at any instant leaves a journal from which the run can
be reconciled with the broker.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from repeg.domain.buying_power import BuyingPowerCap
from repeg.domain.orders import BrokerOrder, OrderType, OrderUpdate, Side
from repeg.domain.plan import LegSpec, Plan, SkippedTrade
from repeg.domain.quote import Quote


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    run_id: str
    ts: datetime
    correlation_id: str
    leg_index: int | None = None


class QuoteFileSource(BaseModel):
    """A simulator run replayed this quote file: where it was, and what it held (to audit or reproduce the run)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    kind: Literal["quote_file"] = "quote_file"
    #: The file's resolved (absolute) path when the run started.
    path: str
    size_bytes: int
    #: SHA-256 of the file's bytes as stored (of the compressed bytes for a .csv.gz), lowercase hex.
    sha256: str

    def describe(self) -> str:
        return f"quote file {self.path} ({self.size_bytes:,} bytes, sha256 {self.sha256})"


def _first_generator(value: object) -> bool:
    return value == 1


class SyntheticSource(BaseModel):
    """A simulator run on the seeded synthetic market: everything that determines its quotes."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    kind: Literal["synthetic"] = "synthetic"
    seed: int
    #: The symbols generated, in generation order (the order the tape's random draws follow).
    symbols: tuple[str, ...]
    #: `[simulator.market]` as the run used it: each value JSON text (as `RunStarted.config`).
    settings: dict[str, str]
    #: The version of the generator that made the tape (`repeg.market.synthetic.GENERATOR_VERSION`): the same
    #: seed and settings make another tape under another version. Absent in the JSON when 1: journals written
    #: before it was recorded were made by version 1, and version-1 events are stored exactly as before.
    generator_version: int = Field(default=1, ge=1, exclude_if=_first_generator)

    def describe(self) -> str:
        """One line; the per-symbol settings (`settings["symbols"]`) are left to the event's own detail."""
        shown = ", ".join(f"{key}={value}" for key, value in self.settings.items() if key != "symbols")
        return (
            f"synthetic market, seed {self.seed}, symbols {' '.join(self.symbols)} ({shown}), "
            f"generator version {self.generator_version}"
        )


class AlpacaFeedSource(BaseModel):
    """An Alpaca run priced from this market data feed of Alpaca's (its quotes are not stored): `repeg resume`
    reads the same feed again unless told otherwise."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    kind: Literal["alpaca_feed"] = "alpaca_feed"
    #: `iex` or `sip` (`repeg.brokers.alpaca.settings.DataFeed`), as `--feed` named it.
    feed: str

    def describe(self) -> str:
        return f"Alpaca {self.feed} feed (live quotes, not stored)"


MarketSource = Annotated[QuoteFileSource | SyntheticSource | AlpacaFeedSource, Field(discriminator="kind")]


def _absent(value: object) -> bool:
    return value is None


class RunStarted(_Event):
    kind: Literal["run_started"] = "run_started"
    plan: Plan
    config: dict[str, str]
    broker: str
    code_version: str
    #: The market data the run ran on: a simulator's quote file or synthetic market, or an Alpaca run's feed;
    #: None when unknown (the remote simulator's own synthetic market, or a journal written before repeg recorded
    #: it). Left out of the JSON when None, so that events without a source are stored exactly as before and
    #: older repeg versions still read them.
    market: MarketSource | None = Field(default=None, exclude_if=_absent)


class LegPlanned(_Event):
    kind: Literal["leg_planned"] = "leg_planned"
    spec: LegSpec


class LegSkipped(_Event):
    kind: Literal["leg_skipped"] = "leg_skipped"
    skipped: SkippedTrade


class PhaseStarted(_Event):
    kind: Literal["phase_started"] = "phase_started"
    side: Side
    #: Buy phase only: the factor (<= 1) applied to buy quantities when buying power fell short.
    scale: Decimal = Decimal(1)
    buying_power: Decimal | None = None


class PhaseEnded(_Event):
    kind: Literal["phase_ended"] = "phase_ended"
    side: Side


class IntentAction(StrEnum):
    SUBMIT = "submit"
    REPLACE = "replace"
    CANCEL = "cancel"


class OrderIntent(_Event):
    """Announced and made durable before the broker call. `order_id` is the target of a replace or cancel."""

    kind: Literal["order_intent"] = "order_intent"
    action: IntentAction
    client_order_id: str | None = None
    order_id: str | None = None
    order_type: OrderType | None = None
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    attempt: int = 0
    #: The quote the price was computed from (arrival quote on the first submit).
    quote: Quote | None = None
    reason: str = ""
    #: Price step of `limit_price` in the policy's schedule (0 = initial price); None when not a schedule price.
    step: int | None = None
    #: An escalated buy cut to the buying power left after the broker refused the whole remainder (absent otherwise).
    capped: BuyingPowerCap | None = Field(default=None, exclude_if=_absent)


class OrderAccepted(_Event):
    """The broker's synchronous answer to a submit or replace: the (new) order as it now stands."""

    kind: Literal["order_accepted"] = "order_accepted"
    action: IntentAction
    order: BrokerOrder


class OrderFailed(_Event):
    """The broker refused a submit, replace or cancel; `error` is the error class, `message` its text."""

    kind: Literal["order_failed"] = "order_failed"
    action: IntentAction
    client_order_id: str | None = None
    order_id: str | None = None
    error: str
    message: str


class OrderUpdated(_Event):
    """A pushed or polled change of one order (fills carry their execution in `update.fill`)."""

    kind: Literal["order_updated"] = "order_updated"
    update: OrderUpdate


class LegEscalated(_Event):
    kind: Literal["leg_escalated"] = "leg_escalated"
    remaining_qty: Decimal
    reason: str


class LegFinished(_Event):
    kind: Literal["leg_finished"] = "leg_finished"
    status: str
    reason: str = ""


class RunEnded(_Event):
    kind: Literal["run_ended"] = "run_ended"
    status: str


RunEvent = Annotated[
    RunStarted
    | LegPlanned
    | LegSkipped
    | PhaseStarted
    | PhaseEnded
    | OrderIntent
    | OrderAccepted
    | OrderFailed
    | OrderUpdated
    | LegEscalated
    | LegFinished
    | RunEnded,
    Field(discriminator="kind"),
]

RUN_EVENT_ADAPTER: TypeAdapter[RunEvent] = TypeAdapter(RunEvent)


class EventSink(Protocol):
    """Receives every run event in order. The journal's `emit` returns only once the event is durable."""

    async def emit(self, event: RunEvent) -> None: ...
