"""The result of a run: per-leg outcomes, counts, notional and execution quality.

`build_result` is a pure function of the folded run state, so a live run and `repeg show` (which folds the
journal) produce the same result. Fill prices are always the broker's actual fills, never limit prices.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal, localcontext
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from repeg.domain.events import RunEvent
from repeg.domain.leg import LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.order_record import OrderRecord, never_closed, unread_replacement
from repeg.domain.orders import Side
from repeg.domain.plan import SkippedTrade
from repeg.domain.run import RunState, fold_run
from repeg.domain.ticks import ZERO
from repeg.report.quality import (
    DECIMAL_CONTEXT,
    QualitySummary,
    benchmark_quote,
    leg_cost_bps,
    summarize_quality,
)


class RunStatus(StrEnum):
    COMPLETED = "completed"  # every leg filled
    COMPLETED_WITH_SKIPS = "completed_with_skips"  # every leg that was sent filled; some trades were skipped
    PARTIAL = "partial"  # some quantity filled, but not every leg completed
    FAILED = "failed"  # nothing filled although something had to be
    UNFINISHED = "unfinished"  # no end in the journal (crashed or still running); only `repeg show` says it


def _absent(value: object) -> bool:
    return value is None


class LegResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    symbol: str
    side: Side
    requested_qty: Decimal | None
    requested_notional: Decimal | None = None
    filled_qty: Decimal
    #: Quantity-weighted average of the broker's actual fills over the whole order chain (to 28 significant digits,
    #: rounded half-even: `DECIMAL_CONTEXT`).
    avg_fill_price: Decimal | None
    filled_notional: Decimal
    arrival_mid: Decimal | None
    cost_bps: Decimal | None
    order_ids: tuple[str, ...]
    repegs: int
    #: True when an escalation order went out for the remainder (see `went_to_escalation`).
    escalated: bool
    time_to_complete_s: float | None
    status: LegStatus
    error: str | None = None
    #: Why a skipped leg was never sent (e.g. a buy scaled to zero by a buying-power shortfall), or why an incomplete
    #: leg's escalation was cut to the buying power left. Left out of the JSON when None, so every other leg reads
    #: exactly as before.
    reason: str | None = Field(default=None, exclude_if=_absent)


class LegCounts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    total: int = 0
    filled: int = 0
    incomplete: int = 0
    skipped: int = 0
    failed: int = 0
    escalated: int = 0
    #: Trades skipped at planning (below the minimum notional, ...), not counted in `total`.
    skipped_trades: int = 0


class ExecutionResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    status: RunStatus
    started_at: datetime | None
    ended_at: datetime | None
    legs: tuple[LegResult, ...]
    skipped: tuple[SkippedTrade, ...]
    counts: LegCounts
    notional_traded: Decimal
    quality: QualitySummary
    #: The factor applied to every buy because the buying power after the sells fell short (1 = not scaled).
    buy_scale: Decimal = Decimal(1)


def _leg_error(leg: LegState) -> str | None:
    """The leg's error. An incomplete leg's error first says when an earlier order of its chain was never
    reported closed: its last fills, which the engine waited for to size the remainder until the phase ended,
    are unknown, so the filled quantity may be short of the broker's. Read from the leg's final state, so that a
    report of that order arriving after the leg ended (e.g. asked before the buys) is not contradicted. So does a
    leg whose order's replacement the run never read (any status; after an over-fill's error). A filled leg has
    no other error."""
    active = leg.active_order
    unread = unread_replacement(leg.orders, active)
    if active is not None and unread is not None:
        text = f"order {unread}, the replacement of {active.order_id}, was never read: its fills are unknown"
        return f"{leg.error}; {text}" if leg.overfilled else text
    if leg.status is LegStatus.INCOMPLETE:
        unsettled = never_closed(leg.orders, leg.active_client_order_id)
        if unsettled is not None:
            text = f"order {unsettled.order_id} was never reported closed: its last fills are unknown"
            still_open = _open_at_end(leg, named=unsettled.order_id)
            return text if still_open is None else f"{text}; {still_open}"
    if leg.status is LegStatus.FILLED:
        # What failed on its way was handled (e.g. the cancel of an order that had just filled, which the broker
        # refuses): the leg got its whole quantity, and its error is no outcome. The journal keeps every refusal.
        # An order it left open at the broker is one: it could over-fill the leg.
        left = _left_open(leg)
        return None if left is None else f"order {left.order_id} was left open at the broker ({left.status})"
    return _with_open_order(leg)


def _with_open_order(leg: LegState) -> str | None:
    """The error of a leg that ended unfilled, after naming the order it left open at the broker (its cancel not
    confirmed, and the broker read it open when the run last asked, or could not be asked), or the submit whose
    outcome stayed unknown (no answer, and no lookup by its client order id answered): either may still fill."""
    text = _open_at_end(leg) if leg.is_done else None
    if text is None:
        return leg.error
    return text if not leg.error else f"{leg.error}; {text}"


def _open_at_end(leg: LegState, named: str | None = None) -> str | None:
    """Each order of the leg (but `named`, already named) last read open, else its submit never answered."""
    still_open = [
        f"order {record.order_id} was still open at the broker ({record.status}) when last read: "
        "its later fills are not in this result"
        for record in leg.orders
        if record.order_id not in (None, named) and record.status is not None and not record.is_terminal
    ]
    if still_open:
        return "; ".join(still_open)
    active = leg.active_order
    if active is not None and active.order_id is None and active.status is None:
        return (
            f"the submit of {active.client_order_id} was never answered: an order under that client order id "
            "may be open at the broker, its fills not in this result"
        )
    return None


def went_to_escalation(leg: LegState) -> bool:
    """True when the leg sent an escalation order (its remainder went to market, or to a collared limit). A leg
    whose escalation found nothing left to send (its order filled while the cancel was pending) did not escalate:
    its fills were all passive."""
    return leg.escalated and any(record.escalation for record in leg.orders)


def leg_result(leg: LegState) -> LegResult:
    elapsed = None
    benchmark = benchmark_quote(leg)
    if leg.completed_at is not None and leg.submitted_at is not None:
        elapsed = (leg.completed_at - leg.submitted_at).total_seconds()
    return LegResult(
        index=leg.index,
        symbol=leg.symbol,
        side=leg.side,
        requested_qty=leg.qty,
        requested_notional=leg.spec.notional,
        filled_qty=leg.filled_qty,
        avg_fill_price=leg.avg_fill_price,
        filled_notional=leg.filled_notional,
        arrival_mid=None if benchmark is None else benchmark.mid,
        cost_bps=leg_cost_bps(leg),
        order_ids=leg.order_ids,
        repegs=leg.repegs,
        escalated=went_to_escalation(leg),
        time_to_complete_s=elapsed,
        status=leg.status,
        error=_leg_error(leg),
        reason=_leg_reason(leg),
    )


def _leg_reason(leg: LegState) -> str | None:
    """Why a leg stopped short that is no error: a skipped leg's reason, or that of a leg whose escalation was cut to
    the buying power left (`BuyingPowerCap.reason`: requested and sent quantity, buying power)."""
    cut = leg.status is LegStatus.INCOMPLETE and bool(leg.orders) and leg.orders[-1].capped is not None
    return (leg.finish_reason or None) if leg.status is LegStatus.SKIPPED or cut else None


def _left_open(leg: LegState) -> OrderRecord | None:
    """The first order of the leg's chain the broker last reported open: it may still execute."""
    for record in leg.orders:
        if record.order_id is not None and record.status is not None and not record.is_terminal:
            return record
    return None


