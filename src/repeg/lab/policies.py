"""Execution policies as configuration: a `PolicySpec` (from a name or a TOML table) becomes an `ExecutionPolicy`.

Kinds:

- `market`: a market order at arrival (the baseline every other policy is compared with).
- `touch-then-market`: a limit at the near touch at arrival; after `wait_seconds` (or at the deadline) the remainder
  escalates to the market. With `follow = true` the limit follows the near touch as it moves.
- `ladder`: the engine's own `LadderPolicy`, parameterised through `ExecutionConfig` (start fraction, steps, wait per
  step, escalation style).
- `adaptive`: `repeg.lab.adaptive`'s rule, with parameters fitted on another day (`repeg.lab.fit`).

Every policy answers the engine's `ExecutionPolicy.decide(leg, quote, verdict, now)`. Their common rules: nothing
is decided while the broker is answering; an escalated leg sends its remainder at market; at the deadline
(`phase_started_at + max_total_wait`, the parent order's time budget) whatever remains escalates; a market order
working (a cross at arrival too) is left to fill, never escalated, as the engine's ladder leaves it
(`works_at_market`). The adaptive policy's cross is a market order of its plan only before any of the leg's limits
went out; after one it escalates, also from an idle leg (its limit cancelled for a re-peg). Prices are Decimal on the legal tick grid (`repeg.domain.ticks`).

The adaptive policy's trend feature is the mid's change since the quote in force a lookback before the current
quote, as the fit measures it (`repeg.lab.fit`). A replay tells that past quote from its tape
(`quote_in_force_at`): the policy is only shown quotes while one of its orders is live, so its own memory of an
earlier order's quotes, minutes old, is no measure of the last few seconds at a new order's arrival. Without that
hook it keeps the recent mids of each symbol it has been shown. Either way it is a deterministic function of the
sequence of calls, so a replay is reproducible. The engine wakes a
policy only when it asks to be woken, so to decide at every quote the adaptive policy asks for the next quote's
time when it can be told (`next_quote_at`, which a replay provides from its tape); otherwise it polls every
`poll_seconds`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from repeg.config import (
    MAX_ESCALATION_COLLAR_BPS,
    EscalationStyle,
    ExecutionConfig,
    RepegSteps,
    Seconds,
    config_from_mapping,
    is_wrong_kind,
    missing_or_refused,
    refused,
)
from repeg.domain.leg import REASON_ESCALATE, REASON_INITIAL, REASON_REMAINDER, REASON_REPEG, LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import OrderType
from repeg.domain.quote import Quote, QuoteVerdict
from repeg.domain.ticks import tick_size, to_units
from repeg.errors import ConfigError
from repeg.lab.adaptive import (
    BookState,
    Choice,
    Move,
    TrendTracker,
    book_state,
    choose,
    rest_price,
    state_cell,
)
from repeg.lab.fit import AdaptiveParams
from repeg.market.tape import from_ns, to_ns
from repeg.policy.decide import (
    Action,
    Escalate,
    ExecutionPolicy,
    LadderPolicy,
    Replace,
    Skip,
    Submit,
    Wait,
    works_at_market,
)
from repeg.policy.pricing import initial_limit

#: `(symbol, now) -> time of the symbol's next quote after now` (None when unknown or none).
NextQuoteAt = Callable[[str, datetime], datetime | None]
#: `(symbol, at) -> the last valid quote of the symbol at or before the past instant at` (None when none).
QuoteInForceAt = Callable[[str, datetime], Quote | None]

_WAITING_FOR_BROKER = frozenset({LegStatus.SUBMITTING, LegStatus.REPLACING, LegStatus.CANCELING})
_IDLE_WAIT = Wait()
#: `OrderIntent.reason` of a policy that chooses to cross (not an escalation forced by time).
REASON_CROSS = "cross"


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = ""


class MarketSpec(_Spec):
    kind: Literal["market"] = "market"


class TouchThenMarketSpec(_Spec):
    kind: Literal["touch-then-market"] = "touch-then-market"
    wait_seconds: Seconds = Field(default=30.0, gt=0)
    follow: bool = False


class LadderSpec(_Spec):
    """The engine's ladder: its keys are bounded as `ExecutionConfig` bounds them, so that a bad value is refused
    when the spec is read (a sweep's grid before any point runs), not when a backtest builds the policy. The
    collar against `price_collar_pct` is checked then (`ladder_config`): that bound is the run's, not the spec's.
    """

    kind: Literal["ladder"] = "ladder"
    initial_offset: Decimal = Field(default=Decimal(0), ge=0, le=1)
    repeg_steps: RepegSteps = (Decimal("0.5"), Decimal("0.75"), Decimal("1.0"))
    fill_wait_seconds: Seconds = Field(default=10.0, gt=0)
    escalation: EscalationStyle = EscalationStyle.MARKET
    escalation_collar_bps: Decimal = Field(default=Decimal(50), gt=0, lt=MAX_ESCALATION_COLLAR_BPS)


class AdaptiveSpec(_Spec):
    kind: Literal["adaptive"] = "adaptive"
    #: JSON written by `repeg.lab.fit.save_params`; when absent the caller must supply fitted parameters.
    params_file: str | None = None
    #: Re-price only when the new choice is expected cheaper by more than this many $0.0001 units.
    margin_units: float = Field(default=5.0, ge=0)
    #: Re-decide at least this often even when no quote arrives.
    poll_seconds: Seconds = Field(default=1.0, gt=0)

    @field_validator("margin_units", mode="before")
    @classmethod
    def _margin_not_a_boolean(cls, value: object) -> object:
        if isinstance(value, bool):  # pydantic would read TOML `true` as 1 unit
            raise PydanticCustomError("float_type", "must be a number of $0.0001 units, not a boolean")
        return value


PolicySpec = Annotated[
    MarketSpec | TouchThenMarketSpec | LadderSpec | AdaptiveSpec, Field(discriminator="kind")
]


class _SpecHolder(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: PolicySpec


_ENGINE_DEFAULT = ExecutionConfig()

#: The engine's default schedule (`ExecutionConfig()`), as a lab policy: rest at the mid for one second, then
#: cross at the far touch. Chosen on the FIT day (2018-01-02) as the fixed schedule with the lowest cost under the
#: paper rule, then confirmed out of sample on 2018-01-03: not worse than a market order under `paper`, cheaper
#: under `queue` (docs/EXECUTION_QUALITY.md). Derived from the config so that the two cannot drift apart.
DEFAULT_SPEC = LadderSpec(
    name="default",
    initial_offset=_ENGINE_DEFAULT.initial_offset,
    repeg_steps=_ENGINE_DEFAULT.repeg_steps,
    fill_wait_seconds=_ENGINE_DEFAULT.fill_wait_seconds,
)

#: Named policies usable on the command line instead of a TOML file. `ladder` is the classic ladder (join, then
#: 0.5/0.75/1.0 of the spread every 10 s: `repeg.config.classic_ladder()`), `default` the engine's default.
NAMED: dict[str, PolicySpec] = {
    "market": MarketSpec(name="market"),
    "touch-then-market": TouchThenMarketSpec(name="touch-then-market"),
    "ladder": LadderSpec(name="ladder"),
    "adaptive": AdaptiveSpec(name="adaptive"),
    "default": DEFAULT_SPEC,
}


def policy_spec(text: str, option: str = "--policy") -> PolicySpec:
    """A named policy (`market`, `touch-then-market`, `ladder`, `adaptive`, `default`) or a TOML file path.

    A TOML file holds a `[policy]` table (or the table itself at top level) with `kind` and its parameters. A
    refusal of `text` itself names `option`, the command's option that gave it.
    """
    if text in NAMED:
        return NAMED[text]
    path = Path(text)
    known = ", ".join(sorted(NAMED))
    if path.is_dir():  # said in words, not as the errno reading it would raise
        raise ConfigError(option, text, "a directory, not a policy name or TOML file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(option, text, f"unknown policy (known: {known}) and no such TOML file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            option, text, f"neither a known policy name ({known}) nor a readable TOML file: {exc}"
        ) from exc
    except RecursionError:  # tables or arrays nested beyond the parser's depth: this file is at fault
        raise ConfigError(option, text, "cannot read TOML: nested too deeply") from None
    table = raw.get("policy", raw)
    try:
        spec = _SpecHolder.model_validate({"policy": table}).policy
    except ValidationError as exc:
        raise spec_refused(exc, prefix=("policy",)) from None  # pydantic's text prints the input: not chained
    return spec if spec.name else spec.model_copy(update={"name": path.stem})


def spec_error(exc: ValidationError, prefix: tuple[str, ...] = ()) -> tuple[str, object, str]:
    """(key, value, reason) of the first error validating a `PolicySpec` (under `prefix` in the document).

    The key is the one the user wrote (`policy.wait_seconds`), without the union's tag (the policy kind) that
    pydantic puts in the location; a missing or unknown kind is named as the `kind` key.
    """
    first = exc.errors()[0]
    loc = first["loc"][len(prefix) :]
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        given = first.get("input")
        kind = given.get("kind") if isinstance(given, Mapping) else given
        return ".".join((*prefix, "kind")), kind, first["msg"]
    # A spec's own errors sit under its kind's tag (loc[0]); the rest of the location is the key.
    return ".".join((*prefix, *(str(part) for part in loc[1:]))), first.get("input"), first["msg"]


def spec_refused(exc: ValidationError, prefix: tuple[str, ...] = ()) -> ConfigError:
    """The `ConfigError` of the first error validating a `PolicySpec`, keyed as `spec_error` keys it, its value
    shown as every configuration error's is (`repeg.config.refused`): never an unknown key's, nor a text of
    another kind than the key takes (it may be a secret pasted on the wrong line)."""
    first = exc.errors()[0]
    key, value, reason = spec_error(exc, prefix)
    if first["type"] in ("missing", "extra_forbidden"):
        return missing_or_refused(first, key)
    if first["type"] == "union_tag_invalid":  # pydantic's text quotes the tag given: said without it
        reason = f"unknown policy kind (known: {first.get('ctx', {}).get('expected_tags')})"
    return refused(key, value, reason, wrong_kind=is_wrong_kind(first))


def said(error: ConfigError) -> str:
    """`key=value: reason` of a refusal, `key: reason` when it shows no value: as `ConfigError` words it."""
    return str(error).removeprefix("config ")


def spec_params(spec: PolicySpec) -> dict[str, str]:
    """The spec's fields as strings, for the saved result."""
    return {k: str(v) for k, v in spec.model_dump(mode="json").items()}


def ladder_config(spec: LadderSpec, base: ExecutionConfig) -> ExecutionConfig:
    """`base` with the ladder's pricing and timing (validated like any config); the budget stays `base`'s."""
    data = base.model_dump()
    data.update(
        initial_offset=spec.initial_offset,
        repeg_steps=spec.repeg_steps,
        # The time budget (`max_total_wait`) is the order's, never stretched by a longer wait per step.
        fill_wait_seconds=min(spec.fill_wait_seconds, base.max_total_wait),
        escalation=spec.escalation,
        escalation_collar_bps=spec.escalation_collar_bps,
    )
    return config_from_mapping(data)  # refused as any configuration is (`refused`), not chained to pydantic's


def run_config(spec: PolicySpec, base: ExecutionConfig) -> ExecutionConfig:
    """The configuration the engine runs a spec under: the ladder's own timing, else `base` unchanged."""
    return ladder_config(spec, base) if isinstance(spec, LadderSpec) else base


def build_policy(
    spec: PolicySpec,
    config: ExecutionConfig,
    *,
    adaptive_params: AdaptiveParams | None = None,
    next_quote_at: NextQuoteAt | None = None,
    quote_in_force_at: QuoteInForceAt | None = None,
) -> ExecutionPolicy:
    """The `ExecutionPolicy` of a spec under the run's `config` (whose `max_total_wait` is the time budget).

    `next_quote_at(symbol, now)` (optional) tells when the symbol's next quote arrives, so that the adaptive policy
    decides at every quote of a replay instead of every `poll_seconds`; `quote_in_force_at(symbol, at)` (optional)
    tells the quote in force at a past instant, from which the adaptive policy measures its trend.
    """
    if isinstance(spec, MarketSpec):
        return MarketPolicy(config)
    if isinstance(spec, TouchThenMarketSpec):
        return TouchThenMarketPolicy(config, wait=timedelta(seconds=spec.wait_seconds), follow=spec.follow)
    if isinstance(spec, LadderSpec):
        return LadderPolicy(ladder_config(spec, config))
    if adaptive_params is None:
        raise ConfigError(
            "policy.params_file", spec.params_file, "the adaptive policy needs fitted parameters"
        )
    return AdaptivePolicy(
        config, adaptive_params, spec, next_quote_at=next_quote_at, quote_in_force_at=quote_in_force_at
    )


class _Common:
    """Rules every lab policy shares: broker waits, escalated remainders, the deadline."""

    def __init__(self, config: ExecutionConfig) -> None:
        self._config = config
        self._poll = config.check_interval

    def _deadline(self, leg: LegState, now: datetime) -> datetime:
        return (leg.phase_started_at or now) + self._config.total_wait

    def _preamble(self, leg: LegState, now: datetime) -> Action | None:
        """The action forced by the leg's state, or None when the policy itself must decide."""
        # A market order working is left to fill: escalating it (a deliberate cross too) would cancel it and send
        # the same order again, as the engine's ladder says (`works_at_market`).
        if leg.is_done or leg.status in _WAITING_FOR_BROKER or works_at_market(leg):
            return _IDLE_WAIT
        if leg.escalated:
            if leg.status in (LegStatus.IDLE, LegStatus.PLANNED):
                return Submit(order_type=OrderType.MARKET, reason=REASON_ESCALATE)
            return _IDLE_WAIT
        if now >= self._deadline(leg, now):
            if leg.status is LegStatus.PLANNED:
                return Skip(reason=f"no valid quote within the {self._config.max_total_wait}s budget")
            return Escalate(reason="deadline")
        return None

    def _wait(self, leg: LegState, now: datetime, until: datetime | None = None) -> Wait:
        wake = min(self._deadline(leg, now), now + self._poll)
        return Wait(until=wake if until is None else min(wake, until))


class MarketPolicy(_Common):
    """A market order at arrival, once a valid quote is seen; a remainder (partial fill) goes at market too."""

    def decide(self, leg: LegState, quote: Quote | None, verdict: QuoteVerdict, now: datetime) -> Action:
        del quote  # a market order needs no price, only a valid quote to have been seen
        forced = self._preamble(leg, now)
        if forced is not None:
            return forced
        if verdict is not QuoteVerdict.VALID and leg.status is LegStatus.PLANNED:
            return self._wait(leg, now)
        reason = REASON_INITIAL if leg.status is LegStatus.PLANNED else REASON_REMAINDER
        if leg.status in (LegStatus.PLANNED, LegStatus.IDLE):
            return Submit(order_type=OrderType.MARKET, reason=reason)
        return _IDLE_WAIT


class TouchThenMarketPolicy(_Common):
    """Join the near touch; escalate the remainder after `wait` from the first submission (or at the deadline)."""

    def __init__(self, config: ExecutionConfig, *, wait: timedelta, follow: bool) -> None:
        super().__init__(config)
        self._touch_wait = wait
        self._follow = follow

    def decide(self, leg: LegState, quote: Quote | None, verdict: QuoteVerdict, now: datetime) -> Action:
        forced = self._preamble(leg, now)
        if forced is not None:
            return forced
        valid = quote if verdict is QuoteVerdict.VALID else None
        give_up = (leg.submitted_at or now) + self._touch_wait
        if leg.status is not LegStatus.PLANNED and now >= give_up:
            return Escalate(reason="touch_timeout")
        if valid is None:
            return self._wait(leg, now, give_up)
        return self._at_touch(leg, initial_limit(valid, leg.side, Decimal(0)), now, give_up)

    def _at_touch(self, leg: LegState, touch: Decimal, now: datetime, give_up: datetime) -> Action:
        if leg.status in (LegStatus.PLANNED, LegStatus.IDLE):
            reason = REASON_INITIAL if leg.status is LegStatus.PLANNED else REASON_REMAINDER
            return Submit(order_type=OrderType.LIMIT, limit_price=touch, step=0, reason=reason)
        if self._follow and touch != leg.limit_price:
            return Replace(limit_price=touch, step=0, reason=REASON_REPEG)
        return self._wait(leg, now, give_up)


def _rested(leg: LegState) -> bool:
    """True when a limit order of the leg went out (it rested, or was sent to)."""
    return any(record.order_type is OrderType.LIMIT for record in leg.orders)


def _mid2(quote: Quote) -> int:
    """Twice the quote's mid in $0.0001 units (exact)."""
    return to_units(quote.bid) + to_units(quote.ask)


class AdaptivePolicy(_Common):
    """Rest, re-price or cross at each decision, by the fitted table (see `repeg.lab.adaptive`)."""

    def __init__(
        self,
        config: ExecutionConfig,
        params: AdaptiveParams,
        spec: AdaptiveSpec,
        *,
        next_quote_at: NextQuoteAt | None = None,
        quote_in_force_at: QuoteInForceAt | None = None,
    ) -> None:
        super().__init__(config)
        self._next_quote_at = next_quote_at
        self._quote_in_force_at = quote_in_force_at
        self._params = params
        self._margin = spec.margin_units
        self._poll = timedelta(seconds=spec.poll_seconds)
        self._lookback_ns = int(params.config.trend_lookback_s * 1e9)
        self._trends: dict[str, TrendTracker] = {}
        self._last_seen: dict[str, datetime] = {}

    def _trend2(self, quote: Quote) -> int:
        """The mid's recent change (see adaptive): from the replay's quote in force a lookback before `quote` when
        it can tell, else from the quotes this policy was shown (recording `quote` if it is newer than any seen)."""
        if self._quote_in_force_at is not None:
            past = self._quote_in_force_at(quote.symbol, from_ns(to_ns(quote.ts) - self._lookback_ns))
            return 0 if past is None else _mid2(quote) - _mid2(past)
        tracker = self._trends.setdefault(quote.symbol, TrendTracker(self._lookback_ns))
        last = self._last_seen.get(quote.symbol)
        if last is None or quote.ts > last:
            tracker.record(to_ns(quote.ts), to_units(quote.bid), to_units(quote.ask))
            self._last_seen[quote.symbol] = quote.ts
        return tracker.trend2(to_ns(quote.ts))

    def decide(self, leg: LegState, quote: Quote | None, verdict: QuoteVerdict, now: datetime) -> Action:
        trend = self._trend2(quote) if quote is not None and verdict is QuoteVerdict.VALID else 0
        forced = self._preamble(leg, now)
        if forced is not None:
            return forced
        if quote is None or verdict is not QuoteVerdict.VALID:
            return self._wait(leg, now)
        remaining = (self._deadline(leg, now) - now).total_seconds()
        state = book_state(quote, leg.side, trend)
        return self._act(leg, quote, state, choose(self._params, state, remaining), now)

    def _act(self, leg: LegState, quote: Quote, state: BookState, choice: Choice, now: datetime) -> Action:
        idle = leg.status in (LegStatus.PLANNED, LegStatus.IDLE)
        if choice.move is Move.CROSS:
            # A cross is the plan only before any limit rested; after one (working, or cancelled for a re-peg of a
            # part-filled order, leaving the leg idle) it gives resting up: an escalation, wherever the leg stands.
            return (
                Submit(order_type=OrderType.MARKET, reason=REASON_CROSS)
                if idle and not _rested(leg)
                else Escalate(reason=REASON_CROSS)
            )
        price = rest_price(quote, leg.side, choice.offset_ticks, tick_size(quote.bid))
        if idle:
            reason = REASON_INITIAL if leg.status is LegStatus.PLANNED else REASON_REMAINDER
            return Submit(order_type=OrderType.LIMIT, limit_price=price, step=0, reason=reason)
        if price != leg.limit_price and self._worth_moving(leg, state, choice):
            return Replace(limit_price=price, step=0, reason=REASON_REPEG)
        return self._wait(leg, now, self._next_quote(leg, now))

    def _next_quote(self, leg: LegState, now: datetime) -> datetime | None:
        """When the next quote of the leg's symbol arrives, if the caller can tell (a replay can): wake then."""
        return None if self._next_quote_at is None else self._next_quote_at(leg.symbol, now)

    def _worth_moving(self, leg: LegState, state: BookState, choice: Choice) -> bool:
        """Hysteresis: move a resting limit only off a price the table cannot value, or for a saving > margin."""
        current = leg.limit_price
        if current is None or choice.horizon_s is None:
            return True
        tick_units = self._params.config.tick_units
        inside = (to_units(current) - state.near) * leg.side.sign
        if inside < 0 or inside % tick_units != 0 or inside >= state.spread:
            return True  # behind the touch, off the grid, or at the far touch: the table does not apply
        held = self._params.cost(choice.horizon_s, inside // tick_units, state_cell(self._params, state))
        return held is None or choice.expected_cost + self._margin < held
