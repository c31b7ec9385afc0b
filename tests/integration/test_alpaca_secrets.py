"""The Alpaca secret never appears in a log line (structlog or stdlib, at DEBUG) or in a run event."""

from __future__ import annotations

import logging

import pytest
from structlog.testing import capture_logs
from tests.fakes.alpaca_server import FakeAlpacaServer
from tests.integration.test_alpaca_end_to_end import SPECS, run_through_alpaca

from repeg.brokers.alpaca.credentials import load_credentials
from repeg.domain.events import RUN_EVENT_ADAPTER


async def test_no_log_line_and_no_run_event_contains_the_secret(
    fake_alpaca: FakeAlpacaServer, caplog: pytest.LogCaptureFixture
):
    secret = fake_alpaca.secret_key
    caplog.set_level(logging.DEBUG)
    fake_alpaca.fail("POST", "/v2/orders", 500, times=1)  # error paths log too
    with capture_logs() as structured:
        result, recorder = await run_through_alpaca(fake_alpaca, SPECS, run_id="rSECRET")
    assert result.legs
    assert structured, "the run logged nothing: the test would prove nothing"
    assert all(secret not in repr(entry) for entry in structured)
    assert caplog.records, "stdlib logging captured nothing: the test would prove nothing"
    assert secret not in caplog.text
    assert all(secret not in record.getMessage() for record in caplog.records)
    assert recorder.events
    assert all(secret not in RUN_EVENT_ADAPTER.dump_json(event).decode() for event in recorder.events)


def test_credentials_never_show_the_secret():
    credentials = load_credentials({"APCA_API_KEY_ID": "PKID", "APCA_API_SECRET_KEY": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(credentials)
    assert "s3cr3t-value" not in str(credentials)
    assert "s3cr3t-value" not in credentials.model_dump_json()
    assert credentials.secret_key.get_secret_value() == "s3cr3t-value"
