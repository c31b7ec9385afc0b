"""Process exit codes of `repeg`: one number per outcome a script needs to tell apart.

0 completed, 1 internal error, 2 refused before any order, 3 partial, 4 failed, 130 interrupted. README.md's "Exit
codes" table is the one full statement of which case exits with which code (tests/integration/test_docs.py holds its
codes and their outcomes, and this list, to `ExitCode`); `_STATUS_CODES` and `_ERROR_CODES` below map a run's status
and an error to them.
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


#: The one line on stderr of a run interrupted by Ctrl-C without a graceful stop (README.md, exit code 130).
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
