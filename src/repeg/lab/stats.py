"""Seeded bootstrap intervals: the only way the lab calls two policies different.

Percentile bootstrap of the mean: resample the observations with replacement `resamples` times, take the mean of
each resample, and report the `(1 - level) / 2` and `(1 + level) / 2` quantiles of those means. For two policies
run on the same basket, the comparison is *paired*: per order, `cost(policy) - cost(baseline)`, bootstrapped as
one sample. Pairing removes the order-to-order variation that both policies share (the market moved the same way
for both), which is most of it, so paired intervals are much narrower than comparing two separate intervals.

Guarantees: the same inputs and seed give the same interval bit for bit; NaN observations are refused (a missing
cost must be dropped, or the pair excluded, by the caller and said so); a sample of one has a zero-width interval.

Small samples: the percentile bootstrap treats the sample's own spread as known, so its interval is too narrow
when there are few observations. With 2 pairs a "95%" interval is the range of the two differences and excludes
zero by chance half the time; with 4 about one time in 5; with 10 about one in 9. A verdict therefore needs at
least `MIN_PAIRS_FOR_VERDICT` pairs (with symmetric noise the false-verdict rate is then close to its nominal 5%;
with strongly skewed costs it still runs above it). The interval itself is reported as computed.

Weighted samples: a mean weighted by the orders' shares rests mostly on the large orders, so the pairs are counted
by Kish's effective number `(sum w)^2 / sum w^2` (`Interval.n_eff`), not one per order: 29 one-share orders and one
of a million shares are about one observation, and get no verdict. Equal weights give exactly the order count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from repeg.lab.models import Interval, Verdict

DEFAULT_RESAMPLES = 4000
DEFAULT_LEVEL = 0.95
#: The fewest paired orders a BETTER or WORSE verdict is drawn from (module docstring, "Small samples").
MIN_PAIRS_FOR_VERDICT = 30
#: Resampled values drawn at a time (8 bytes each, for the indices and again for the values): about 16 MB.
_BATCH_VALUES = 1 << 20


def _as_array(values: Sequence[float], what: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what}: need a non-empty 1-d sample, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: sample holds NaN or infinite values")
    return arr


def _weights_of(weights: Sequence[float] | None, size: int) -> npt.NDArray[np.float64] | None:
    """Positive weights of the same length, or None for the plain mean (none given, or all equal)."""
    if weights is None:
        return None
    w = _as_array(weights, "bootstrap_mean(weights)")
    if w.shape != (size,) or not np.all(w > 0.0):
        raise ValueError(f"weights: need {size} positive values, got shape {w.shape}")
    return None if np.all(w == w[0]) else w


def _draw(rng: np.random.Generator, rows: int, size: int, block: int) -> npt.NDArray[np.int64]:
    """`rows` resamples of `size` indices: runs of `block` consecutive ones (circular) from uniform starts; with
    `block` 1, `size` uniform indices (the draws of the plain bootstrap)."""
    starts = rng.integers(0, size, size=(rows, -(-size // block)))
    if block == 1:
        return starts
    runs = (starts[:, :, None] + np.arange(block)) % size
    return runs.reshape(rows, -1)[:, :size]


def _resampled_means(
    arr: npt.NDArray[np.float64],
    w: npt.NDArray[np.float64] | None,
    *,
    seed: int,
    resamples: int,
    block: int = 1,
) -> npt.NDArray[np.float64]:
    """The mean of each of `resamples` resamples, drawn in batches of about `_BATCH_VALUES` values: the generator
    yields the same indices batched or not, so the means are those of one draw, in bounded memory."""
    rng = np.random.default_rng(seed)
    rows = max(1, _BATCH_VALUES // arr.size)
    out = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, rows):
        idx = _draw(rng, min(rows, resamples - start), arr.size, block)
        chunk = arr[idx].mean(axis=1) if w is None else (arr[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
        out[start : start + len(chunk)] = chunk
    return out


def bootstrap_mean(
    values: Sequence[float],
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    weights: Sequence[float] | None = None,
    block: int = 1,
) -> Interval:
    """Mean of `values` with its percentile bootstrap interval; with `weights` (e.g. each order's shares) the
    weighted mean, each resample's mean weighted by the weights of the observations it drew. Equal weights give
    the plain mean, computed as such (the same numbers bit for bit). With `block` over 1 (observations in time
    order that share the same moves, `overlap_block`) each resample is made of runs of `block` consecutive
    observations (circular block bootstrap), so their dependence stays in the interval. Such observations depend
    positively (orders sharing price moves), so the interval is never narrower than the one-at-a-time one: runs
    about as long as the sample are nearly the sample itself turned round (as long as it, exactly so), and their
    means barely vary."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    arr = _as_array(values, "bootstrap_mean")
    w = _weights_of(weights, arr.size)
    mean = float(arr.mean()) if w is None else float((arr * w).sum() / w.sum())
    if arr.size == 1:
        return Interval(mean=mean, low=mean, high=mean, n=1, level=level)
    block = min(block, arr.size)
    tail = (1.0 - level) / 2.0
    means = _resampled_means(arr, w, seed=seed, resamples=resamples, block=block)
    low, high = np.quantile(means, [tail, 1.0 - tail])
    if block > 1:  # runs near the sample's length see little of it: never narrower than one at a time
        one_low, one_high = np.quantile(
            _resampled_means(arr, w, seed=seed, resamples=resamples), [tail, 1.0 - tail]
        )
        low, high = min(low, one_low), max(high, one_high)
    return Interval(
        mean=mean,
        low=float(low),
        high=float(high),
        n=int(arr.size),
        level=level,
        n_eff=effective_count(w),
        block=None if block == 1 else block,
    )


def overlap_block(starts: Sequence[float], ends: Sequence[float]) -> int:
    """The run length orders are resampled in: `2 m + 1` (1 when no two budget windows `[start, end)` overlap).

    Two orders whose windows overlap live through the same price moves; their costs are taken to correlate as much
    as their windows share time (the shared time over the geometric mean of their lengths). `m + 1` is the mean,
    over the orders, of that correlation summed over every order (itself included), rounded up: n orders then stand
    for n / (m + 1) independent ones (`Interval.effective_n`), and a run of `2 m + 1` holds the orders each one
    depends on, `m` before and `m` after. Evenly spaced orders of one budget give the count of later arrivals inside
    a budget (10 s apart with 60 s budgets: 5); one long budget among orders that do not otherwise overlap adds
    little, not its own count of overlaps to every order. `starts` must be ascending."""
    s = np.asarray(starts, dtype=np.float64)
    e = np.asarray(ends, dtype=np.float64)
    if s.size == 0:
        return 1
    length = np.maximum(e - s, np.finfo(np.float64).tiny)
    last = np.searchsorted(s, e, side="left")  # the later orders j < last[i] arrive inside order i's window
    shared = 0.0
    for i in np.flatnonzero(last > np.arange(s.size) + 1):
        later = slice(i + 1, last[i])
        overlap = np.minimum(e[i], e[later]) - s[later]
        shared += 2.0 * float((overlap / np.sqrt(length[i] * length[later])).sum())
    m = math.ceil(shared / s.size - 1e-9)
    return 2 * m + 1


def effective_count(weights: npt.NDArray[np.float64] | None) -> float | None:
    """Kish's effective number of observations of a weighted mean, `(sum w)^2 / sum w^2`; None for equal weights
    (the count itself). Scaled by the largest weight first, so share counts of any size neither overflow nor
    lose the small ones."""
    if weights is None:
        return None
    w = weights / weights.max()
    return float(w.sum() ** 2 / (w * w).sum())


def paired_difference(
    policy: Sequence[float],
    baseline: Sequence[float],
    *,
    seed: int,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    weights: Sequence[float] | None = None,
    block: int = 1,
) -> Interval:
    """Bootstrap interval of the mean of `policy[i] - baseline[i]` (the same orders, in the same order),
    weighted by `weights[i]` when given, resampled in runs of `block` pairs (`bootstrap_mean`)."""
    a = _as_array(policy, "paired_difference(policy)")
    b = _as_array(baseline, "paired_difference(baseline)")
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    return bootstrap_mean(
        (a - b).tolist(), seed=seed, resamples=resamples, level=level, weights=weights, block=block
    )


def multiplicity_note(comparisons: int, level: float = DEFAULT_LEVEL) -> str:
    """That each verdict is its own test, and how often `comparisons` of them give one by chance: at most about
    `1 - level^N`, the rate of independent comparisons (Sidak's inequality); a compare's comparisons share the
    baseline's runs and the orders, so they are correlated and the rate is lower, by how much unknown."""
    made = f"{comparisons} comparison{'' if comparisons == 1 else 's'}"
    chance = f"about {1.0 - level**comparisons:.0%} of the time"
    if comparisons > 1:
        chance = f"up to {chance} (as if independent; fewer, as they share the orders and the baseline)"
    return (
        f"each verdict is tested on its own, no correction for the {made} made: with no true difference anywhere, "
        f"one or more verdicts come by chance {chance}"
    )


def runs_note(block: int) -> str:
    """How orders whose budgets overlap were resampled (`overlap_block`)."""
    return (
        f"orders whose budgets overlap share price moves, so pairs are resampled in runs of {block} consecutive "
        f"orders (block bootstrap) and count as one per {(block + 1) // 2} toward the {MIN_PAIRS_FOR_VERDICT}; their "
        "intervals still run narrow: in a simulated worst case with no true difference about 11% of comparisons "
        "got a verdict, against the nominal 5%"
    )


def verdict_rule(
    level: float = DEFAULT_LEVEL,
    *,
    per: Literal["share", "order"] = "share",
    comparisons: int | None = None,
    block: int | None = None,
) -> str:
    """The rule every verdict follows, in words, for a table title, the HTML report and the saved JSON; `per`
    says how the mean difference weighs the orders ("order" for results saved before they were share-weighted);
    `comparisons`, how many verdicts were drawn together (`multiplicity_note`); `block`, the longest run the
    pairs were resampled in (`runs_note`; None or 1: one at a time)."""
    many = "" if not comparisons else f"; {multiplicity_note(comparisons, level)}"
    if block is not None and block > 1:
        many += f"; {runs_note(block)}"
    counted = (
        " (counted by their effective number (sum of shares)^2 / sum of squared shares when their sizes differ, "
        "so that a few large orders carrying the mean count as few)"
        if per == "share"
        else ""
    )
    return (
        f"better or worse than the baseline only when the paired {level:.0%} interval of the mean "
        f"difference per {per} excludes 0, on at least {MIN_PAIRS_FOR_VERDICT} paired orders{counted}; on fewer the "
        f"interval is shown as computed but no verdict is drawn (the bootstrap interval of so few is too narrow){many}"
    )


def verdict_withheld(diff: Interval) -> str | None:
    """Why `verdict_of(diff)` gives no BETTER/WORSE whatever its interval shows (too few pairs, by their effective
    number when weighted unequally), else None."""
    if diff.effective_n() >= MIN_PAIRS_FOR_VERDICT:
        return None
    why = [
        *(["weighted by their shares"] if diff.n_eff is not None else []),
        *(["with overlapping budgets"] if diff.block is not None else []),
    ]
    counted = (
        f"{diff.n} paired orders"
        if not why
        else f"{diff.n} paired orders {' and '.join(why)} count as {diff.effective_n():.1f} (effective number)"
    )
    return (
        f"no verdict: {counted}, fewer than the {MIN_PAIRS_FOR_VERDICT} a verdict needs; "
        "the interval is too narrow on so few to tell the policies apart"
    )


def verdict_of(diff: Interval) -> Verdict:
    """BETTER (cheaper) or WORSE only when the paired interval excludes zero; costs: lower is better.

    Fewer than `MIN_PAIRS_FOR_VERDICT` pairs never get a verdict: a single pair's interval has zero width because
    one observation carries no spread, and a few pairs' interval is far narrower than the uncertainty it stands for.
    Weighted unequally, the pairs are counted by their effective number (`Interval.effective_n`).
    """
    if diff.effective_n() < MIN_PAIRS_FOR_VERDICT:
        return Verdict.INDISTINGUISHABLE
    if diff.high < 0.0:
        return Verdict.BETTER
    if diff.low > 0.0:
        return Verdict.WORSE
    return Verdict.INDISTINGUISHABLE
