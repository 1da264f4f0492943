"""HTTP's read and cache rules on items (RFC 9110/9111): conditional GET of an item and of a
list, HEAD, `Allow`, `Cache-Control` and the 403's bearer challenge."""

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

ITEMS = "/api/v1/items"
CreateItem = Callable[..., Awaitable[dict[str, Any]]]


async def test_item_with_its_current_etag_is_304_and_a_changed_one_is_200(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item(title="Desk")
    url = f"{ITEMS}/{item['id']}"
    etag = (await client.get(url, headers=alice)).headers["ETag"]

    unchanged = await client.get(url, headers=alice | {"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["ETag"] == etag
    assert unchanged.headers["Cache-Control"] == "private, no-cache"

    await client.patch(url, json={"title": "Table"}, headers=alice)
    changed = await client.get(url, headers=alice | {"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["title"] == "Table"
    assert changed.headers["ETag"] != etag


async def test_another_users_etag_reveals_nothing(
    client: httpx.AsyncClient, bob: dict[str, str], alice: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item()
    etag = (await client.get(f"{ITEMS}/{item['id']}", headers=alice)).headers["ETag"]

    response = await client.get(f"{ITEMS}/{item['id']}", headers=bob | {"If-None-Match": etag})

    assert response.status_code == 404


async def test_list_has_an_etag_that_changes_with_the_list(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    await create_item(title="One")
    first = await client.get(f"{ITEMS}/", headers=alice)
    etag = first.headers["ETag"]
    assert (
        await client.get(f"{ITEMS}/", headers=alice | {"If-None-Match": etag})
    ).status_code == 304

    await create_item(title="Two")
    after = await client.get(f"{ITEMS}/", headers=alice | {"If-None-Match": etag})
    assert after.status_code == 200
    assert after.json()["total"] == first.json()["total"] + 1


async def test_head_of_an_item_is_its_get_without_body(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item()
    get = await client.get(f"{ITEMS}/{item['id']}", headers=alice)
    head = await client.head(f"{ITEMS}/{item['id']}", headers=alice)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["ETag"] == get.headers["ETag"]
    assert head.headers["Content-Length"] == get.headers["Content-Length"]
    assert (await client.head(f"{ITEMS}/health")).status_code == 200


async def test_allow_names_every_method_of_the_collection_and_of_an_item(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    item = await create_item()
    put = await client.put(f"{ITEMS}/", json={"title": "x"}, headers=alice)
    assert put.status_code == 405
    assert put.headers["Allow"] == "GET, HEAD, POST, OPTIONS"
    options = await client.options(f"{ITEMS}/{item['id']}")
    assert options.status_code == 204
    assert options.headers["Allow"] == "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"


async def test_a_non_admin_asking_for_another_owner_gets_insufficient_scope(
    client: httpx.AsyncClient, alice: dict[str, str], bob_id: Any
) -> None:
    response = await client.get(f"{ITEMS}/", params={"owner_id": str(bob_id)}, headers=alice)
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
    assert response.headers["Cache-Control"] == "no-store"


async def test_writes_are_private_and_errors_not_stored(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    created = await client.post(f"{ITEMS}/", json={"title": "Lamp"}, headers=alice)
    assert created.headers["Cache-Control"] == "private, no-cache"
    refused = await client.post(f"{ITEMS}/", json={"title": ""}, headers=alice)
    assert refused.status_code == 422
    assert refused.headers["Cache-Control"] == "no-store"
