"""Terminal tables of backtests and comparisons (rich), and the plain rows they are built from."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.table import Table

from repeg.lab.models import CompareResult, FrontierPoint, Interval, PairedComparison, PolicySummary, Verdict
from repeg.lab.stats import MIN_PAIRS_FOR_VERDICT, multiplicity_note, runs_note, verdict_withheld
from repeg.report.text import signed_text

_VERDICT_STYLE = {Verdict.BETTER: "green", Verdict.WORSE: "red", Verdict.INDISTINGUISHABLE: "yellow"}


def mean_text(mean: float, digits: int) -> str:
    """A mean with its sign, as `signed_text` reads a run's cost: one that rounds to zero reads +0, never -0 (a sign
    it does not carry at the precision shown). Rounded from the float as Python rounds it (half-even, its exact
    value), so a figure past `signed_text`'s 28 digits or not finite (a hand-edited result) reads as before."""
    shown = f"{mean:+.{digits}f}"
    return signed_text(Decimal(shown), digits) if float(shown) == 0 else shown


def fmt_interval(ci: Interval, digits: int = 2) -> str:
    """`mean [low, high]`, each signed; a bound keeps its sign where it rounds to zero (-0.00 is an interval ending
    below zero, which a verdict's interval may: docs/EXECUTION_QUALITY.md), the mean does not (`mean_text`)."""
    return f"{mean_text(ci.mean, digits)} [{ci.low:+.{digits}f}, {ci.high:+.{digits}f}]"


def _verdict_cell(s: PolicySummary, comparison: PairedComparison | None, baseline: str | None) -> str:
    if comparison is not None and verdict_withheld(comparison.diff_half_spreads) is not None:
        diff = comparison.diff_half_spreads
        weighed = diff.n_eff is not None or diff.block is not None
        pairs = f"{diff.n} pairs, {diff.effective_n():.1f} effective" if weighed else f"{diff.n} pairs"
        return f"[yellow]no verdict ({pairs} < {MIN_PAIRS_FOR_VERDICT})[/] {fmt_interval(diff)}"
    if comparison is not None:
        style = _VERDICT_STYLE[comparison.verdict]
        return f"[{style}]{comparison.verdict.value}[/] {fmt_interval(comparison.diff_half_spreads)}"
    return "baseline" if s.policy == baseline else "no comparison"


def summary_row(
    s: PolicySummary, comparison: PairedComparison | None, baseline: str | None = None
) -> list[str]:
    """One table row; the last cell is the paired verdict, "baseline" for the baseline run itself, or "no
    comparison" (the baseline did not run under this fill model, or no order could be paired)."""
    verdict = _verdict_cell(s, comparison, baseline)
    return [
        s.policy,
        s.fill_model.value,
        str(s.n_orders),
        f"{s.completion_rate:.1%}",
        fmt_interval(s.cost_bps),
        fmt_interval(s.cost_half_spreads),
        fmt_interval(s.cost_vs_oracle_half_spreads),
        f"{s.fill_rate_before_escalation:.1%}",
        fmt_interval(s.time_to_fill_s, 1),
        f"{s.repegs_mean:.2f}",
        verdict,
    ]


_COLUMNS = (
    "policy",
    "fill model",
    "orders",
    "completed",
    "cost bps [95% CI]",
    "cost half-spreads [95% CI]",
    "vs oracle (hs)",
    "filled before escalation",
    "time to fill s",
    "re-pegs",
    "vs market: paired diff hs",
)


def summary_table(
    summaries: Sequence[PolicySummary],
    comparisons: Sequence[PairedComparison],
    *,
    title: str,
    with_verdict: bool = True,
    baseline: str | None = None,
) -> Table:
    """One row per summary; the last column (paired verdict vs the baseline) only when `with_verdict`.

    `baseline` names the baseline policy (default: the one the comparisons name).
    """
    columns = _COLUMNS if with_verdict else _COLUMNS[:-1]
    if baseline is None and comparisons:
        baseline = comparisons[0].baseline
    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name, justify="left" if name in {"policy", "fill model"} else "right")
    by_key = {(c.policy, c.fill_model): c for c in comparisons}
    for s in summaries:
        table.add_row(*summary_row(s, by_key.get((s.policy, s.fill_model)), baseline)[: len(columns)])
    return table


def frontier_table(points: Sequence[FrontierPoint]) -> Table:
    table = Table(
        title="cost versus completion time (efficient = no policy both cheaper and faster)",
        title_justify="left",
    )
    for name in ("fill model", "policy", "mean time to fill s", "mean cost hs", "completed", "efficient"):
        table.add_column(name)
    for p in points:
        table.add_row(
            p.fill_model.value,
            p.policy,
            f"{p.mean_time_to_fill_s:.1f}",
            mean_text(p.mean_cost_half_spreads, 3),
            f"{p.completion_rate:.1%}",
            "yes" if p.efficient else "",
        )
    return table


def compare_tables(result: CompareResult) -> list[Table]:
    title = (
        f"{result.data.symbol} {result.data.day} (seed {result.seed}); costs vs arrival mid per share (orders "
        f"weighted by size), positive = paid; "
        f"verdict vs {result.baseline} only when the paired 95% interval excludes 0, on at least "
        f"{MIN_PAIRS_FOR_VERDICT} orders (their effective number when sizes differ)"
    )
    if result.comparisons:
        title += f"; {multiplicity_note(len(result.comparisons))}"
    block = max((c.diff_half_spreads.block or 1 for c in result.comparisons), default=1)
    if block > 1:
        title += f"; {runs_note(block)}"
    summaries = [r.summary for r in result.runs]
    return [
        summary_table(summaries, result.comparisons, title=title, baseline=result.baseline),
        frontier_table(result.frontier),
    ]
