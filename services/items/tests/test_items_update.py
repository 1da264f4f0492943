"""PUT, PATCH and DELETE /api/v1/items/{id}: ownership, versions and `If-Match`."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from items.models import Item

ITEMS = "/api/v1/items"
CreateItem = Callable[..., Awaitable[dict[str, Any]]]
StoredItem = Callable[[str], Awaitable[Item | None]]


def etag(item: dict[str, Any]) -> str:
    return f'"{uuid.UUID(item["id"]).hex}-{item["version"]}"'


FULL = {"title": "Lamp", "description": "Brass", "price": "10.00", "tags": ["home", "light"]}


async def test_replace_item_replaces_every_field(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item(**FULL)

    response = await client.put(f"{ITEMS}/{item['id']}", json={"title": "Desk"}, headers=alice)

    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "Desk"
    assert (body["description"], body["price"], body["tags"]) == (None, None, [])
    assert body["version"] == 2
    assert (body["id"], body["owner_id"], body["created_at"]) == (
        item["id"],
        item["owner_id"],
        item["created_at"],
    )
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(item["updated_at"])
    assert response.headers["ETag"] == etag(body)


async def test_update_item_changes_only_fields_sent(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item(**FULL)

    response = await client.patch(
        f"{ITEMS}/{item['id']}", json={"price": "12.5", "tags": ["Sale"]}, headers=alice
    )

    assert response.status_code == 200
    body = response.json()
    assert body == item | {
        "price": "12.50",
        "tags": ["sale"],
        "version": 2,
        "updated_at": body["updated_at"],
    }
    assert response.headers["ETag"] == etag(body)


async def test_update_item_with_null_clears_description_and_price(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item(**FULL)

    response = await client.patch(
        f"{ITEMS}/{item['id']}", json={"description": None, "price": None}, headers=alice
    )

    assert response.status_code == 200
    assert (response.json()["description"], response.json()["price"]) == (None, None)
    assert response.json()["title"] == "Lamp"


@pytest.mark.parametrize("field", ["title", "tags"])
async def test_update_item_with_null_required_field_is_422(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    create_item: CreateItem,
    stored_item: StoredItem,
    field: str,
) -> None:
    item = await create_item(**FULL)

    response = await client.patch(f"{ITEMS}/{item['id']}", json={field: None}, headers=alice)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    stored = await stored_item(item["id"])
    assert stored is not None
    assert stored.version == 1


async def test_every_change_bumps_the_version(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item()
    path = f"{ITEMS}/{item['id']}"

    first = await client.patch(path, json={"title": "One"}, headers=alice)
    second = await client.put(path, json={"title": "Two"}, headers=alice)
    third = await client.patch(path, json={}, headers=alice)

    assert [r.json()["version"] for r in (first, second, third)] == [2, 3, 4]
    assert len({r.headers["ETag"] for r in (first, second, third)}) == 3


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_update_item_with_current_etag_is_200(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem, method: str
) -> None:
    item = await create_item()

    response = await client.request(
        method,
        f"{ITEMS}/{item['id']}",
        json={"title": "Fresh"},
        headers=alice | {"If-Match": etag(item)},
    )

    assert response.status_code == 200
    assert response.json()["title"] == "Fresh"
    assert response.json()["version"] == 2


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_update_item_with_stale_etag_is_412(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    create_item: CreateItem,
    stored_item: StoredItem,
    method: str,
) -> None:
    item = await create_item(title="Original")
    stale = etag(item)
    await client.patch(f"{ITEMS}/{item['id']}", json={"title": "Changed"}, headers=alice)

    response = await client.request(
        method,
        f"{ITEMS}/{item['id']}",
        json={"title": "Lost update"},
        headers=alice | {"If-Match": stale},
    )

    assert response.status_code == 412
    assert response.json() == {"detail": "The resource has changed; fetch it again"}
    stored = await stored_item(item["id"])
    assert stored is not None
    assert (stored.title, stored.version) == ("Changed", 2)


@pytest.mark.parametrize(
    ("if_match", "status"),
    [
        ("*", 200),
        ('"other-tag", {current}', 200),
        ("W/{current}", 412),  # weak tags never match If-Match
        ("{current_unquoted}", 412),
        ("garbage", 412),
        ('"{other_item}-1"', 412),  # an ETag of another item, with the same version
    ],
)
async def test_update_item_if_match_forms(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    create_item: CreateItem,
    stored_item: StoredItem,
    if_match: str,
    status: int,
) -> None:
    item = await create_item(title="Original")
    header = if_match.format(
        current=etag(item),
        current_unquoted=etag(item).strip('"'),
        other_item=uuid.uuid4().hex,
    )

    response = await client.patch(
        f"{ITEMS}/{item['id']}", json={"title": "New"}, headers=alice | {"If-Match": header}
    )

    assert response.status_code == status
    stored = await stored_item(item["id"])
    assert stored is not None
    assert stored.title == ("New" if status == 200 else "Original")


async def test_concurrent_updates_with_one_etag_let_only_one_win(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    create_item: CreateItem,
    stored_item: StoredItem,
) -> None:
    item = await create_item()
    headers = alice | {"If-Match": etag(item)}

    responses = await asyncio.gather(
        *(
            client.patch(f"{ITEMS}/{item['id']}", json={"title": f"writer {n}"}, headers=headers)
            for n in range(5)
        )
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 412, 412, 412, 412]
    winner = next(r for r in responses if r.status_code == 200).json()
    stored = await stored_item(item["id"])
    assert stored is not None
    assert (stored.title, stored.version) == (winner["title"], 2)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_change_another_users_item_is_404_and_changes_nothing(
    client: httpx.AsyncClient,
    bob: dict[str, str],
    create_item: CreateItem,
    stored_item: StoredItem,
    method: str,
) -> None:
    item = await create_item(title="Alice's", price="5")
    body = {"title": "Bob was here", "price": "0"} if method != "DELETE" else None

    response = await client.request(method, f"{ITEMS}/{item['id']}", json=body, headers=bob)

    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}
    stored = await stored_item(item["id"])
    assert stored is not None
    assert (stored.title, stored.price, stored.version) == ("Alice's", Decimal("5.00"), 1)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_change_another_users_item_with_its_etag_is_404(
    client: httpx.AsyncClient,
    bob: dict[str, str],
    create_item: CreateItem,
    stored_item: StoredItem,
    method: str,
) -> None:
    item = await create_item(title="Alice's")
    body = {"title": "Bob was here"} if method != "DELETE" else None

    response = await client.request(
        method, f"{ITEMS}/{item['id']}", json=body, headers=bob | {"If-Match": '"stale-0"'}
    )

    assert response.status_code == 404  # not 412: that would reveal the item exists
    assert await stored_item(item["id"]) is not None


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_change_unknown_item_is_404(
    client: httpx.AsyncClient, alice: dict[str, str], method: str
) -> None:
    body = {"title": "x"} if method != "DELETE" else None

    response = await client.request(method, f"{ITEMS}/{uuid.uuid4()}", json=body, headers=alice)

    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}


async def test_update_another_users_item_as_admin_keeps_its_owner(
    client: httpx.AsyncClient, admin: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item(title="Rude word")

    response = await client.patch(
        f"{ITEMS}/{item['id']}", json={"title": "Moderated"}, headers=admin
    )

    assert response.status_code == 200
    assert response.json()["title"] == "Moderated"
    assert response.json()["owner_id"] == item["owner_id"]


async def test_delete_item_is_204_then_404(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    create_item: CreateItem,
    stored_item: StoredItem,
) -> None:
    item = await create_item()

    first = await client.delete(f"{ITEMS}/{item['id']}", headers=alice)
    second = await client.delete(f"{ITEMS}/{item['id']}", headers=alice)

    assert first.status_code == 204
    assert first.content == b""
    assert second.status_code == 404
    assert second.json() == {"detail": "Item not found"}
    assert await stored_item(item["id"]) is None
    assert (await client.get(f"{ITEMS}/{item['id']}", headers=alice)).status_code == 404


async def test_delete_item_with_current_etag_is_204(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    create_item: CreateItem,
    stored_item: StoredItem,
) -> None:
    item = await create_item()

    response = await client.delete(
        f"{ITEMS}/{item['id']}", headers=alice | {"If-Match": etag(item)}
    )

    assert response.status_code == 204
    assert await stored_item(item["id"]) is None


async def test_delete_item_with_stale_etag_is_412(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    create_item: CreateItem,
    stored_item: StoredItem,
) -> None:
    item = await create_item()
    await client.patch(f"{ITEMS}/{item['id']}", json={"title": "Changed"}, headers=alice)

    response = await client.delete(
        f"{ITEMS}/{item['id']}", headers=alice | {"If-Match": etag(item)}
    )

    assert response.status_code == 412
    assert response.json() == {"detail": "The resource has changed; fetch it again"}
    stored = await stored_item(item["id"])
    assert stored is not None
    assert stored.version == 2


async def test_delete_another_users_item_as_admin_is_204(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    create_item: CreateItem,
    stored_item: StoredItem,
) -> None:
    item = await create_item()

    response = await client.delete(f"{ITEMS}/{item['id']}", headers=admin)

    assert response.status_code == 204
    assert await stored_item(item["id"]) is None
