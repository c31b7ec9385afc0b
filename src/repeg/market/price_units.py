"""Float dollar prices (a Parquet float column, Alpaca's JSON) as exact int64 units of $0.0001.

One rule, two strictnesses: each reader states how far from the grid a float may lie (`tolerance`, in units) and
whether the float nearest a $0.0001 price counts at any size (`exact_floats`), so that sharing the rule loosens
neither reader. The quote and trade file loaders take 1e-5 units and exact floats (a float64 price of millions of
dollars lies further than 1e-5 units from the grid once scaled, yet is exactly that price's float); the Alpaca
history loader keeps its fixed 1e-6 units.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from repeg.market.tape import Int64Array

#: $0.0001 units in a dollar.
UNITS_PER_DOLLAR = 10_000


def snap_to_units(
    dollars: NDArray[np.float64], *, tolerance: float, exact_floats: bool
) -> tuple[Int64Array, NDArray[np.bool_]]:
    """The nearest $0.0001 units of finite float `dollars`, and which of them lie on that grid: within
    `tolerance` units of it once scaled, or, with `exact_floats`, the float of a $0.0001 price itself (units /
    10,000 is correctly rounded, so exact at any size). The callers refuse non-finite prices first (a NaN is
    off the grid here), and any price past int64 units before they use one."""
    scaled = dollars * UNITS_PER_DOLLAR
    units = np.rint(scaled)
    on_grid = np.abs(scaled - units) <= tolerance
    if exact_floats:
        on_grid |= units / UNITS_PER_DOLLAR == dollars
    return units.astype(np.int64), on_grid