def _may_be_open(leg: LegState) -> bool:
    """True when an order of the leg may still execute: one the broker last reported open, or the replacement of
    its named order that the run never read (as `repeg.engine.phases.orders_settled` counts them)."""
    return _left_open(leg) is not None or unread_replacement(leg.orders, leg.active_order) is not None


def run_status(legs: Sequence[LegState], skipped_trades: int) -> RunStatus:
    """completed / completed_with_skips when every leg that was not skipped filled and no order of the run may be
    left open at the broker (it could still execute: e.g. a filled sell's replacement whose cancels were refused,
    or that was never read, for which the buys were not started); else partial or failed."""
    needed = [leg for leg in legs if leg.status is not LegStatus.SKIPPED]
    if all(leg.status is LegStatus.FILLED for leg in needed) and not any(_may_be_open(leg) for leg in legs):
        any_skips = skipped_trades > 0 or len(needed) < len(legs)
        return RunStatus.COMPLETED_WITH_SKIPS if any_skips else RunStatus.COMPLETED
    if any(leg.filled_qty > ZERO for leg in needed):
        return RunStatus.PARTIAL
    return RunStatus.FAILED


def _counts(legs: Sequence[LegState], skipped_trades: int) -> LegCounts:
    def count(status: LegStatus) -> int:
        return sum(1 for leg in legs if leg.status is status)

    return LegCounts(
        total=len(legs),
        filled=count(LegStatus.FILLED),
        incomplete=count(LegStatus.INCOMPLETE) + sum(1 for leg in legs if not leg.is_done),
        skipped=count(LegStatus.SKIPPED),
        failed=count(LegStatus.FAILED),
        escalated=sum(1 for leg in legs if went_to_escalation(leg)),
        skipped_trades=skipped_trades,
    )


