"""What a graceful stop did (`repeg.journal.shutdown`): the report the CLI prints on stderr before exiting 3."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from pydantic import BaseModel, ConfigDict


class StopReport(BaseModel):
    """What a graceful stop did; the CLI prints it and exits non-zero (the run is resumable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    #: Order ids whose cancel the broker accepted, but those it then showed filled in full (a fill beat the cancel).
    cancelled: tuple[str, ...]
    #: Order ids whose cancel the broker refused or failed (the run does not know them closed: they may be working).
    cancel_failed: tuple[str, ...] = ()
    unconfirmed: tuple[str, ...]
    #: Client order ids of submits and replaces the run sent whose fate the broker never told: may be working.
    unanswered: tuple[str, ...] = ()
    legs_done: int
    legs_open: int
    filled_notional: Decimal
    #: The symbol of each order named above, when the summary must name it (`stop_unjournaled`).
    symbols: dict[str, str] = {}
    #: The run announced no order: `repeg resume` refuses it; it is started again under its run id.
    sent_nothing: bool = False

    def summary(self) -> str:
        lines = [
            f"run {self.run_id} stopped: {self.legs_done} legs done, {self.legs_open} left, "
            f"notional traded {self.filled_notional:,.2f}",
            f"cancelled orders: {self._named(self.cancelled) or 'none'}",
        ]
        if self.cancel_failed:
            lines.append(f"cancel FAILED for: {self._named(self.cancel_failed)}")
        if self.unconfirmed:
            lines.append(f"cancel NOT confirmed yet for: {self._named(self.unconfirmed)}")
        if self.unanswered:
            lines.append(
                f"sent, no answer from the broker (may be working, not cancelled): {self._named(self.unanswered)}"
            )
        if self.sent_nothing:
            lines.append(f"it sent no order yet: start it again with --run-id {self.run_id}")
        else:
            lines.append(f"finish it with: repeg resume {self.run_id}")
        return "\n".join(lines)

    def _named(self, ids: Sequence[str]) -> str:
        return ", ".join(f"{i} ({self.symbols[i]})" if i in self.symbols else i for i in ids)
