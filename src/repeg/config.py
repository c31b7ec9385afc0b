"""Execution configuration: every tunable of a run, validated once at start.

`load_config` (a TOML file) and `config_from_mapping` (a mapping) turn settings into an `ExecutionConfig`; any bad
key raises `ConfigError` naming the key and the value (a value that could be a pasted secret is named by its kind
instead: `refused`), before anything is sent.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping
from datetime import date, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from repeg.domain.plan import plain_number_text
from repeg.errors import ConfigError

#: The keys that are times in seconds (floats, turned into `timedelta`s).
TIME_KEYS = (
    "fill_wait_seconds",
    "wait_between_checks",
    "max_total_wait",
    "grace_window",
    "quote_max_age",
    "quote_wait",
)
#: The longest time any key may hold: 366 days. Larger values (or inf) overflow `timedelta` or the clock.
MAX_SECONDS = 366 * 24 * 3600.0
#: The refusal of a longer time, wherever a time is read (a key, a latency, a basket's budget).
OVER_MAX_SECONDS = f"must be at most {MAX_SECONDS:.0f} seconds ({MAX_SECONDS / 86400:.0f} days)"
ZERO_SECONDS = 0.0
#: Basis points in one percent (`escalation_collar_bps` against `price_collar_pct`).
BPS_PER_PCT = Decimal(100)
#: The shortest positive time: `timedelta` keeps microseconds, so less would silently become zero.
MIN_POSITIVE_SECONDS = 1e-6


#: The largest `max_spread_pct` and `price_collar_pct`: far beyond any meaningful bound (a spread is under 200%
#: of its mid), and small enough that pricing with them never overflows Decimal (1e999999 did: exit 1).
MAX_PCT = Decimal(1_000_000)

#: `escalation_collar_bps` must stay under 100%: a sell collar of 100% or more bounds nothing (its limit would be
#: the lowest legal price).
MAX_ESCALATION_COLLAR_BPS = 10_000


def seconds_not_a_boolean(value: object) -> object:
    """Refuse a boolean where a time is expected (pydantic would read TOML `true` as 1.0 s), and NaN (TOML `nan`,
    which the bounds would refuse with a reason that does not fit it: "should be greater than 0")."""
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "must be a number of seconds, not a boolean")
    if isinstance(value, float) and math.isnan(value):
        raise PydanticCustomError("finite_number", "must be a number of seconds, not NaN")
    return value


def seconds_representable(value: float) -> float:
    """Refuse a time the clock cannot hold (over 366 days, inf) or that `timedelta` would silently make zero."""
    if not value <= MAX_SECONDS:
        raise ValueError(OVER_MAX_SECONDS)
    if ZERO_SECONDS < value < MIN_POSITIVE_SECONDS:
        raise ValueError(f"a positive time must be at least {MIN_POSITIVE_SECONDS} seconds (one microsecond)")
    return value


def repeg_steps_valid(steps: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
    """Re-peg steps: not empty, each in (0, 1], strictly increasing."""
    if not steps:
        raise ValueError("must not be empty")
    for step in steps:
        if not Decimal(0) < step <= Decimal(1):
            raise ValueError(f"step {step} is outside (0, 1]")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise ValueError("steps must be strictly increasing")
    return steps


def ascii_number(value: object) -> object:
    """Refuse a number written as text in digits other than ASCII 0-9, or with Python's `_` digit separators:
    `Decimal` reads any script's ("\u0661\u0660" is 10) and "1_0" as 10, where a plan, a quote file and every
    broker take plain ASCII digits only."""
    if isinstance(value, str) and not plain_number_text(value):
        raise PydanticCustomError("decimal_parsing", "must be a number written in ASCII digits, without '_'")
    return value


def not_negative_zero(value: float | Decimal) -> float | Decimal:
    """Refuse -0 on a key that takes 0 or more: a sign the user wrote, refused as a plan's or a quote file's -0."""
    if value == 0 and math.copysign(1.0, value) < 0:
        raise PydanticCustomError("greater_than_equal", "must be 0 or more, not -0")
    return value


#: A decimal key's value (a number, or a number written as text in ASCII digits).
AsciiDecimal = Annotated[Decimal, BeforeValidator(ascii_number)]
#: The keys that take 0 or more (a -0 is refused on them: `not_negative_zero`).
NON_NEGATIVE_KEYS = ("initial_offset", "grace_window", "quote_wait", "min_notional")


#: A time in seconds validated as `ExecutionConfig`'s time keys are (add the sign bound with `Field`); for other
#: models that take the same kind of key (the lab's policy specs).
Seconds = Annotated[float, BeforeValidator(seconds_not_a_boolean), AfterValidator(seconds_representable)]
#: Re-peg steps validated as `ExecutionConfig.repeg_steps` is.
RepegSteps = Annotated[tuple[AsciiDecimal, ...], AfterValidator(repeg_steps_valid)]


_JOURNALED = "journaled"


def _journaled(info: ValidationInfo) -> bool:
    """Validating a run's journaled configuration (`config_from_mapping(..., journaled=True)`)."""
    return isinstance(info.context, dict) and info.context.get(_JOURNALED) is True


