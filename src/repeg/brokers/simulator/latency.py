"""How long the simulated exchange takes to acknowledge, cancel and replace (default: instantly).

With a delay, requests go through Alpaca's pending states (`pending_new`, `pending_cancel`, `pending_replace`)
and their outcome arrives later as an order update, scheduled on the injected clock. Fills can happen while a
cancel or replace is pending, so a cancel can lose the race against a fill, as on a real venue.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from repeg.config import (
    MAX_SECONDS,
    MIN_POSITIVE_SECONDS,
    OVER_MAX_SECONDS,
    is_wrong_kind,
    missing_or_refused,
    refused,
)

_KEYS = ("submit_ack", "cancel", "replace")
_LONGEST = timedelta(seconds=MAX_SECONDS)


class LatencyModel(BaseModel):
    """Constant delays. TOML/mapping values are seconds (e.g. `submit_ack = 0.05`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    submit_ack: timedelta = Field(default=timedelta(0), ge=timedelta(0))
    cancel: timedelta = Field(default=timedelta(0), ge=timedelta(0))
    replace: timedelta = Field(default=timedelta(0), ge=timedelta(0))

    @field_validator(*_KEYS, mode="before")
    @classmethod
    def _seconds_the_clock_can_hold(cls, value: object) -> object:
        """Refuse a boolean (TOML `true` would be 1 s) and a positive number of seconds under a microsecond."""
        if isinstance(value, bool):
            raise PydanticCustomError("time_delta_type", "must be a number of seconds, not a boolean")
        if isinstance(value, int | float) and 0 < value < MIN_POSITIVE_SECONDS:
            raise PydanticCustomError(
                "time_delta_type", "a positive delay must be at least 1e-06 seconds (one microsecond)"
            )
        return value

    @field_validator(*_KEYS)
    @classmethod
    def _at_most_max_seconds(cls, value: timedelta) -> timedelta:
        if value > _LONGEST:
            raise ValueError(OVER_MAX_SECONDS)
        return value

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> LatencyModel:
        """Validate a `[simulator.latency]`-style table; a bad key raises `ConfigError` naming it."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            if first["type"] == "extra_forbidden" or field not in data:  # an unknown key's value is not shown
                raise missing_or_refused(first, f"latency.{field}") from None
            raise refused(
                f"latency.{field}", data[field], first["msg"], wrong_kind=is_wrong_kind(first)
            ) from None  # pydantic's text prints the value: not chained


#: The default: every request takes effect at the instant it is made.
NO_LATENCY = LatencyModel()
