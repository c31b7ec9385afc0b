"""`REPEG_JOURNAL=` (set, but empty or blank) is refused like an empty `--journal`, not read as no variable at all.

The commands take `--journal` from `REPEG_JOURNAL` through click, which reads an empty variable as unset and falls
back to `repeg.db` in the working directory: a variable set from an unset one (`REPEG_JOURNAL=$JOURNAL`) then
journaled the run where `repeg resume` with the intended journal never looks. The README refuses it (exit 2).
"""

from __future__ import annotations

import os

from repeg.errors import ConfigError

VARIABLE = "REPEG_JOURNAL"
#: The name of the commands' `--journal` parameter.
PARAMETER = "journal"


def refuse_an_empty_journal_variable() -> None:
    """Raise `ConfigError` naming `REPEG_JOURNAL` when it is set but empty or blank and the command's `--journal`
    came from it (click reads an empty one as unset: the default) rather than from the command line; nothing
    outside a command (the Python API)."""
    value = os.environ.get(VARIABLE)
    if value is None or value.strip():
        return
    from typer._click.core import ParameterSource
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    given_here = ctx is None or ctx.get_parameter_source(PARAMETER) is ParameterSource.COMMANDLINE
    if not given_here:
        raise ConfigError(
            VARIABLE, value, "empty: set it to a SQLite file or a postgresql:// DSN, or unset it"
        )
