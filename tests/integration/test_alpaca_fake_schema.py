"""The fake Alpaca answers in the shapes of Alpaca's published OpenAPI specifications (../shared/alpaca).

Skips cleanly when ../shared is absent; the fake itself never reads it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from tests.fakes.alpaca_server import FakeAlpacaServer

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "alpaca"


def _load(name: str) -> dict[str, Any]:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} not present (../shared is optional)")
    return json.loads(path.read_text(encoding="utf-8"))


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` is not JSON Schema: allow null explicitly."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_to_json_schema(value) for key, value in node.items()}
    if converted.pop("nullable", False):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def validator_for(spec: dict[str, Any], schema_name: str, *, array: bool = False) -> jsonschema.Validator:
    ref = {"$ref": f"#/components/schemas/{schema_name}"}
    root = {
        **({"type": "array", "items": ref} if array else ref),
        "components": _nullable_to_json_schema(spec["components"]),
    }
    return jsonschema.Draft7Validator(root)


@pytest.fixture
def trading_spec() -> dict[str, Any]:
    return _load("trading-api.json")


@pytest.fixture
def market_data_spec() -> dict[str, Any]:
    return _load("market-data-api.json")


class Client:
    def __init__(self, server: FakeAlpacaServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.headers = {"APCA-API-KEY-ID": server.key_id, "APCA-API-SECRET-KEY": server.secret_key}

    async def call(self, method: str, path: str, body: dict[str, str] | None = None, **params: str) -> Any:
        url = f"{self.server.base_url}{path}"
        async with self.session.request(
            method, url, json=body, params=params, headers=self.headers
        ) as answer:
            return answer.status, (await answer.json() if answer.status != 204 else None)


@pytest.fixture
async def client(fake_alpaca: FakeAlpacaServer):
    async with aiohttp.ClientSession() as session:
        yield Client(fake_alpaca, session)


ORDER = {
    "symbol": "AAPL",
    "qty": "5",
    "side": "buy",
    "type": "limit",
    "time_in_force": "day",
    "limit_price": "99.00",
}


async def test_order_answers_match_the_order_schema(client: Client, trading_spec):
    one, many = validator_for(trading_spec, "Order"), validator_for(trading_spec, "Order", array=True)
    status, created = await client.call("POST", "/v2/orders", {**ORDER, "client_order_id": "schema-1"})
    assert status == 200
    one.validate(created)
    one.validate((await client.call("GET", f"/v2/orders/{created['id']}"))[1])
    one.validate((await client.call("GET", "/v2/orders:by_client_order_id", client_order_id="schema-1"))[1])
    status, replaced = await client.call("PATCH", f"/v2/orders/{created['id']}", {"limit_price": "99.01"})
    assert status == 200
    one.validate(replaced)
    many.validate((await client.call("GET", "/v2/orders", status="all"))[1])


async def test_a_filled_order_matches_the_order_schema(client: Client, trading_spec):
    status, created = await client.call(
        "POST", "/v2/orders", {**ORDER, "limit_price": "100.10", "client_order_id": "s2"}
    )
    assert status == 200
    assert created["status"] == "filled"
    assert Decimal(created["filled_avg_price"]) == Decimal("100.10")
    validator_for(trading_spec, "Order").validate(created)


async def test_account_positions_asset_and_clock_match_their_schemas(client: Client, trading_spec):
    validator_for(trading_spec, "Account").validate((await client.call("GET", "/v2/account"))[1])
    validator_for(trading_spec, "Position", array=True).validate(
        (await client.call("GET", "/v2/positions"))[1]
    )
    validator_for(trading_spec, "Assets").validate((await client.call("GET", "/v2/assets/AAPL"))[1])
    validator_for(trading_spec, "legacy_clock").validate((await client.call("GET", "/v2/clock"))[1])


async def test_errors_match_the_error_schema(client: Client, trading_spec):
    status, body = await client.call(
        "POST", "/v2/orders", {**ORDER, "limit_price": "99.001", "client_order_id": "s3"}
    )
    assert status == 422
    validator_for(trading_spec, "Error").validate(body)


async def test_latest_quotes_match_the_market_data_schema(client: Client, market_data_spec):
    status, body = await client.call("GET", "/v2/stocks/quotes/latest", symbols="AAPL,MSFT")
    assert status == 200
    assert set(body["quotes"]) == {"AAPL", "MSFT"}
    validator_for(market_data_spec, "stock_latest_quotes_resp").validate(body)


def test_the_schema_check_rejects_a_malformed_order(trading_spec):
    with pytest.raises(jsonschema.ValidationError):
        validator_for(trading_spec, "Order").validate({"type": "limit", "time_in_force": "day", "qty": 5})
