"""A run as a pure fold over its events: the input of results, the journal's `show`, and `resume`.

`fold_run` rebuilds a whole run; `RunFolder` is its incremental form that live runs use (one leg update costs
O(1) however many legs the run has). Both delegate every leg change to `repeg.domain.leg_fold.apply_event`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from repeg.domain.events import (
    LegPlanned,
    LegSkipped,
    OrderIntent,
    OrderUpdated,
    PhaseEnded,
    PhaseStarted,
    RunEnded,
    RunEvent,
    RunStarted,
)
from repeg.domain.leg import LegState
from repeg.domain.leg_fold import apply_event
from repeg.domain.orders import Side
from repeg.domain.plan import Plan, SkippedTrade


class PhaseRecord(BaseModel):
    """One phase (or, in a basket, one parent order's window) as the events describe it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    side: Side
    started_at: datetime
    ended_at: datetime | None = None
    scale: Decimal = Decimal(1)
    buying_power: Decimal | None = None
    leg_index: int | None = None


class RunState(BaseModel):
    """A whole run as a fold of its events: the input of results, `show` and `resume`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    status: str | None = None
    plan: Plan | None = None
    broker: str | None = None
    legs: tuple[LegState, ...] = ()
    skipped: tuple[SkippedTrade, ...] = ()
    phases: tuple[PhaseRecord, ...] = ()

    def leg(self, index: int) -> LegState:
        for state in self.legs:
            if state.index == index:
                return state
        raise KeyError(f"run {self.run_id} has no leg {index}")


#: The events `_apply_run_level` acts on; most events (order traffic) are none of these.
_RUN_LEVEL = (RunStarted, RunEnded, LegSkipped, PhaseStarted, PhaseEnded)


class RunFolder:
    """The incremental form of `fold_run`: O(1) per leg event, for live runs with thousands of legs.

    Mutable only inside; every `LegState` it holds is immutable and produced by `apply_event`.
    """

    def __init__(self, run_id: str = "") -> None:
        self.run_id = run_id
        self.legs: dict[int, LegState] = {}
        self._by_client_id: dict[str, int] = {}
        self._header: dict[str, object] = {}
        self._skipped: list[SkippedTrade] = []
        self._phases: list[PhaseRecord] = []

    @property
    def skipped_count(self) -> int:
        """Trades skipped at planning (`LegSkipped`)."""
        return len(self._skipped)

    def leg_of(self, client_order_id: str) -> int | None:
        """The leg that announced `client_order_id`, if any."""
        return self._by_client_id.get(client_order_id)

    def apply(self, event: RunEvent) -> LegState | None:
        """Fold one event in; returns the leg it changed, if any."""
        self.run_id = self.run_id or event.run_id
        if isinstance(event, LegPlanned) and event.spec.index not in self.legs:
            self.legs[event.spec.index] = LegState(spec=event.spec)
            return self.legs[event.spec.index]
        if isinstance(event, _RUN_LEVEL):
            self._apply_run_level(event)
        index = self._leg_index(event)
        if index is None or index not in self.legs:
            if isinstance(event, PhaseStarted):
                self._start_phase_legs(event)
            return None
        state = apply_event(self.legs[index], event)
        self.legs[index] = state
        if isinstance(event, OrderIntent) and event.client_order_id is not None:
            self._by_client_id[event.client_order_id] = index
        return state

    def _leg_index(self, event: RunEvent) -> int | None:
        if event.leg_index is None and isinstance(event, OrderUpdated):
            return self._by_client_id.get(event.update.order.client_order_id)
        return event.leg_index

    def _start_phase_legs(self, event: PhaseStarted) -> None:
        for index, state in self.legs.items():
            if state.side is event.side:
                self.legs[index] = apply_event(state, event)

    def _apply_run_level(self, event: RunEvent) -> None:
        if isinstance(event, RunStarted):
            self._restart()
            self._header.update(started_at=event.ts, plan=event.plan, broker=event.broker)
        elif isinstance(event, RunEnded):
            self._header.update(ended_at=event.ts, status=event.status)
        elif isinstance(event, LegSkipped):
            self._skipped.append(event.skipped)
        elif isinstance(event, PhaseStarted):
            self._phases.append(
                PhaseRecord(
                    side=event.side,
                    started_at=event.ts,
                    scale=event.scale,
                    buying_power=event.buying_power,
                    leg_index=event.leg_index,
                )
            )
        elif isinstance(event, PhaseEnded):
            self._end_phase(event)

    def _restart(self) -> None:
        """A second `RunStarted` before any order: the run, which had not ended, was started afresh under its own
        id (see `repeg.cli.journal_run.journaled_session`), so what the first start announced (legs, skipped
        trades, an unfinished phase) is void. A run that announced orders, or that ended, is never restarted (a
        journal written before repeg stopped restarting ended runs may hold one: its end is void too). A run that
        announced orders is left as it is."""
        if self._header and not self._by_client_id:
            self.legs.clear()
            self._skipped.clear()
            self._phases.clear()
            self._header.clear()

    def _end_phase(self, event: PhaseEnded) -> None:
        for position in range(len(self._phases) - 1, -1, -1):
            phase = self._phases[position]
            if phase.side is event.side and phase.leg_index == event.leg_index and phase.ended_at is None:
                self._phases[position] = phase.model_copy(update={"ended_at": event.ts})
                return

    def snapshot(self) -> RunState:
        return RunState.model_validate(
            {
                "run_id": self.run_id,
                **self._header,
                "legs": tuple(self.legs[index] for index in sorted(self.legs)),
                "skipped": tuple(self._skipped),
                "phases": tuple(self._phases),
            }
        )


def fold_run(events: Iterable[RunEvent]) -> RunState:
    """The state of a run after `events` (in journal order). Pure: same events, same state."""
    folder = RunFolder()
    for event in events:
        folder.apply(event)
    return folder.snapshot()