def build_result(state: RunState) -> ExecutionResult:
    """The result of a run from its folded state (live, or rebuilt from the journal), computed in `DECIMAL_CONTEXT`:
    the same figures whatever decimal context the caller has set."""
    with localcontext(DECIMAL_CONTEXT):
        return _result(state)


def _result(state: RunState) -> ExecutionResult:
    legs = state.legs
    return ExecutionResult(
        run_id=state.run_id,
        status=run_status(legs, len(state.skipped)),
        started_at=state.started_at,
        ended_at=state.ended_at,
        legs=tuple(leg_result(leg) for leg in legs),
        skipped=state.skipped,
        counts=_counts(legs, len(state.skipped)),
        notional_traded=sum((leg.filled_notional for leg in legs), ZERO),
        quality=summarize_quality(legs),
        buy_scale=_buy_scale(state),
    )


def journaled_result(state: RunState) -> ExecutionResult:
    """The result of a run folded from its journal, with the status the journal holds (as `repeg runs` lists it):
    a run with no end there is `unfinished`, not judged by the legs so far; one that ended `failed` (the engine
    broke, the run exited 4) stays failed, whatever its legs had filled."""
    result = build_result(state)
    status = RunStatus.UNFINISHED if state.status is None else _journaled_status(state.status, result.status)
    return result if status is result.status else result.model_copy(update={"status": status})


def _journaled_status(journaled: str, built: RunStatus) -> RunStatus:
    """The status the run ended with; the legs' when the journal's is not one this version knows."""
    try:
        return RunStatus(journaled)
    except ValueError:
        return built


def result_from_events(events: Iterable[RunEvent]) -> ExecutionResult:
    """The run's `ExecutionResult`, rebuilt from its events alone (the same fold and builder as a live run)."""
    return journaled_result(fold_run(events))


def _buy_scale(state: RunState) -> Decimal:
    """The scale of the buy phase's latest sizing: the phase that sized the buys records the buying power it sized
    against (and its scale); a buy phase a resume continues with the journaled quantities records neither."""
    scales = [
        p.scale
        for p in state.phases
        if p.side is Side.BUY and p.leg_index is None and (p.buying_power is not None or p.scale != 1)
    ]
    return scales[-1] if scales else Decimal(1)