def _key_error(key: str, value: object, message: str, context: dict[str, str]) -> ValidationError:
    """A validation error of a check across keys, located at `key` (so that `ConfigError` names it)."""
    error = PydanticCustomError("config_cross_check", message, context)
    details = InitErrorDetails(type=error, loc=(key,), input=value)
    return ValidationError.from_exception_data("ExecutionConfig", [details])


class OnNoQuote(StrEnum):
    SKIP = "skip"
    MARKET = "market"


class EscalationStyle(StrEnum):
    MARKET = "market"
    #: A marketable limit at the far touch plus `escalation_collar_bps`: bounded slippage, may not fill.
    COLLARED_LIMIT = "collared_limit"


class ExecutionConfig(BaseModel):
    """How orders are priced, re-pegged, escalated and monitored. Times are in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # pricing and schedule. The defaults (rest at the mid for 1 s, then re-peg to the far touch, then escalate)
    # were chosen on one replayed day and confirmed on another: under Alpaca's paper fill rule every schedule
    # that rests longer cost more than a market order (docs/EXECUTION_QUALITY.md). `CLASSIC_LADDER` keeps the
    # original join-then-0.5/0.75/1.0-every-10-s schedule for those who want it.
    initial_offset: AsciiDecimal = Field(default=Decimal("0.5"), ge=0, le=1)
    repeg_steps: tuple[AsciiDecimal, ...] = (Decimal("1.0"),)
    # timing
    fill_wait_seconds: float = Field(default=1.0, gt=0)
    wait_between_checks: float = Field(default=1.0, gt=0)
    max_total_wait: float = Field(default=120.0, gt=0, validate_default=True)  # checked against fill_wait
    grace_window: float = Field(default=5.0, ge=0)
    # quotes
    quote_max_age: float = Field(default=5.0, gt=0)
    max_spread_pct: AsciiDecimal = Field(default=Decimal(10), gt=0)
    quote_wait: float = Field(default=30.0, ge=0)
    on_no_quote: OnNoQuote = OnNoQuote.SKIP
    # escalation
    escalation: EscalationStyle = EscalationStyle.MARKET
    # under 100%: a sell collar of 100% or more bounds nothing (its limit would be the lowest legal price)
    escalation_collar_bps: AsciiDecimal = Field(default=Decimal(50), gt=0, lt=MAX_ESCALATION_COLLAR_BPS)
    # safety rails
    max_order_notional: AsciiDecimal | None = Field(default=None, gt=0)
    max_run_notional: AsciiDecimal | None = Field(default=None, gt=0)
    price_collar_pct: AsciiDecimal = Field(default=Decimal(5), gt=0)
    min_notional: AsciiDecimal = Field(default=Decimal(1), ge=0)

    @field_validator("repeg_steps")
    @classmethod
    def _steps_increasing_in_unit_interval(cls, steps: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
        return repeg_steps_valid(steps)

    @field_validator(*NON_NEGATIVE_KEYS)
    @classmethod
    def _not_negative_zero(cls, value: float | Decimal, info: ValidationInfo) -> float | Decimal:
        """A journaled -0 (which an earlier repeg accepted) is read back as it was, to resume its run."""
        return value if _journaled(info) else not_negative_zero(value)

    @field_validator("max_spread_pct", "price_collar_pct")
    @classmethod
    def _pct_at_most_max(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        """At most `MAX_PCT` in a new configuration; a journaled one keeps what an earlier repeg (with no bound)
        started the run under, so that the run resumes under it (`config_from_mapping`)."""
        if value > MAX_PCT and not _journaled(info):
            raise ValueError(f"must be at most {MAX_PCT} (percent)")
        return value

    @field_validator(*TIME_KEYS, mode="before")
    @classmethod
    def _time_not_a_boolean(cls, value: object) -> object:
        return seconds_not_a_boolean(value)

    @field_validator(*TIME_KEYS)
    @classmethod
    def _time_representable(cls, value: float) -> float:
        return seconds_representable(value)

    @field_validator("max_total_wait")
    @classmethod
    def _total_wait_covers_fill_wait(cls, value: float, info: ValidationInfo) -> float:
        fill_wait = info.data.get("fill_wait_seconds")
        if fill_wait is not None and value < fill_wait:
            raise ValueError("max_total_wait must be at least fill_wait_seconds")
        return value

    @model_validator(mode="after")
    def _escalation_collar_within_price_collar(self, info: ValidationInfo) -> ExecutionConfig:
        """A collared escalation limit lies `escalation_collar_bps` beyond the far touch, itself beyond the mid, so
        a collar at least as wide as `price_collar_pct` puts it outside the price collar already at the arrival
        quote (but for a tick of rounding): the escalation is refused mid-run unless the market moved the order's
        way, and the leg fails after its passive phase. Refused here, naming escalation_collar_bps."""
        if _journaled(info):
            return self
        bps = self.escalation_collar_bps
        limit_bps = self.price_collar_pct * BPS_PER_PCT
        if self.escalation is EscalationStyle.COLLARED_LIMIT and bps >= limit_bps:
            message = (
                "a collared escalation must be narrower than price_collar_pct ({pct}% = {limit} bps): "
                "its limit would be refused by the price collar already at the arrival quote"
            )
            context = {"pct": str(self.price_collar_pct), "limit": str(limit_bps)}
            raise _key_error("escalation_collar_bps", bps, message, context)
        return self

    @model_validator(mode="after")
    def _first_step_not_behind_initial_offset(self, info: ValidationInfo) -> ExecutionConfig:
        """The initial limit and every re-peg price lie at `near + fraction x spread`, so a first step under
        `initial_offset` re-prices a working order away from the far side (a buy from 100.06 to 100.04 on a
        100.00/100.08 quote with 0.75 then 0.5). Refused here, naming initial_offset; an equal first step is
        allowed (it follows a moved market at the same fraction)."""
        if _journaled(info):
            return self
        first = self.repeg_steps[0]
        if self.initial_offset > first:
            message = (
                "must not exceed the first re-peg step ({first}): that re-peg would move the order away from "
                "the far side of the spread"
            )
            raise _key_error("initial_offset", self.initial_offset, message, {"first": str(first)})
        return self

    @model_validator(mode="after")
    def _min_notional_within_notional_limits(self, info: ValidationInfo) -> ExecutionConfig:
        """A trade under `min_notional` is skipped and one over a notional limit refuses the plan: a `min_notional`
        above either limit leaves no trade that can be sent. Refused here, naming min_notional."""
        if _journaled(info):
            return self
        limits = (
            ("max_order_notional", self.max_order_notional),
            ("max_run_notional", self.max_run_notional),
        )
        for name, limit in limits:
            if limit is not None and self.min_notional > limit:
                message = (
                    "must not exceed {name} ({limit}): every trade would be skipped under min_notional "
                    "or refuse the plan over {name}"
                )
                raise _key_error(
                    "min_notional", self.min_notional, message, {"name": name, "limit": str(limit)}
                )
        return self

    @property
    def max_repegs(self) -> int:
        return len(self.repeg_steps)

    @property
    def fill_wait(self) -> timedelta:
        return timedelta(seconds=self.fill_wait_seconds)

    @property
    def check_interval(self) -> timedelta:
        return timedelta(seconds=self.wait_between_checks)

    @property
    def total_wait(self) -> timedelta:
        return timedelta(seconds=self.max_total_wait)

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.grace_window)

    @property
    def quote_age_limit(self) -> timedelta:
        return timedelta(seconds=self.quote_max_age)

    @property
    def quote_wait_limit(self) -> timedelta:
        return timedelta(seconds=self.quote_wait)


#: Issue 2's original schedule: join the near touch, re-peg to 0.5, 0.75, then 1.0 of the spread every 10 s.
CLASSIC_LADDER: dict[str, object] = {
    "initial_offset": Decimal(0),
    "repeg_steps": (Decimal("0.5"), Decimal("0.75"), Decimal("1.0")),
    "fill_wait_seconds": 10.0,
}


def classic_ladder(**overrides: object) -> ExecutionConfig:
    """The classic ladder schedule, with any other keys overridden (validated like any config)."""
    return config_from_mapping({**CLASSIC_LADDER, **overrides})


def config_from_mapping(data: Mapping[str, object], *, journaled: bool = False) -> ExecutionConfig:
    """Validate a mapping (e.g. the `[execution]` table of a TOML file); errors name the first bad key.

    `journaled`: the configuration a run journaled when it started (`RunStarted.config`), read to resume the run.
    Each key is checked, but not the checks across keys nor the percentages' `MAX_PCT`: a later repeg may have added
    one, and a run started under a configuration an earlier repeg accepted (its orders possibly working at the
    broker) must resume under it.
    """
    try:
        return ExecutionConfig.model_validate(dict(data), context={_JOURNALED: True} if journaled else None)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "<config>"
        # Not chained to pydantic's error: its text prints the input, which a ConfigError may withhold.
        if first["type"] == "extra_forbidden":
            raise missing_or_refused(first, key) from None
        # The value as written: a check across keys sees (and would report) the parsed one.
        if key in data:
            raise refused(key, data[key], first["msg"], wrong_kind=is_wrong_kind(first)) from None
        if key in ExecutionConfig.model_fields:  # a default a check across keys refused: say it is one
            default = _as_written(first.get("input"))
            note = f"{first['msg']} ({key} is not set: {default} is its default)"
            raise ConfigError(key, default, note) from exc
        raise missing_or_refused(first, key) from None


def as_config(config: ExecutionConfig | Mapping[str, object] | None) -> ExecutionConfig:
    """The configuration a Python caller gave: a model as it is, a mapping of its keys (as the `[execution]` table
    of a TOML file) validated by `config_from_mapping`, None the defaults; anything else is a `ConfigError`."""
    if config is None:
        return ExecutionConfig()
    if isinstance(config, ExecutionConfig):
        return config
    if isinstance(config, Mapping):
        return config_from_mapping(config)
    raise refused("config", config, "must be an ExecutionConfig or a mapping of its keys", wrong_kind=True)


def _as_written(value: object) -> object:
    """A value as a TOML file writes it: a Decimal as its text (0.5), never Python's repr (Decimal('0.5'))."""
    return str(value) if isinstance(value, Decimal) else value


