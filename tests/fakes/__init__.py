"""Loopback fakes of external services, started by test fixtures (127.0.0.1 only)."""
