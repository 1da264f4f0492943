"""Every change stages its event in the outbox, in the change's transaction; a failed one none."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from servicekit.events.outbox import OutboxEvent

ITEMS = "/api/v1/items"
CreateItem = Callable[..., Awaitable[dict[str, Any]]]
Outbox = Callable[[], Awaitable[list[OutboxEvent]]]


def etag(item: dict[str, Any]) -> str:
    return f'"{uuid.UUID(item["id"]).hex}-{item["version"]}"'


async def test_each_change_stages_its_event(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    alice_id: uuid.UUID,
    create_item: CreateItem,
    outbox: Outbox,
) -> None:
    item = await create_item()
    path = f"{ITEMS}/{item['id']}"

    assert (await client.put(path, json={"title": "Put"}, headers=alice)).status_code == 200
    assert (await client.patch(path, json={"title": "Patched"}, headers=alice)).status_code == 200
    assert (await client.delete(path, headers=alice)).status_code == 204

    events = await outbox()
    assert [event.type for event in events] == [
        "item.created",
        "item.updated",
        "item.updated",
        "item.deleted",
    ]
    # Each carries the item's version after the change; a deletion, the last one.
    expected = {"item_id": item["id"], "owner_id": str(alice_id)}
    assert [event.data for event in events] == [
        {**expected, "version": version} for version in (1, 2, 3, 3)
    ]
    assert all(event.producer == "items" for event in events)
    assert all(event.published_at is None for event in events)


async def test_event_carries_the_request_id(
    client: httpx.AsyncClient, alice: dict[str, str], outbox: Outbox
) -> None:
    response = await client.post(
        f"{ITEMS}/", json={"title": "Traced"}, headers=alice | {"X-Request-ID": "trace-42"}
    )

    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == "trace-42"
    [event] = await outbox()
    assert event.request_id == "trace-42"


async def test_admin_change_event_names_the_owner(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    alice_id: uuid.UUID,
    create_item: CreateItem,
    outbox: Outbox,
) -> None:
    item = await create_item()

    response = await client.patch(f"{ITEMS}/{item['id']}", json={"title": "Mod"}, headers=admin)

    assert response.status_code == 200
    assert (await outbox())[-1].data == {
        "item_id": item["id"],
        "owner_id": str(alice_id),
        "version": 2,
    }


async def test_failed_changes_stage_no_event(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    bob: dict[str, str],
    create_item: CreateItem,
    outbox: Outbox,
) -> None:
    item = await create_item()
    path = f"{ITEMS}/{item['id']}"
    await client.patch(path, json={"title": "v2"}, headers=alice)
    stale = alice | {"If-Match": etag(item)}
    unknown = f"{ITEMS}/{uuid.uuid4()}"

    failures = [
        await client.patch(path, json={"title": "stale"}, headers=stale),
        await client.put(path, json={"title": "stale"}, headers=stale),
        await client.delete(path, headers=stale),
        await client.patch(path, json={"title": "not bob's"}, headers=bob),
        await client.delete(path, headers=bob),
        await client.patch(unknown, json={"title": "nobody's"}, headers=alice),
        await client.delete(unknown, headers=alice),
        await client.post(f"{ITEMS}/", json={"title": ""}, headers=alice),
        await client.patch(path, json={"price": -1}, headers=alice),
    ]

    assert [r.status_code for r in failures] == [412, 412, 412, 404, 404, 404, 404, 422, 422]
    assert [event.type for event in await outbox()] == ["item.created", "item.updated"]
