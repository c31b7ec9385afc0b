"""Structured logging: one structlog pipeline, pretty on a terminal or one JSON object per line, always to stderr.

stdout belongs to results (`repeg run --json` prints exactly one document there), so logs never go to stdout.
Context such as `run_id` and `correlation_id` is bound once with `bind_run` and carried by every line logged
within it (structlog context variables, so it follows asyncio tasks).

Secrets never reach a log line: any field whose name looks like a credential (contains secret, key, token,
passw, credential or auth) is replaced by `REDACTED`, in nested mappings and sequences too, and the values of
credential-like environment variables (e.g. `APCA_API_SECRET_KEY`) are masked wherever they appear inside any
string value, or inside the text of any other value (an exception, a model) that the renderer would print.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from repeg.errors import ConfigError

REDACTED = "***"
#: The levels `configure_logging` (and `--log-level`) accept, lowest first.
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
_SENSITIVE_NAME = re.compile(r"secret|key|token|passw|credential|auth", re.IGNORECASE)
#: Secrets shorter than this are not masked inside strings: masking "abc" everywhere would garble the logs.
_MIN_SECRET_LEN = 8


def is_sensitive(name: str) -> bool:
    """True when a field or variable name looks like it holds a credential."""
    return bool(_SENSITIVE_NAME.search(name))


def _mask(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: object, secrets: tuple[str, ...]) -> object:
    """Mappings and sequences are walked; any other object is masked in the text it renders as."""
    if isinstance(value, Mapping):
        return {k: REDACTED if is_sensitive(str(k)) else _redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, str):
        return _mask(value, secrets)
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact_value(item, secrets) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if secrets and not isinstance(value, bool | int | float | None):
        text = str(value)  # what the renderers would print (an exception's message, a model's fields)
        masked = _mask(text, secrets)
        return value if masked == text else masked
    return value


class SecretRedactor:
    """A structlog processor that masks credential-named fields and known secret values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(
            sorted({s for s in secrets if len(s) >= _MIN_SECRET_LEN}, key=len, reverse=True)
        )

    def __call__(self, _logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
        for name in list(event_dict):
            if is_sensitive(name):
                event_dict[name] = REDACTED
            else:
                event_dict[name] = _redact_value(event_dict[name], self._secrets)
        return event_dict


def secrets_from_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of credential-like environment variables, to be masked wherever they appear."""
    env = os.environ if environ is None else environ
    return [value for name, value in env.items() if is_sensitive(name) and value]


def _json_default(value: object) -> str:
    """Decimals, datetimes and enums as their plain text (`str(Decimal("1.50"))` keeps every digit)."""
    return str(value)


def _current_stderr(*_args: object) -> structlog.PrintLogger:
    """A logger writing to whatever `sys.stderr` is at the time of the call (test runners swap it)."""
    return structlog.PrintLogger(file=sys.stderr)


def configure_logging(
    *,
    json_output: bool = False,
    level: str = "info",
    stream: TextIO | None = None,
    secrets: Iterable[str] | None = None,
) -> None:
    """Configure structlog for the process. Safe to call again (tests and the CLI reconfigure per run).

    `stream` defaults to `sys.stderr` as it is at each log call; `secrets` defaults to
    `secrets_from_environment()`. An unknown `level` raises `ConfigError` naming `--log-level`.
    """
    if level.lower() not in LOG_LEVELS:
        raise ConfigError("--log-level", level, f"must be one of {', '.join(LOG_LEVELS)}")
    out = sys.stderr if stream is None else stream
    known = secrets_from_environment() if secrets is None else list(secrets)
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=json.dumps, default=_json_default)
        if json_output
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        SecretRedactor(known),
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream) if stream is not None else _current_stderr,
        cache_logger_on_first_use=False,
    )


@contextmanager
def bind_run(run_id: str, correlation_id: str | None = None) -> Iterator[None]:
    """Bind `run_id` (and `correlation_id`, defaulting to the run id) to every log line inside the block."""
    tokens = structlog.contextvars.bind_contextvars(run_id=run_id, correlation_id=correlation_id or run_id)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