#: The tables of a run configuration file (`repeg run --config`, `repeg.cli.settings`; `load_config` reads the first).
RUN_TABLES = ("execution", "simulator")


def check_run_tables(raw: Mapping[str, object], tables: tuple[str, ...] = RUN_TABLES) -> None:
    """Refuse what a run configuration file holds outside its `tables`: an unknown table (a typo, `[executon]`,
    would silently leave the defaults) or a key outside every table (read by nothing).

    An unknown table is named without its content (e.g. an `[alpaca]` table holds keys); a key outside the tables
    that belongs under `[execution]` is shown as written, with where to put it.
    """
    for key, value in raw.items():
        if key in tables:
            continue
        if isinstance(value, Mapping):
            raise ConfigError(key, None, f"unknown table (known: {', '.join(tables)})")
        if key in ExecutionConfig.model_fields:
            raise refused(key, value, "outside every table: put it under [execution]")
        where = " or ".join(f"[{table}]" for table in tables)
        raise ConfigError(key, None, f"outside every table: put it under {where}, where it belongs")


#: The longest text a configuration error shows: a mistyped choice or symbol ("skpi"), never a pasted key (Alpaca's
#: key ids are 20 characters, its secrets 40).
MAX_SHOWN_TEXT = 16
#: Pydantic error types of an input of another kind than the key takes (a string for a table, a number or an
#: array): what is wrong is its kind, and the text may be anything pasted on the wrong line (a secret).
_WRONG_KIND_SUFFIXES = ("_type", "_parsing")


