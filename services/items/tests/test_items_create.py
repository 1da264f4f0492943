"""POST /api/v1/items/: create an item."""

import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx

from items.models import Item

ITEMS = "/api/v1/items"
CreateItem = Callable[..., Awaitable[dict[str, Any]]]
StoredItem = Callable[[str], Awaitable[Item | None]]


async def test_create_item_is_201_with_location_and_etag(
    client: httpx.AsyncClient, alice: dict[str, str], alice_id: uuid.UUID
) -> None:
    body = {"title": "A lamp", "description": "Brass", "price": "19.99", "tags": ["home"]}

    response = await client.post(f"{ITEMS}/", json=body, headers=alice)

    assert response.status_code == 201
    item = response.json()
    assert item["title"] == "A lamp"
    assert item["description"] == "Brass"
    assert item["price"] == "19.99"
    assert item["tags"] == ["home"]
    assert item["owner_id"] == str(alice_id)
    assert item["version"] == 1
    assert item["created_at"] == item["updated_at"]
    assert response.headers["Location"] == f"{ITEMS}/{item['id']}"
    assert response.headers["ETag"] == f'"{uuid.UUID(item["id"]).hex}-1"'
    fetched = await client.get(response.headers["Location"], headers=alice)
    assert fetched.status_code == 200
    assert fetched.json() == item
    assert fetched.headers["ETag"] == response.headers["ETag"]


async def test_create_item_with_only_a_title_has_defaults(
    client: httpx.AsyncClient, alice: dict[str, str], stored_item: StoredItem
) -> None:
    response = await client.post(f"{ITEMS}/", json={"title": "Bare"}, headers=alice)

    assert response.status_code == 201
    item = response.json()
    assert (item["description"], item["price"], item["tags"]) == (None, None, [])
    stored = await stored_item(item["id"])
    assert stored is not None
    assert (stored.description, stored.price, stored.tags) == (None, None, [])


async def test_create_item_without_trailing_slash_is_201(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.post(ITEMS, json={"title": "No slash"}, headers=alice)

    assert response.status_code == 201
    assert response.json()["title"] == "No slash"


async def test_create_item_normalises_title_and_tags(
    client: httpx.AsyncClient, alice: dict[str, str], stored_item: StoredItem
) -> None:
    body = {"title": "  Lamp  ", "tags": [" Red", "red ", "Blue", "RED", "green"]}

    response = await client.post(f"{ITEMS}/", json=body, headers=alice)

    assert response.status_code == 201
    assert response.json()["title"] == "Lamp"
    assert response.json()["tags"] == ["red", "blue", "green"]
    stored = await stored_item(response.json()["id"])
    assert stored is not None
    assert stored.tags == ["red", "blue", "green"]


async def test_create_item_keeps_price_as_exact_decimal(
    client: httpx.AsyncClient, alice: dict[str, str], stored_item: StoredItem
) -> None:
    cases = [("0.1", "0.10"), (0.3, "0.30"), (5, "5.00"), ("9999999999.99", "9999999999.99")]
    for sent, shown in cases:
        response = await client.post(
            f"{ITEMS}/", json={"title": "Priced", "price": sent}, headers=alice
        )

        assert response.status_code == 201, sent
        assert response.json()["price"] == shown
        stored = await stored_item(response.json()["id"])
        assert stored is not None
        assert stored.price == Decimal(shown)


async def test_create_item_with_zero_price_is_201(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.post(f"{ITEMS}/", json={"title": "Free", "price": 0}, headers=alice)

    assert response.status_code == 201
    assert response.json()["price"] == "0.00"


async def test_create_item_ignores_owner_and_version_in_body(
    client: httpx.AsyncClient, alice: dict[str, str], alice_id: uuid.UUID
) -> None:
    body = {"title": "Mine", "owner_id": str(uuid.uuid4()), "version": 7, "id": str(uuid.uuid4())}

    response = await client.post(f"{ITEMS}/", json=body, headers=alice)

    assert response.status_code == 201
    assert response.json()["owner_id"] == str(alice_id)
    assert response.json()["version"] == 1
    assert response.json()["id"] != body["id"]


async def test_create_item_with_twenty_tags_of_32_chars_is_201(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    tags = [f"{n:02d}" + "x" * 30 for n in range(20)]

    response = await client.post(f"{ITEMS}/", json={"title": "T", "tags": tags}, headers=alice)

    assert response.status_code == 201
    assert response.json()["tags"] == tags


async def test_create_item_with_200_char_title_is_201(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.post(f"{ITEMS}/", json={"title": "é" * 200}, headers=alice)

    assert response.status_code == 201
    assert response.json()["title"] == "é" * 200


async def test_create_item_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{ITEMS}/", json={"title": "Anonymous"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"detail": "Not authenticated"}
