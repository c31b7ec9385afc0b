"""The built-in exchange simulator: the default broker (see `broker.py` for what it guarantees)."""

from repeg.brokers.simulator.account import SimAccount
from repeg.brokers.simulator.broker import SimulatedBroker
from repeg.brokers.simulator.factory import build_simulation
from repeg.brokers.simulator.fill_models import FillModel, FillPlan, PaperFillModel, RestingOrder
from repeg.brokers.simulator.latency import NO_LATENCY, LatencyModel

__all__ = [
    "NO_LATENCY",
    "FillModel",
    "FillPlan",
    "LatencyModel",
    "PaperFillModel",
    "RestingOrder",
    "SimAccount",
    "SimulatedBroker",
    "build_simulation",
]