def _shown_scalar(value: object) -> bool:
    if isinstance(value, bool | int | float | Decimal | date | time | timedelta):
        return True
    return isinstance(value, str) and len(value) <= MAX_SHOWN_TEXT


def _is_number_text(value: str) -> bool:
    try:
        Decimal(value)
    except InvalidOperation:
        return False
    return True


def _shown(value: object, *, wrong_kind: bool) -> bool:
    """Whether a configuration error may print `value`: a number, boolean, time or short number as text ("7")
    always; a short text or an array of scalars only when it is of the kind the key takes; a table (it may hold
    credentials) never."""
    if isinstance(value, str) and wrong_kind:
        return len(value) <= MAX_SHOWN_TEXT and _is_number_text(value)
    if isinstance(value, list | tuple) and wrong_kind:
        return False
    if isinstance(value, list | tuple):
        return all(_shown_scalar(item) for item in value)
    return _shown_scalar(value)


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


def withheld(value: object) -> str | None:
    """What a configuration error says instead of `value` ("a string"), or None when it may show the value (as
    `refused` shows one of the kind its key takes)."""
    return None if value is None or _shown(value, wrong_kind=False) else _kind(value)


def refused(key: str, value: object, reason: str, *, wrong_kind: bool = False) -> ConfigError:
    """The `ConfigError` of a configuration `value` refused at `key`: every configuration error that holds a value
    the user wrote goes through here. The value is shown only when it cannot be a pasted secret (`_shown`);
    otherwise the key and what was expected are named, with the kind of what was found ("got a string")."""
    if value is None or _shown(value, wrong_kind=wrong_kind):
        return ConfigError(key, value, reason)
    return ConfigError(key, None, f"{reason} (got {_kind(value)})")


