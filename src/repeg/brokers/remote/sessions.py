"""The default session of the remote simulator: H1's `SimulatedBroker` on a synthetic tape, in real time.

Every session gets the same account and symbols (from `SessionSpec`) and its own tape, seeded by the spec's
seed and the session name, starting at the moment the session is created, so independent crash cases run
side by side on one server without sharing any state.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator, model_validator

from repeg.brokers.remote.server import Session
from repeg.brokers.simulator.account import SimAccount
from repeg.brokers.simulator.broker import SimulatedBroker
from repeg.brokers.simulator.fill_models import PaperFillModel
from repeg.config import MAX_SECONDS, AsciiDecimal
from repeg.domain.plan import refuse_unplanned
from repeg.engine.clock import RealClock
from repeg.market.replay import TapeFeed
from repeg.market.synthetic import SyntheticSymbol, synthetic_tape
from repeg.simulation import MAX_QUOTES_PER_SYMBOL


class SessionSpec(BaseModel):
    """What each session of a server starts with. `duration` is at most 366 days (`MAX_SECONDS`), and each symbol's
    tape (`quotes_per_second x duration` quotes) at most `MAX_QUOTES_PER_SYMBOL`, so a session's memory stays sane."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Start prices, in ASCII digits ("\u0661\u0660" is 10 to Decimal), as the `[simulator]` table's.
    symbols: dict[str, AsciiDecimal] = Field(min_length=1)
    account: SimAccount = SimAccount()
    #: Strict: a boolean is refused, as the `[simulator]` table refuses it, not read as 1.
    seed: StrictInt = 7
    quotes_per_second: StrictFloat = Field(default=5.0, gt=0)
    duration: timedelta = timedelta(minutes=30)
    partial_rate: StrictFloat = Field(default=0.1, ge=0, le=1)
    daily_vol: StrictFloat = Field(default=0.02, ge=0, le=1)

    @field_validator("symbols")
    @classmethod
    def _symbols_as_plans_name_them(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        """A market symbol written otherwise than a plan names it ("aaa") would never meet the plan's (AAA)."""
        refuse_unplanned(value)
        return value

    @model_validator(mode="after")
    def _tape_fits_in_memory(self) -> SessionSpec:
        """Each session's tape holds `quotes_per_second x duration` quotes a symbol: 1e308 a second overflowed
        (int of inf), and 99,999 days ran the server out of memory. Bounded as the in-process simulator's market."""
        seconds = self.duration.total_seconds()
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(
                f"duration={self.duration} must be positive and at most {MAX_SECONDS:.0f} seconds"
            )
        quotes = self.quotes_per_second * seconds
        if not quotes <= MAX_QUOTES_PER_SYMBOL:
            raise ValueError(
                f"quotes_per_second x duration = {self.quotes_per_second:g} x {seconds:g} s = {quotes:g} quotes a "
                f"symbol, more than {MAX_QUOTES_PER_SYMBOL:,} (a session's tape would exhaust memory)"
            )
        return self


def _session_seed(seed: int, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}|{name}".encode()).digest()[:4], "big")


async def build_session(spec: SessionSpec, name: str) -> Session:
    """A fresh simulated broker whose tape starts now (must run inside the server's event loop)."""
    clock = RealClock()
    seed = _session_seed(spec.seed, name)
    symbols = [
        SyntheticSymbol(symbol=symbol, start_price=price, daily_vol=spec.daily_vol)
        for symbol, price in sorted(spec.symbols.items())
    ]
    n_quotes = max(len(symbols), int(spec.quotes_per_second * spec.duration.total_seconds() * len(symbols)))
    tape = synthetic_tape(
        symbols,
        seed=seed,
        n_quotes=n_quotes,
        start=clock.now() - timedelta(seconds=1),
        duration=spec.duration,
    )
    broker = SimulatedBroker(
        tape,
        clock,
        spec.account,
        fill_model=PaperFillModel(tape, seed=seed, partial_rate=spec.partial_rate),
        checks_ownership=False,  # each client (`RemoteBroker`) checks its own run's ids
    )
    return Session(broker=broker, feed=TapeFeed(tape, clock))
