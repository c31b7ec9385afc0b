"""Log capture for the tests that check debug or info lines."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, MutableMapping

import structlog
import structlog.testing


@contextlib.contextmanager
def every_level_captured() -> Iterator[list[MutableMapping[str, object]]]:
    """The log lines of every level (debug included) emitted inside the block. `capture_logs` keeps the configured
    level filter, and an earlier test (or `execute_async`) may have configured `warning`: that would hide them."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as lines:
            yield lines
    finally:
        structlog.configure(**saved)
