"""The saved shape of backtests and comparisons: the contract between the lab and its readers (report, sweeps).

Everything a backtest produces is one frozen, JSON-serialisable `BacktestResult`; a `repeg compare` produces one
`CompareResult` holding several of them plus the statistics across them. The schema is versioned by
`SCHEMA_VERSION`; a reader refuses a version it does not know rather than guessing.

Conventions, guaranteed by the producer (`repeg.lab.backtest`, `repeg.lab.tca`):

- Prices are `Decimal` dollars (serialised as JSON strings); quantities are `Decimal` shares.
- Costs are signed floats, positive = paid: ``cost = side.sign * (avg_fill - reference) / reference`` in bps, or
  divided by the arrival half-spread in "half-spreads". A market order crossing a stable quote costs +1
  half-spread; a passive fill at the near touch costs -1 (it earned the half-spread). Quantity left unfilled is
  charged at the far touch of the last quote inside the budget, so an order that did not execute is never
  dropped from a cost average.
- Times are timezone-aware UTC datetimes; durations are float seconds of simulated time.
- `OrderTca.path` is every order-level event of one parent order in time order: each limit price it rested at
  (submit/replace), each fill with its actual price, the escalation, and the end. A report draws the limit path
  as a step function from these events.
- Intervals are percentile bootstrap intervals of the mean with the stated level, seeded (see `repeg.lab.stats`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from repeg.domain.orders import Side

SCHEMA_VERSION = "repeg.lab/1"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FillModelName(StrEnum):
    """Which fill model the simulator used (see docs/FILL_MODELS.md)."""

    PAPER = "paper"
    QUEUE = "queue"


class ParentOrder(_Frozen):
    """One order of a basket: it arrives at `arrival` and must be complete `budget_seconds` later."""

    index: int = Field(ge=0)
    symbol: str
    side: Side
    qty: Decimal = Field(gt=0)
    arrival: datetime
    budget_seconds: float = Field(gt=0)


class PathEventKind(StrEnum):
    SUBMIT = "submit"  # a limit (price set) or market order (price None) was sent
    REPLACE = "replace"  # the resting limit moved to `price`
    CANCEL = "cancel"  # the resting order was cancelled (before an escalation or at the end)
    FILL = "fill"  # an execution of `qty` at the actual `price`
    ESCALATE = "escalate"  # the remainder `qty` went to a market order
    END = "end"  # the parent order finished (complete or not)


class PathEvent(_Frozen):
    ts: datetime
    kind: PathEventKind
    price: Decimal | None = None
    qty: Decimal | None = None
    order_id: str | None = None


class OrderTca(_Frozen):
    """Transaction-cost analysis of one parent order.

    Cost fields are implementation shortfall over the whole `qty`: any quantity left unfilled is charged at the far
    touch of the last quote inside the budget (`repeg.lab.tca`). They are None only in results saved before that
    rule; `avg_price` is the actual fills' average (None when nothing filled).
    """

    index: int
    symbol: str
    side: Side
    qty: Decimal
    arrival: datetime
    deadline: datetime
    arrival_bid: Decimal
    arrival_ask: Decimal
    arrival_mid: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None
    completed: bool
    escalated: bool
    #: Quantity filled by limit orders before any escalation (passive or re-pegged fills).
    filled_before_escalation: Decimal
    #: Seconds from arrival to the last fill (None when nothing filled).
    time_to_fill_s: float | None
    repegs: int
    cost_bps: float | None
    cost_half_spreads: float | None
    #: Best price a limit order could have been filled at inside [arrival, deadline] under the paper rule
    #: (lowest ask for a buy, highest bid for a sell): the perfect-foresight benchmark.
    oracle_price: Decimal
    oracle_cost_half_spreads: float
    #: Cost above the oracle, in half-spreads (>= 0 up to fills better than any quote, e.g. queue fills).
    cost_vs_oracle_half_spreads: float | None
    #: 1 - cost_half_spreads: 0 for crossing the arrival spread, 1 for a fill at the arrival mid, 2 at the near touch.
    half_spread_saved: float | None
    path: tuple[PathEvent, ...] = ()


class Interval(_Frozen):
    """A point estimate with its bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95
    #: Of a mean weighted unequally (orders by their shares): Kish's effective number of observations,
    #: (sum w)^2 / sum w^2, fewer than `n` (one order of most of the shares counts as about one). Absent (None)
    #: when every observation weighs the same, and in results saved before it: `n` is the effective count then.
    n_eff: float | None = Field(default=None, exclude_if=lambda v: v is None)
    #: Resampled in runs of this many consecutive orders (circular block bootstrap), as that many orders' budgets
    #: overlap and they share the same price moves; absent (None) when the orders were resampled one at a time.
    block: int | None = Field(default=None, exclude_if=lambda v: v is None)

    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def effective_n(self) -> float:
        """How many observations the mean stands for: `n_eff` when weighted unequally, else `n`; resampled in runs
        of `block` = 2 m + 1 (each order overlapping m on either side), divided by m + 1."""
        count = float(self.n) if self.n_eff is None else self.n_eff
        return count if self.block is None else count * 2.0 / (self.block + 1)


