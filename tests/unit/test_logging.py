"""Logging: JSON lines to the given stream, bound run context, and no secret ever rendered."""

from __future__ import annotations

import io
import json
import sys
from decimal import Decimal

import pytest
import structlog

from repeg.logging import REDACTED, bind_run, configure_logging, secrets_from_environment

SECRET = "s3cr3t-value-0123456789"


def log_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_bound_run_and_correlation_ids() -> None:
    stream = io.StringIO()
    configure_logging(json_output=True, stream=stream, secrets=())
    with bind_run("r1", "c9"):
        structlog.get_logger().info("order_submitted", symbol="AAPL")
    structlog.get_logger().info("after")
    first, second = log_lines(stream)
    assert (first["event"], first["run_id"], first["correlation_id"], first["symbol"]) == (
        "order_submitted",
        "r1",
        "c9",
        "AAPL",
    )
    assert "run_id" not in second


def test_credential_named_fields_are_redacted_at_any_depth() -> None:
    stream = io.StringIO()
    configure_logging(json_output=True, stream=stream, secrets=())
    structlog.get_logger().info(
        "connect", api_key_id="AKXYZ", headers={"Authorization": "Bearer x", "host": "h"}
    )
    (line,) = log_lines(stream)
    assert line["api_key_id"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "host": "h"}


def test_known_secret_values_are_masked_inside_any_string() -> None:
    stream = io.StringIO()
    configure_logging(json_output=True, stream=stream, secrets=[SECRET])
    structlog.get_logger().warning("http_error", message=f"401 for header {SECRET}")
    assert SECRET not in stream.getvalue()
    assert log_lines(stream)[0]["message"] == f"401 for header {REDACTED}"


def test_secrets_are_collected_from_credential_like_environment_variables() -> None:
    env = {"APCA_API_SECRET_KEY": SECRET, "HOME": "/root", "GITHUB_TOKEN": ""}
    assert secrets_from_environment(env) == [SECRET]


def test_level_filter_drops_lower_levels_and_keeps_the_level_itself_and_above() -> None:
    # Checking only that `info` is dropped let a filter that drops everything pass: `warning` is the command's
    # default level, so such a filter would silence every warning of a run.
    stream = io.StringIO()
    configure_logging(json_output=True, level="warning", stream=stream, secrets=())
    structlog.get_logger().info("quiet")
    structlog.get_logger().warning("heard")
    structlog.get_logger().error("loud")
    assert [line["event"] for line in log_lines(stream)] == ["heard", "loud"]


def test_console_output_is_human_readable() -> None:
    stream = io.StringIO()
    configure_logging(json_output=False, stream=stream, secrets=())
    structlog.get_logger().info("phase_started", side="sell")
    assert "phase_started" in stream.getvalue()
    assert "side=sell" in stream.getvalue()


def test_decimals_render_as_exact_text_in_json() -> None:
    stream = io.StringIO()
    configure_logging(json_output=True, stream=stream, secrets=())
    structlog.get_logger().info("fill", price=Decimal("101.2500"))
    assert log_lines(stream)[0]["price"] == "101.2500"


def test_default_stream_follows_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging(json_output=True, secrets=())
    replaced = io.StringIO()
    monkeypatch.setattr(sys, "stderr", replaced)
    structlog.get_logger().warning("late")
    assert log_lines(replaced)[0]["event"] == "late"


def test_known_secret_values_are_masked_inside_lists_and_rendered_objects() -> None:
    stream = io.StringIO()
    configure_logging(json_output=True, stream=stream, secrets=[SECRET])
    structlog.get_logger().warning(
        "http_error",
        argv=["--key", SECRET],
        headers=[{"Authorization": "Bearer x"}],
        error=RuntimeError(f"401 for header {SECRET}"),
    )
    assert SECRET not in stream.getvalue()
    (line,) = log_lines(stream)
    assert line["argv"] == ["--key", REDACTED]
    assert line["headers"] == [{"Authorization": REDACTED}]
    assert line["error"] == f"401 for header {REDACTED}"
