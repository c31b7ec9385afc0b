"""Sweep grids: policy parameters x fill models x symbol-days, expanded into canonically ordered points.

A grid file is TOML::

    seed = 7                          # base seed of the whole sweep
    fill_models = ["paper", "queue"]  # default ["paper"]

    [basket]                          # a repeg.lab.baskets.BasketSpec (all fields optional)
    count = 50

    [[policy]]
    name = "ladder"                   # label; the point's policy label adds the swept values
    kind = "ladder"                   # the policy kind understood by repeg.lab.policies
    [policy.fixed]                    # parameters held constant
    escalation = "market"
    [policy.grid]                     # parameters swept: each a non-empty list of values
    initial_offset = [0.0, 0.25]
    fill_wait_seconds = [5, 10]

Every variant of every policy is validated when the grid is read, as its backtest will read it (its spec, and the
run configuration it runs under), so a bad value is refused before any point runs, naming the variant, the key
and the value.

Guarantees: the expansion is a pure function of the grid and the data files; points are sorted canonically
(symbol-day, fill model, policy label) and numbered from 0 in that order; each point's seed is derived from the
base seed and the symbol-day only (sha256, not Python's salted `hash`), so every policy on a symbol-day sees the
same basket and the same simulator randomness (common random numbers, which is what makes paired comparisons
between grid points meaningful).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from repeg.config import missing_or_refused, withheld
from repeg.errors import ConfigError, SweepError
from repeg.lab.backtest import LAB_BASE_CONFIG, budget_config
from repeg.lab.baskets import BasketSpec
from repeg.lab.fit import load_params
from repeg.lab.models import FillModelName
from repeg.lab.policies import AdaptiveSpec, PolicySpec, run_config, said, spec_refused

#: A parameter value as TOML gives it (lists for schedules such as re-peg steps). A boolean in a list stays a
#: boolean (for the policy to refuse where a number belongs), never the number 1.
ParamValue = str | int | float | bool | list[StrictBool | int | float]

_DAY_KEY = re.compile(r"^(.*?\d{8})")
_SPEC: TypeAdapter[PolicySpec] = TypeAdapter(PolicySpec)
#: Keys a `[[policy]]` table sets itself: as parameters they would run another kind, or rename the run.
_OWN_KEYS = frozenset({"kind", "name"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PolicyGrid(_Frozen):
    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    fixed: dict[str, ParamValue] = Field(default_factory=dict)
    grid: dict[str, list[ParamValue]] = Field(default_factory=dict)


class SweepGrid(_Frozen):
    seed: int = Field(default=0, strict=True)  # strict: TOML `true` is not seed 1
    fill_models: tuple[FillModelName, ...] = Field(default=(FillModelName.PAPER,), min_length=1)
    basket: BasketSpec = BasketSpec()
    policy: tuple[PolicyGrid, ...] = Field(min_length=1)

    @field_validator("fill_models")
    @classmethod
    def _each_model_once(cls, models: tuple[FillModelName, ...]) -> tuple[FillModelName, ...]:
        if len(set(models)) != len(models):
            raise ValueError(
                "each fill model at most once: a repeated one runs (and records) every point twice"
            )
        return models


class SymbolDay(_Frozen):
    """One day of one symbol's data: a quote file and, for the queue model, its trade file."""

    quotes_file: str
    trades_file: str | None = None


class SweepPoint(_Frozen):
    """One backtest of the sweep. `params` holds fixed and swept values together, canonically ordered."""

    point_id: int
    policy: str
    kind: str
    params: dict[str, ParamValue]
    fill_model: FillModelName
    data: SymbolDay
    basket: BasketSpec
    seed: int


