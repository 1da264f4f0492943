"""Bad input is a clean 422 with `detail`, never a 500, and stores nothing."""

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from items.models import Item
from servicekit.events.outbox import OutboxEvent

ITEMS = "/api/v1/items"
CreateItem = Callable[..., Awaitable[dict[str, Any]]]
StoredItem = Callable[[str], Awaitable[Item | None]]
Outbox = Callable[[], Awaitable[list[OutboxEvent]]]

# Raw JSON bodies: some of these cannot be written with `json=` (1e999, NaN, lone surrogates).
BAD_BODIES = {
    "missing title": ('{"price": "1"}', "title"),
    "empty title": ('{"title": ""}', "title"),
    "blank title": ('{"title": "   "}', "title"),
    "title too long": (json.dumps({"title": "x" * 201}), "title"),
    "title not a string": ('{"title": 12}', "title"),
    "title with NUL": ('{"title": "a\\u0000b"}', "title"),
    "title with lone surrogate": ('{"title": "\\ud800"}', "title"),
    "description too long": (json.dumps({"title": "t", "description": "x" * 5001}), "description"),
    "description with NUL": ('{"title": "t", "description": "\\u0000"}', "description"),
    "description with lone surrogate": ('{"title": "t", "description": "a\\udfff"}', "description"),
    "too many tags": (json.dumps({"title": "t", "tags": [f"t{n}" for n in range(21)]}), "tags"),
    "tag too long": (json.dumps({"title": "t", "tags": ["x" * 33]}), "tags"),
    "empty tag": ('{"title": "t", "tags": [""]}', "tags"),
    "blank tag": ('{"title": "t", "tags": ["  "]}', "tags"),
    "tag with NUL": ('{"title": "t", "tags": ["a\\u0000"]}', "tags"),
    "tag with lone surrogate": ('{"title": "t", "tags": ["\\ud800"]}', "tags"),
    "tags not a list": ('{"title": "t", "tags": "red"}', "tags"),
    "negative price": ('{"title": "t", "price": -0.01}', "price"),
    "1e999 price": ('{"title": "t", "price": 1e999}', "price"),
    "-1e999 price": ('{"title": "t", "price": -1e999}', "price"),
    "NaN price": ('{"title": "t", "price": NaN}', "price"),
    "Infinity price": ('{"title": "t", "price": Infinity}', "price"),
    "'NaN' price": ('{"title": "t", "price": "NaN"}', "price"),
    "'1e999' price": ('{"title": "t", "price": "1e999"}', "price"),
    "price with three decimals": ('{"title": "t", "price": "1.005"}', "price"),
    "price too large": ('{"title": "t", "price": "10000000000.00"}', "price"),
    "price not a number": ('{"title": "t", "price": "cheap"}', "price"),
}


def assert_clean_422(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail[0]["loc"][:2] == ["body", field]
    assert detail[0]["msg"]
    assert response.headers["X-Request-ID"]


@pytest.mark.parametrize(("raw", "field"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_create_item_with_bad_input_is_422(
    client: httpx.AsyncClient, alice: dict[str, str], outbox: Outbox, raw: str, field: str
) -> None:
    headers = alice | {"Content-Type": "application/json"}

    response = await client.post(f"{ITEMS}/", content=raw, headers=headers)

    assert_clean_422(response, field)
    listed = await client.get(f"{ITEMS}/", headers=alice)
    assert listed.json()["total"] == 0
    assert await outbox() == []


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(
    ("raw", "field"),
    [body for name, body in BAD_BODIES.items() if name != "missing title"],
    ids=[name for name in BAD_BODIES if name != "missing title"],
)
async def test_change_item_with_bad_input_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    create_item: CreateItem,
    stored_item: StoredItem,
    outbox: Outbox,
    method: str,
    raw: str,
    field: str,
) -> None:
    item = await create_item(title="Kept")
    headers = alice | {"Content-Type": "application/json"}

    response = await client.request(method, f"{ITEMS}/{item['id']}", content=raw, headers=headers)

    assert_clean_422(response, field)
    stored = await stored_item(item["id"])
    assert stored is not None
    assert (stored.title, stored.version) == ("Kept", 1)
    assert [event.type for event in await outbox()] == ["item.created"]


async def test_create_item_with_malformed_json_is_422(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    headers = alice | {"Content-Type": "application/json"}

    response = await client.post(f"{ITEMS}/", content='{"title": ', headers=headers)

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
