"""The one error hierarchy of repeg.

Every error carries the context needed to act on it (the field and value, the limit and the amount, the
broker's own message). Callers catch the narrowest class that they can handle; nothing is swallowed.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal


class RepegError(Exception):
    """Base of every error raised on purpose by repeg."""


# --- configuration and input -------------------------------------------------------------------------------


class ConfigError(RepegError):
    """A configuration key has an unusable value."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        # None: no value to show (a missing key, a table not printed), rather than a misleading `=None`; a Decimal
        # (a value parsed before a check across keys refused it) as a TOML file writes it, 600, not Decimal('600')
        shown = "" if value is None else f"={value}" if isinstance(value, Decimal) else f"={value!r}"
        super().__init__(f"config {key}{shown}: {reason}")


class PlanError(RepegError):
    """A plan or trade list cannot be used; nothing has been sent."""


class PlanInputError(PlanError):
    """One bad cell or row of a plan file, named precisely."""

    def __init__(self, file: str, row: int | None, field: str | None, value: object, reason: str) -> None:
        self.file = file
        self.row = row
        self.field = field
        self.value = value
        self.reason = reason
        where = file if row is None else f"{file}, row {row}"
        what = "" if field is None else f", field {field!r}"
        shown = "" if value is None else f" = {value!r}"
        super().__init__(f"{where}{what}{shown}: {reason}")


def _symbol_refusal(symbol: str, file: str | None, row: int | None, reason: str) -> str:
    """`file, row N, field 'symbol' = 'X': reason` when the plan's place is known (as `PlanInputError` words
    it), else `symbol 'X' is reason` (a broker or a plan built in Python)."""
    if file is None:
        return f"symbol {symbol!r} is {reason}"
    where = file if row is None else f"{file}, row {row}"
    return f"{where}, field 'symbol' = {symbol!r}: {reason}"


class UnknownSymbolError(PlanError):
    """The broker does not know a symbol of the plan; `file` and `row` name where the plan asked for it."""

    def __init__(self, symbol: str, file: str | None = None, row: int | None = None) -> None:
        self.symbol = symbol
        self.file = file
        self.row = row
        super().__init__(_symbol_refusal(symbol, file, row, "unknown to the broker"))


class NotTradableError(PlanError):
    """The broker marks a symbol of the plan as not tradable; `file` and `row` name where the plan asked."""

    def __init__(self, symbol: str, file: str | None = None, row: int | None = None) -> None:
        self.symbol = symbol
        self.file = file
        self.row = row
        super().__init__(_symbol_refusal(symbol, file, row, "not tradable at the broker"))


class SafetyLimitError(RepegError):
    """A safety rail refused an order or the whole plan before anything was sent."""

    def __init__(self, limit: str, limit_value: Decimal, value: Decimal, symbol: str | None = None) -> None:
        self.limit = limit
        self.limit_value = limit_value
        self.value = value
        self.symbol = symbol
        who = "" if symbol is None else f"{symbol}: "
        super().__init__(f"{who}{limit} is {limit_value}, refused value {value}")


# --- market data -------------------------------------------------------------------------------------------


class MarketDataError(RepegError):
    """Quotes could not be read or are unusable."""


class QuoteFileError(MarketDataError):
    """A quote or trade file is malformed. `row` is where: in a CSV file the line an editor shows (the header is
    row 1, as in a plan), in a Parquet or DBN file the record, from 1."""

    def __init__(self, file: str, row: int | None, reason: str) -> None:
        self.file = file
        self.row = row
        self.reason = reason
        where = file if row is None else f"{file}, row {row}"
        super().__init__(f"{where}: {reason}")

    def renumbered(self, row_of: Callable[[int], int]) -> QuoteFileError:
        """The same refusal, its row numbers given by `row_of` (a CSV file's record, from 1, to its line)."""
        return QuoteFileError(self.file, None if self.row is None else row_of(self.row), self.reason)