def load_grid(path: Path) -> SweepGrid:
    """Read and validate a grid file; every defect is a `SweepError` naming the file and the problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SweepError(str(path), f"cannot read grid: {exc}") from exc
    except RecursionError:  # tables or arrays nested beyond the parser's depth: this file is at fault
        raise SweepError(str(path), "nested too deeply") from None
    return grid_from_mapping(raw, where=str(path))


def grid_from_mapping(raw: Mapping[str, object], where: str = "grid") -> SweepGrid:
    try:
        grid = SweepGrid.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        # key=value: reason, the value shown as a configuration's is (`repeg.config.refused`: never a text that
        # may be a secret); not chained: pydantic's text prints the input
        raise SweepError(where, said(missing_or_refused(first, loc))) from None
    for policy in grid.policy:
        for key in sorted(_OWN_KEYS & (policy.fixed.keys() | policy.grid.keys())):
            raise SweepError(where, f"policy {policy.name!r}: {key} is the policy's own key, not a parameter")
        for key, values in policy.grid.items():
            if not values:
                raise SweepError(where, f"policy {policy.name!r}: grid.{key} is an empty list")
            if key in policy.fixed:
                raise SweepError(where, f"policy {policy.name!r}: {key} is both fixed and swept")
    for policy in grid.policy:
        _check_variants(policy, grid.basket, where)
    return grid


def variant_spec(kind: str, label: str, params: Mapping[str, ParamValue]) -> PolicySpec:
    """The policy specification of one variant: its kind, its label as name, its parameters."""
    return _SPEC.validate_python({"kind": kind, "name": label, **params})


def _check_variants(policy: PolicyGrid, basket: BasketSpec, where: str) -> None:
    """Read every variant of `policy` as its backtest will: its spec, then the run configuration it runs under."""
    base = budget_config(LAB_BASE_CONFIG, basket.budget_seconds)
    for label, params in _policy_variants(policy):
        try:
            spec = variant_spec(policy.kind, label, params)
            run_config(spec, base)
            _check_adaptive(spec)
        except ValidationError as exc:  # shown as a policy file's error is; not chained (pydantic prints it)
            raise SweepError(
                where, f"policy {_said_label(policy, params)!r}: {said(spec_refused(exc))}"
            ) from None
        except ConfigError as exc:
            raise SweepError(where, f"policy {_said_label(policy, params)!r}: {said(exc)}") from exc


def _check_adaptive(spec: PolicySpec) -> None:
    """An adaptive variant's parameters, read as its points will read them: a sweep has no fit data, so it needs a
    readable `params_file` (`repeg fit`); `ConfigError` otherwise."""
    if not isinstance(spec, AdaptiveSpec):
        return
    if spec.params_file is None:
        raise ConfigError(
            "params_file", None, "a sweep's adaptive policy needs parameters fitted on other days (repeg fit)"
        )
    load_params(Path(spec.params_file))


def _said_label(policy: PolicyGrid, params: Mapping[str, ParamValue]) -> str:
    """A variant's label as a refusal names it: a swept value a configuration error would withhold (it may be a
    pasted secret, `repeg.config.withheld`) is said by its kind."""
    return _label(policy.name, {key: params[key] for key in policy.grid}, _said_value)


def _said_value(value: ParamValue) -> str:
    kind = withheld(value)
    return _canonical(value) if kind is None else f"<{kind}>"


def day_key(path: str) -> str:
    """The part of a file name up to its YYYYMMDD date (``xxx_20180102``): how quotes meet their trades."""
    name = Path(path).name
    found = _DAY_KEY.match(name)
    if found is None:
        raise SweepError(path, "file name carries no YYYYMMDD date to pair quotes with trades")
    return found.group(1)


def pair_files(quotes: Sequence[str], trades: Sequence[str] | None) -> tuple[SymbolDay, ...]:
    """Pair each quote file with the trade file of the same day key; with trades given, a missing one is an error."""
    if not quotes:
        raise SweepError("--quotes", "the pattern matched no file")
    if trades is None:
        return tuple(SymbolDay(quotes_file=q) for q in sorted(quotes))
    by_key: dict[str, str] = {}
    for t in trades:
        key = day_key(t)
        if key in by_key:
            raise SweepError(t, f"a second trade file for day key {key!r} (first: {by_key[key]})")
        by_key[key] = t
    days = []
    for q in sorted(quotes):
        match = by_key.get(day_key(q))
        if match is None:
            raise SweepError(q, f"no trade file with day key {day_key(q)!r}")
        days.append(SymbolDay(quotes_file=q, trades_file=match))
    return tuple(days)


def derive_seed(base_seed: int, data: SymbolDay) -> int:
    """A 63-bit seed from the base seed and the quote file's name: stable across machines and processes."""
    text = f"{base_seed}|{Path(data.quotes_file).name}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def _canonical(value: ParamValue) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _label(name: str, swept: Mapping[str, ParamValue], say: Callable[[ParamValue], str] = _canonical) -> str:
    if not swept:
        return name
    return name + "[" + ",".join(f"{k}={say(v)}" for k, v in sorted(swept.items())) + "]"


def _policy_variants(policy: PolicyGrid) -> list[tuple[str, dict[str, ParamValue]]]:
    keys = sorted(policy.grid)
    variants = []
    for combo in itertools.product(*(policy.grid[k] for k in keys)):
        swept = dict(zip(keys, combo, strict=True))
        params = dict(sorted({**policy.fixed, **swept}.items()))
        variants.append((_label(policy.name, swept), params))
    return variants


def expand(grid: SweepGrid, days: Sequence[SymbolDay]) -> tuple[SweepPoint, ...]:
    """Every grid point, canonically ordered and numbered; duplicate policy labels are refused."""
    variants = [(p.kind, label, params) for p in grid.policy for label, params in _policy_variants(p)]
    labels = [label for _, label, _ in variants]
    if len(set(labels)) != len(labels):
        raise SweepError("grid", "two policies expand to the same label; give them distinct names")
    rows = sorted(
        (
            (day, model, kind, label, params)
            for day in days
            for model in grid.fill_models
            for kind, label, params in variants
        ),
        key=lambda r: (r[0].quotes_file, r[1].value, r[3]),
    )
    return tuple(
        SweepPoint(
            point_id=i,
            policy=label,
            kind=kind,
            params=params,
            fill_model=model,
            data=day,
            basket=grid.basket,
            seed=derive_seed(grid.seed, day),
        )
        for i, (day, model, kind, label, params) in enumerate(rows)
    )
