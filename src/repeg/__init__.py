"""repeg: phased smart-limit execution of US equity trades.

The public API, importable from the package root:

    from repeg import ExecutionConfig, load_plan, simulate, execute_async

Names are resolved on first use, so `import repeg` stays cheap (the engine, numpy and pyarrow load only when
something that needs them is touched). Everything else under `repeg.` is internal and may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from repeg.api import execute, execute_async
    from repeg.brokers.simulator.account import SimAccount
    from repeg.config import ExecutionConfig, load_config
    from repeg.domain.plan import LegSpec, Plan, SkippedTrade, TargetWeight, TradeIntent
    from repeg.errors import (
        BrokerError,
        ConfigError,
        NotTradableError,
        PlanError,
        PlanInputError,
        RepegError,
        SafetyLimitError,
        UnknownSymbolError,
    )
    from repeg.planning.parse import load_plan
    from repeg.report.result import ExecutionResult, LegResult
    from repeg.simulation import MarketSettings, simulate

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "execute": "repeg.api",
    "execute_async": "repeg.api",
    "simulate": "repeg.simulation",
    "MarketSettings": "repeg.simulation",
    "SimAccount": "repeg.brokers.simulator.account",
    "ExecutionConfig": "repeg.config",
    "load_config": "repeg.config",
    "LegSpec": "repeg.domain.plan",
    "Plan": "repeg.domain.plan",
    "SkippedTrade": "repeg.domain.plan",
    "TargetWeight": "repeg.domain.plan",
    "TradeIntent": "repeg.domain.plan",
    "BrokerError": "repeg.errors",
    "ConfigError": "repeg.errors",
    "NotTradableError": "repeg.errors",
    "PlanError": "repeg.errors",
    "PlanInputError": "repeg.errors",
    "RepegError": "repeg.errors",
    "SafetyLimitError": "repeg.errors",
    "UnknownSymbolError": "repeg.errors",
    "load_plan": "repeg.planning.parse",
    "ExecutionResult": "repeg.report.result",
    "LegResult": "repeg.report.result",
}

__all__ = [
    "BrokerError",
    "ConfigError",
    "ExecutionConfig",
    "ExecutionResult",
    "LegResult",
    "LegSpec",
    "MarketSettings",
    "NotTradableError",
    "Plan",
    "PlanError",
    "PlanInputError",
    "RepegError",
    "SafetyLimitError",
    "SimAccount",
    "SkippedTrade",
    "TargetWeight",
    "TradeIntent",
    "UnknownSymbolError",
    "__version__",
    "execute",
    "execute_async",
    "load_config",
    "load_plan",
    "simulate",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'repeg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
