"""A run's TOML configuration file: `[execution]` and `[simulator]` (with `.market` and `.latency`).

Every key is validated before anything runs; the first bad one raises `ConfigError` naming it. Unknown
top-level tables are refused too, so that a typo (`[executon]`) cannot silently fall back to defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from repeg.brokers.simulator.account import SimAccount
from repeg.brokers.simulator.latency import LatencyModel
from repeg.config import (
    ExecutionConfig,
    check_run_tables,
    config_from_mapping,
    read_toml,
    refused,
)
from repeg.simulation import (
    LATENCY_KEY,
    MARKET_KEY,
    MarketSettings,
    account_from_mapping,
    check_simulator_symbols,
    latency_from_mapping,
    market_from_mapping,
    seed_from_mapping,
)

EXECUTION = "execution"
SIMULATOR = "simulator"
#: Top-level tables a run configuration may hold. Modules that add settings add their table here.
KNOWN_TABLES: tuple[str, ...] = (EXECUTION, SIMULATOR)


@dataclass(frozen=True, slots=True)
class RunSettings:
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    account: SimAccount = field(default_factory=SimAccount)
    market: MarketSettings = field(default_factory=MarketSettings)
    latency: LatencyModel = field(default_factory=LatencyModel)
    #: Seed of the synthetic market and of the simulator's partial fills (`--seed` overrides it).
    seed: int = 0


def _table(raw: Mapping[str, object], key: str, parent: str = "") -> Mapping[str, object]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise refused(f"{parent}{key}", value, "must be a table", wrong_kind=True)
    return value


def settings_from_mapping(raw: Mapping[str, object]) -> RunSettings:
    """Validate a parsed TOML document."""
    check_run_tables(raw, KNOWN_TABLES)  # as load_config does
    simulator = _table(raw, SIMULATOR)
    check_simulator_symbols(simulator)
    return RunSettings(
        execution=config_from_mapping(_table(raw, EXECUTION)),
        account=account_from_mapping(simulator),
        market=market_from_mapping(_table(simulator, MARKET_KEY, f"{SIMULATOR}.")),
        latency=latency_from_mapping(_table(simulator, LATENCY_KEY, f"{SIMULATOR}.")),
        seed=seed_from_mapping(simulator),
    )


def load_settings(path: Path | None) -> RunSettings:
    """Read a run configuration file (the `--config` of `run` and `resume`: a refused file names that option); None
    gives every default."""
    if path is None:
        return RunSettings()
    return settings_from_mapping(read_toml(path, "--config"))
