"""Process exit codes of `repeg`: one number per outcome a script needs to tell apart.

| code | meaning |
|---|---|
| 0 | run completed: every leg filled (`completed`), or every leg not skipped filled (`completed_with_skips`: trades too small, of zero shares or without a valid arrival quote, legs skipped by `on_no_quote`); also an Alpaca `--dry-run` that priced the first order of every leg not skipped (one that could not price a leg exits 3 if it priced another, else 4, as the real run would end) |
| 1 | internal error: a bug (an invariant broke, an unexpected exception); the message says where |
| 2 | refused before any order: bad plan, config, quotes file, unknown or non-tradable symbol, safety limit, closed market (without `--allow-closed`), a run id already used on the Alpaca account or remote simulator session (a fresh run whose first client order id names an order there); a run id the journal does not hold, or a journal file that does not exist (`runs`, `show`, `resume`, `report`; for `run`, its directory), an empty `--journal`, a directory, a non-SQLite file or a database that is no repeg journal as one; `resume` of an in-process simulator run; `report` or `sweep --engine ray` without the lab extras, a `postgresql://` journal without the `postgres` extra or of a malformed DSN, a libpq `key=value` connection string given as `--journal` |
| 3 | partial: the run ended with some legs not (fully) filled, or with an order of the run that may still be open at the broker, or a graceful stop (Ctrl-C, SIGTERM) left it resumable; also an Alpaca `--dry-run` that could not price a leg not skipped but priced another |
| 4 | failed: the broker, the market data source or the journal failed (a journal holding an event repeg cannot read or fold included), or the run ended `failed`, or `run`/`resume` could not write its result to stdout (a full disk), or any other command what it prints, or `report --png-dir` its PNGs (the rendering browser failed); also `run --run-id`/`resume` of a run another process is working (refused before anything is sent), and `run --run-id` of an unfinished in-process simulator run; also an Alpaca `--dry-run` that could price no leg not skipped |

A Ctrl-C before the run sends anything (while repeg loads, reads the plan, the config or the quotes, or opens
the journal), a second Ctrl-C, or Ctrl-C during an in-process simulator run, exits 130 (128 + SIGINT) without a
result, with the one line `interrupted` on stderr (a second Ctrl-C exits at once, without it). Whatever the run
journaled before stays in the journal.
"""

from __future__ import annotations

from enum import IntEnum

from repeg.errors import (
    BrokerError,
    ConfigError,
    JournalError,
    MarketClosedError,
    MarketDataError,
    PlanError,
    QuoteFileError,
    RunNotFoundError,
    RunStoppedError,
    SafetyLimitError,
)


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    BAD_INPUT = 2
    PARTIAL = 3
    FAILED = 4
    INTERRUPTED = 130  # 128 + SIGINT, the shell convention


#: The one line on stderr of a run interrupted by Ctrl-C without a graceful stop (see the module's docstring).
INTERRUPTED_MESSAGE = "interrupted"


_STATUS_CODES: dict[str, ExitCode] = {
    "completed": ExitCode.OK,
    "completed_with_skips": ExitCode.OK,
    "partial": ExitCode.PARTIAL,
    "failed": ExitCode.FAILED,
}

#: Most specific first: the first class an error is an instance of decides its code.
_ERROR_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (RunStoppedError, ExitCode.PARTIAL),
    (PlanError, ExitCode.BAD_INPUT),
    (ConfigError, ExitCode.BAD_INPUT),
    (SafetyLimitError, ExitCode.BAD_INPUT),
    (QuoteFileError, ExitCode.BAD_INPUT),
    (MarketClosedError, ExitCode.BAD_INPUT),  # a refusal before any order, though the broker said it
    (RunNotFoundError, ExitCode.BAD_INPUT),  # a run id the journal lacks: bad input, not a failure
    (MarketDataError, ExitCode.FAILED),
    (BrokerError, ExitCode.FAILED),
    (JournalError, ExitCode.FAILED),
)


def exit_code_for_status(status: str) -> ExitCode:
    """The exit code of a finished run's status; an unknown status is a bug (INTERNAL)."""
    return _STATUS_CODES.get(str(status), ExitCode.INTERNAL)


def exit_code_for_error(error: BaseException) -> ExitCode:
    """The exit code of an error that stopped the run; anything unexpected is INTERNAL."""
    for kind, code in _ERROR_CODES:
        if isinstance(error, kind):
            return code
    return ExitCode.INTERNAL


def one_line(text: str) -> str:
    """An error's text on the one line stderr gives every error: a library's may span several (libpq adds a
    hint on a line of its own)."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())
