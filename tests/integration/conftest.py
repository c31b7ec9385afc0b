"""Fixtures shared by integration tests (the loopback fake Alpaca and an adapter connected to it)."""

from tests.fakes.alpaca_fixtures import alpaca, fake_alpaca

__all__ = ["alpaca", "fake_alpaca"]