def is_wrong_kind(error: ErrorDetails) -> bool:
    """A pydantic error refusing its input's kind (not its value): e.g. a string where a table is expected."""
    return error["type"].endswith(_WRONG_KIND_SUFFIXES)


def missing_or_refused(error: ErrorDetails, key: str) -> ConfigError:
    """The `ConfigError` of one pydantic error at `key`. A required key that is missing has no value: pydantic's
    input is then the enclosing table, which is not the key's value, so none is shown. Nor is an unknown key's:
    its value is not what is wrong, and it may be anything, e.g. credentials pasted into the wrong file. Any other
    value is shown as `refused` allows."""
    if error["type"] == "missing":
        return ConfigError(key, None, "missing (required)")
    if error["type"] == "extra_forbidden":
        return ConfigError(key, None, "unknown key (not permitted here)")
    return refused(key, error.get("input"), error["msg"], wrong_kind=is_wrong_kind(error))


def read_toml(path: Path, option: str | None = None) -> dict[str, object]:
    """The tables of a TOML configuration file; a file that cannot be read or parsed is a `ConfigError` naming it.

    `option`: the command-line option that gave `path` (`--config`); a refusal then names it, with the path as its
    value, as every refused option is named. A directory, or no file at all, is said in words, not as an errno.
    """
    key, value = (str(path), None) if option is None else (option, str(path))
    if path.is_dir():
        raise ConfigError(key, value, "a directory, not a file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))  # an editor's BOM too, as plans allow
    except FileNotFoundError:
        raise ConfigError(key, value, "no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(key, value, f"cannot read TOML: {exc}") from exc
    except RecursionError:  # tables or arrays nested beyond the parser's depth: a bad file, not a bug
        raise ConfigError(key, value, "cannot read TOML: nested too deeply") from None


def load_config(path: str | Path) -> ExecutionConfig:
    """Read `[execution]` from a run configuration file (a path, or its text), refusing what `repeg run --config`
    refuses.

    A file without that table (e.g. `[simulator]` only) has the default execution settings. Anything outside the
    tables of a run configuration is refused (`check_run_tables`): a key written above every table, read by
    nothing, is refused saying to put it under `[execution]`.
    """
    raw = read_toml(Path(path))
    check_run_tables(raw)
    table = raw.get("execution", {})
    if not isinstance(table, dict):
        raise refused("execution", table, "must be a table", wrong_kind=True)
    return config_from_mapping(table)
