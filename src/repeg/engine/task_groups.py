"""Concurrent work whose one error is raised as itself: an order window of a basket, a leg at the run's end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_error_raised_as_is() -> Iterator[None]:
    """Around an `asyncio.TaskGroup`: when one task broke it, raise that task's own (typed) error, not the
    `ExceptionGroup` wrapping it, so that callers catching `RepegError` (the CLI, sweeps) still can. Several
    errors at once are raised as their group."""
    try:
        yield
    except ExceptionGroup as broken:
        if len(broken.exceptions) == 1:
            raise broken.exceptions[0] from None
        raise
