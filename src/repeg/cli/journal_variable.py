"""`REPEG_JOURNAL=` (set, but empty) is refused like an empty `--journal`, not read as no variable at all.

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
    """Raise `ConfigError` naming `REPEG_JOURNAL` when it is set but empty and the command's `--journal` took its
    default for that reason (not given on the command line); nothing outside a command (the Python API)."""
    if os.environ.get(VARIABLE) != "":
        return
    from typer._click.core import ParameterSource
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    if ctx is not None and ctx.get_parameter_source(PARAMETER) is ParameterSource.DEFAULT:
        raise ConfigError(VARIABLE, "", "empty: set it to a SQLite file or a postgresql:// DSN, or unset it")
