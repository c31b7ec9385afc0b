"""The process owner's heap freeze: start-up objects leave the collector's scans; the run's garbage does not."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from repeg.runtime import freeze_startup_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    yield
    gc.unfreeze()


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_objects_alive_at_the_freeze_are_exempt_from_later_collections(restored_gc: None) -> None:
    before = gc.get_freeze_count()
    freeze_startup_heap()
    assert gc.get_freeze_count() > before


def test_cycles_created_after_the_freeze_are_still_collected_automatically(restored_gc: None) -> None:
    freeze_startup_heap()
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    probe = weakref.ref(first)
    del first, second
    # No explicit gc.collect(): enough new containers to pass the youngest generation's threshold many times.
    churn = [[index] for index in range(20 * gc.get_threshold()[0])]
    assert probe() is None, f"{len(churn)} new containers did not set off a collection"
