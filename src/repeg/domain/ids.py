"""Deterministic identifiers: the basis of idempotent submission.

A client order id is a pure function of (run, leg, attempt). Re-submitting after an unknown outcome reuses the
same id, so the broker rejects a duplicate instead of creating a second order. Alpaca accepts up to 128
characters; we stay within 48 so that every broker we may add can take them.
"""

from __future__ import annotations

import hashlib
import re

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
MAX_CLIENT_ORDER_ID = 48


def validate_run_id(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(
            f"run_id {run_id!r} must be 1-32 characters of letters, digits, '-' or '_', the first a letter or digit"
        )
    return run_id


def new_run_id(seed_material: str) -> str:
    """A run id derived from caller-provided material (e.g. start time and plan digest): no hidden randomness."""
    return "r" + hashlib.sha256(seed_material.encode()).hexdigest()[:15]


def leg_id(run_id: str, leg_index: int) -> str:
    return f"{run_id}-L{leg_index:04d}"


def client_order_id(run_id: str, leg_index: int, attempt: int) -> str:
    """`<run>-L<leg>-A<attempt>`, hashed down when it would exceed the length limit (still deterministic)."""
    if leg_index < 0 or attempt < 0:
        raise ValueError(f"leg_index and attempt must be >= 0, got {leg_index}, {attempt}")
    plain = f"{run_id}-L{leg_index:04d}-A{attempt:02d}"
    if len(plain) <= MAX_CLIENT_ORDER_ID:
        return plain
    digest = hashlib.sha256(plain.encode()).hexdigest()[:24]
    return f"rp-{digest}-L{leg_index}-A{attempt}"[:MAX_CLIENT_ORDER_ID]