class PolicySummary(_Frozen):
    """Aggregates of one policy under one fill model on one symbol-day.

    The costs (`cost_bps`, `cost_half_spreads`, `cost_vs_oracle_half_spreads`, `half_spread_saved`) are means over
    the orders weighted as `cost_weighting` says; `completion_rate`, `escalation_rate`, `time_to_fill_s` and
    `repegs_mean` are per order; `fill_rate_before_escalation` is a share of the quantity.
    """

    policy: str
    fill_model: FillModelName
    n_orders: int
    completion_rate: float
    cost_bps: Interval
    cost_half_spreads: Interval
    cost_vs_oracle_half_spreads: Interval
    half_spread_saved: float
    #: Share of all requested quantity filled by limits before any escalation.
    fill_rate_before_escalation: float
    escalation_rate: float
    time_to_fill_s: Interval
    repegs_mean: float
    #: "shares": each order's cost weighted by its shares (the basket's cost per share; equal sizes give the plain
    #: mean); "orders": every order counted once, as results saved before this field were.
    cost_weighting: Literal["shares", "orders"] = "orders"


class Verdict(StrEnum):
    BETTER = "better"
    WORSE = "worse"
    INDISTINGUISHABLE = "indistinguishable"


class PairedComparison(_Frozen):
    """Paired difference `policy - baseline` of per-order cost in half-spreads (negative = policy cheaper), its mean
    weighted by each order's shares as the summaries' costs are (`PolicySummary.cost_weighting`).

    `verdict` is BETTER or WORSE only when the interval of the mean difference excludes zero, on at least
    `repeg.lab.stats.MIN_PAIRS_FOR_VERDICT` pairs; on fewer it is INDISTINGUISHABLE whatever the interval shows,
    and `verdict_withheld` says so.
    """

    policy: str
    baseline: str
    fill_model: FillModelName
    diff_half_spreads: Interval
    diff_bps: Interval
    verdict: Verdict
    #: Why no better/worse verdict could be drawn (too few pairs), None when the interval decided the verdict.
    #: None also in results saved before this field: read `diff_half_spreads.n` against the rule then.
    verdict_withheld: str | None = None


class FrontierPoint(_Frozen):
    """One row of the cost-versus-completion-time frontier."""

    policy: str
    fill_model: FillModelName
    mean_cost_half_spreads: float
    mean_time_to_fill_s: float
    completion_rate: float
    #: True when no other policy (same fill model) is both cheaper and faster.
    efficient: bool


class DataRef(_Frozen):
    """Which data a run read, with a digest so that a result names exactly its inputs."""

    symbol: str
    day: date
    quotes_file: str
    trades_file: str | None
    #: sha256 over the raw bytes of the quote file then the trade file (if any).
    digest: str


class BacktestResult(_Frozen):
    """One policy, one fill model, one symbol-day, one basket."""

    schema_version: str = SCHEMA_VERSION
    data: DataRef
    policy: str
    #: The policy specification as given (kind and parameters, stringified), for reproduction; for an adaptive
    #: run also the fit it used (`fit_rule`, `fit_day`, `fit_quotes_file`, `fit_digest`, `fit_samples`).
    policy_params: dict[str, str]
    fill_model: FillModelName
    #: Parameters of the fill model and simulator beyond its name (e.g. queue print share, latency), as text.
    fill_model_params: dict[str, str] = Field(default_factory=dict)
    seed: int
    basket: tuple[ParentOrder, ...]
    orders: tuple[OrderTca, ...]
    summary: PolicySummary


class FitInfo(_Frozen):
    """Where the adaptive policy's parameters came from (never the evaluation day)."""

    fit_data: DataRef
    params_file: str | None
    params: dict[str, str]
    #: The adaptive policy and the fill model whose runs used this fit (a fit made by the compare follows the fill
    #: model's rule); None in results saved before them.
    policy: str | None = None
    fill_model: FillModelName | None = None


class CompareResult(_Frozen):
    """Several policies x fill models on one evaluation symbol-day, with paired verdicts against a baseline."""

    schema_version: str = SCHEMA_VERSION
    data: DataRef
    seed: int
    baseline: str
    runs: tuple[BacktestResult, ...]
    comparisons: tuple[PairedComparison, ...]
    frontier: tuple[FrontierPoint, ...]
    #: The fit each adaptive run used, one per (adaptive policy, fill model) in run order; () in results saved
    #: before it. Each adaptive run also names its own in `policy_params` (`fit_*`).
    fits: tuple[FitInfo, ...] = ()
    #: Only in results saved before `fits`: the fit of the last fill model run alone (the paper runs of a paper and
    #: queue compare used another fit). None in new results.
    fit: FitInfo | None = None
    #: The rule the verdicts follow, in words (`repeg.lab.stats.verdict_rule`); None in results saved before it.
    verdict_rule: str | None = None