class SymbolSpellingError(QuoteFileError):
    """Two spellings of one symbol in a quote or trade file ("aaa" and "AAA"), at `row` and at `other_row`."""

    def __init__(self, file: str, row: int, name: str, other: str, *, other_row: int, symbol: str) -> None:
        self.at, self.name, self.other, self.other_row, self.symbol = row, name, other, other_row, symbol
        reason = (
            f"symbol: {name!r} and {other!r} (row {other_row}) are one symbol, {symbol}: write it one way"
        )
        super().__init__(file, row, reason)

    def renumbered(self, row_of: Callable[[int], int]) -> QuoteFileError:
        other_row = row_of(self.other_row)
        return SymbolSpellingError(
            self.file, row_of(self.at), self.name, self.other, other_row=other_row, symbol=self.symbol
        )


# --- order lifecycle ---------------------------------------------------------------------------------------


class IllegalTransitionError(RepegError):
    """A state machine was asked for a transition that its table does not allow."""

    def __init__(self, machine: str, state: str, event: str) -> None:
        self.machine = machine
        self.state = state
        self.event = event
        super().__init__(f"{machine}: event {event!r} is illegal in state {state!r}")


class InvariantViolationError(RepegError):
    """An invariant that must always hold was broken: a bug, never a market condition."""


class OverfillError(InvariantViolationError):
    """Fills of a leg would exceed its quantity."""

    def __init__(self, leg_id: str, qty: Decimal, filled: Decimal) -> None:
        self.leg_id = leg_id
        self.qty = qty
        self.filled = filled
        super().__init__(f"leg {leg_id}: filled {filled} exceeds quantity {qty}")


# --- broker ------------------------------------------------------------------------------------------------


class BrokerError(RepegError):
    """The broker refused or failed a request. `broker_message` keeps the broker's own words."""

    def __init__(self, message: str, *, broker_message: str | None = None, code: str | None = None) -> None:
        self.broker_message = broker_message
        self.code = code
        super().__init__(message if broker_message is None else f"{message} (broker: {broker_message})")


class OrderRejectedError(BrokerError):
    """The broker rejected a new or replacement order."""


class DuplicateClientOrderIdError(OrderRejectedError):
    """A client order id was already used: the order it names exists (or existed) at the broker."""

    def __init__(self, client_order_id: str, *, broker_message: str | None = None) -> None:
        self.client_order_id = client_order_id
        super().__init__(f"client order id {client_order_id!r} already used", broker_message=broker_message)


class InsufficientBuyingPowerError(OrderRejectedError):
    """The broker refused a buy whose cost exceeds the buying power left: Alpaca answers HTTP 403, code 40310000,
    "insufficient buying power" (the same code refuses a sell of more shares than held, with other words); the
    simulator refuses with the same code and words. The engine may send a smaller escalation within it."""


class OrderNotFoundError(BrokerError):
    """No order with that id exists at the broker."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"order {order_id!r} not found")


class OrderNotCancelableError(BrokerError):
    """A cancel (or replace) was refused because of the order's state: a state to reconcile, not a failure."""

    def __init__(
        self, order_id: str, status: str, *, broker_message: str | None = None, code: str | None = None
    ) -> None:
        self.order_id = order_id
        self.status = status
        super().__init__(
            f"order {order_id!r} cannot be changed in status {status!r}",
            broker_message=broker_message,
            code=code,
        )


class BrokerUnavailableError(BrokerError):
    """The broker could not be reached or answered with a server error after bounded retries."""


class RateLimitedError(BrokerUnavailableError):
    """The broker kept answering HTTP 429 after bounded retries."""


class AuthenticationError(BrokerError):
    """The broker refused the credentials."""


class MarketClosedError(BrokerError):
    """The market is closed and the run was not allowed to queue orders."""


# --- journal -----------------------------------------------------------------------------------------------


class JournalError(RepegError):
    """The journal cannot be opened, migrated or written."""


class JournalTimeoutError(JournalError):
    """The journal's database answered nothing within a bound: a hung server, a lock held, a network gone."""

    def __init__(self, journal: str, seconds: float, what: str, bound: str) -> None:
        self.journal = journal
        self.seconds = seconds
        self.what = what
        self.bound = bound
        super().__init__(f"journal {journal}: cannot {what}: no answer within {seconds:g} s ({bound})")


class RunNotFoundError(JournalError):
    def __init__(self, run_id: str, journal: str | None = None) -> None:
        self.run_id = run_id
        self.journal = journal
        where = "" if journal is None else f" {journal}"
        super().__init__(f"run {run_id!r} is not in the journal{where}")


