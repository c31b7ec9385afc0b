"""Execution-quality lab: fill models, baskets, policies as configuration, backtests, TCA and statistics."""
