"""Process-wide tuning that belongs to whoever owns the process (the `repeg` command, a benchmark), never to a
library call: importing or calling repeg's API leaves the interpreter's settings alone.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Exempt every object alive now from the cyclic garbage collector's future scans (`gc.freeze`).

    Call once start-up is over (imports, configuration, input files) and before the run. What exists then is
    tens of thousands of modules, classes, functions and validation schemas that live as long as the process;
    without this, every full collection during the run, and the one at interpreter exit, walks all of them
    again (about a tenth of a second of a short simulated run's wall time). Frozen objects are no longer
    traversed, so a reference cycle that is already garbage at this instant is never reclaimed (start-up
    leaves few, and the process frees them at exit); everything the run allocates is collected as usual.
    """
    gc.freeze()