# --- lab reports and sweeps --------------------------------------------------------------------------------


class ReportError(RepegError):
    """A report could not be built: an unreadable or unknown result file, or a figure export that failed."""

    def __init__(self, file: str, reason: str) -> None:
        self.file = file
        self.reason = reason
        super().__init__(f"{file}: {reason}")

    def __reduce__(self) -> tuple[type[ReportError], tuple[str, str]]:
        return (type(self), (self.file, self.reason))


class FigureExportError(ReportError):
    """The figures could not be exported (the headless browser that renders the PNGs failed or wrote nothing):
    the inputs were good, the export failed, so the command exits 4, not 2."""


class SweepError(RepegError):
    """A sweep grid is malformed (key and value named) or a grid point failed (point named)."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type[SweepError], tuple[str, str]]:
        """Picklable, so that a worker process (pool or Ray) can send it back whole."""
        return (type(self), (self.where, self.reason))


# --- broker adapters (appended for the Alpaca adapter) -----------------------------------------------------


class FractionalQuantityError(OrderRejectedError):
    """A fractional quantity for an asset the broker does not trade in fractions; refused before sending."""

    def __init__(self, symbol: str, qty: Decimal) -> None:
        self.symbol = symbol
        self.qty = qty
        super().__init__(f"{symbol}: quantity {qty} is fractional but the asset is not fractionable")


class LiveTradingNotConfirmedError(ConfigError):
    """Live trading was requested without the explicit confirmation flag; nothing was sent."""

    def __init__(self, broker: str) -> None:
        self.broker = broker
        super().__init__("--confirm", False, f"{broker} trades real money: pass --confirm to allow it")


class RunStoppedError(RepegError):
    """The user stopped a run (Ctrl-C / SIGTERM): its working orders were cancelled and it can be resumed.

    The message is the stop's summary (what was cancelled, what is left, how to resume).
    """

    def __init__(self, run_id: str, summary: str) -> None:
        self.run_id = run_id
        super().__init__(summary)


class ClientOrderIdConflictError(OrderRejectedError):
    """The order the broker holds under one of the run's client order ids is not the one the run sent (another
    run under the same run id sent it): never taken for the run's own. `differences` maps each differing field
    to (sent, found)."""

    def __init__(self, client_order_id: str, order_id: str, differences: dict[str, tuple[str, str]]) -> None:
        self.client_order_id = client_order_id
        self.order_id = order_id
        self.differences = differences
        fields = ", ".join(
            f"{name} sent {sent}, found {found}" for name, (sent, found) in differences.items()
        )
        super().__init__(
            f"client order id {client_order_id!r} names order {order_id!r} of another request ({fields}):"
            " is the run id in use by another run?"
        )


class RunIdInUseError(ConfigError):
    """A fresh run's id already names an order at the broker: the first client order id the run would send is
    another run's (same run id, another journal or a deleted one, on this account). Refused before any order."""

    def __init__(self, run_id: str, client_order_id: str, order_id: str) -> None:
        self.run_id = run_id
        self.client_order_id = client_order_id
        self.order_id = order_id
        super().__init__(
            "--run-id",
            run_id,
            f"run id {run_id} was already used on this account (order {order_id} holds its client order id"
            f" {client_order_id}): choose another --run-id, or resume that run from its journal",
        )


class BrokerInUseError(ConfigError):
    """A run asked to listen to a broker adapter another run still listens to (the Python API handed one adapter to
    two runs at once). One adapter serves one run at a time: what it keeps for a run (the asset flags its checks
    read, the orders it follows, a stop's deadline) is that run's. Refused before the second run sends any order."""

    def __init__(self, broker: str) -> None:
        self.broker = broker
        super().__init__(
            "broker",
            broker,
            "this adapter already serves a run: one adapter serves one run at a time; wait for that run to end,"
            " or build another adapter for this one",
        )


#: `OrderFailed.error` values (the class names the engine records) after which the request may still have been
#: executed, as `OrderGateway._executed_anyway` reads them: a request left unanswered, not refused outright.
OUTCOME_UNKNOWN: frozenset[str] = frozenset(
    error.__name__ for error in (DuplicateClientOrderIdError, BrokerUnavailableError, RateLimitedError)
)
