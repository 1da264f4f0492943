"""GET /api/v1/items/: the caller's items (an administrator's: anyone's), filtered and sorted."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

ITEMS = "/api/v1/items"
CreateItem = Callable[..., Awaitable[dict[str, Any]]]


def titles(response: httpx.Response) -> list[str]:
    return [item["title"] for item in response.json()["items"]]


async def test_list_items_shows_only_own_items(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str], create_item: CreateItem
) -> None:
    await create_item(title="Alice 1")
    await create_item(title="Alice 2")
    await create_item(headers=bob, title="Bob 1")

    response = await client.get(f"{ITEMS}/", headers=alice)

    assert response.status_code == 200
    assert response.json()["total"] == 2
    assert sorted(titles(response)) == ["Alice 1", "Alice 2"]
    assert (response.json()["limit"], response.json()["offset"]) == (20, 0)


async def test_list_items_without_trailing_slash_is_200(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    await create_item()

    response = await client.get(ITEMS, headers=alice)

    assert response.status_code == 200
    assert response.json()["total"] == 1


async def test_list_items_is_newest_first_by_default(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    for title in ("first", "second", "third"):
        await create_item(title=title)

    response = await client.get(f"{ITEMS}/", headers=alice)

    assert response.status_code == 200
    assert titles(response) == ["third", "second", "first"]


async def test_list_items_with_owner_id_as_user_is_403(
    client: httpx.AsyncClient, alice: dict[str, str], alice_id: uuid.UUID
) -> None:
    for owner_id in (alice_id, uuid.uuid4()):
        response = await client.get(f"{ITEMS}/", params={"owner_id": str(owner_id)}, headers=alice)

        assert response.status_code == 403
        assert response.json() == {"detail": "Only administrators may list another user's items"}


async def test_list_items_as_admin_shows_everyones_items(
    client: httpx.AsyncClient, admin: dict[str, str], bob: dict[str, str], create_item: CreateItem
) -> None:
    await create_item(title="Alice's")
    await create_item(headers=bob, title="Bob's")

    response = await client.get(f"{ITEMS}/", headers=admin)

    assert response.status_code == 200
    assert response.json()["total"] == 2
    assert sorted(titles(response)) == ["Alice's", "Bob's"]


async def test_list_items_as_admin_with_owner_id_shows_that_users_items(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    bob: dict[str, str],
    alice_id: uuid.UUID,
    create_item: CreateItem,
) -> None:
    await create_item(title="Alice's")
    await create_item(headers=bob, title="Bob's")

    response = await client.get(f"{ITEMS}/", params={"owner_id": str(alice_id)}, headers=admin)

    assert response.status_code == 200
    assert response.json()["total"] == 1
    assert titles(response) == ["Alice's"]


async def test_list_items_with_malformed_owner_id_is_422(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.get(f"{ITEMS}/", params={"owner_id": "nope"}, headers=admin)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "owner_id"]


async def test_list_items_with_q_matches_title_case_insensitively(
    client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str], create_item: CreateItem
) -> None:
    await create_item(title="Brass LAMP")
    await create_item(title="Lampshade")
    await create_item(title="Chair")
    await create_item(headers=bob, title="Bob's lamp")

    response = await client.get(f"{ITEMS}/", params={"q": "lamp"}, headers=alice)

    assert response.status_code == 200
    assert response.json()["total"] == 2
    assert sorted(titles(response)) == ["Brass LAMP", "Lampshade"]


async def test_list_items_with_q_takes_wildcards_literally(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    await create_item(title="100% cotton")
    await create_item(title="1000 cotton")
    await create_item(title="snake_case")
    await create_item(title="snakeXcase")

    percent = await client.get(f"{ITEMS}/", params={"q": "0%"}, headers=alice)
    underscore = await client.get(f"{ITEMS}/", params={"q": "e_c"}, headers=alice)

    assert titles(percent) == ["100% cotton"]
    assert titles(underscore) == ["snake_case"]


async def test_list_items_with_tag_filters_case_insensitively(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    await create_item(title="red lamp", tags=["red", "lamp"])
    await create_item(title="red chair", tags=["Red", "chair"])
    await create_item(title="blue lamp", tags=["blue", "lamp"])

    red = await client.get(f"{ITEMS}/", params={"tag": " RED "}, headers=alice)
    red_lamps = await client.get(
        f"{ITEMS}/", params=[("tag", "red"), ("tag", "lamp")], headers=alice
    )

    assert red.status_code == 200
    assert sorted(titles(red)) == ["red chair", "red lamp"]
    assert red_lamps.status_code == 200
    assert titles(red_lamps) == ["red lamp"]
    assert red_lamps.json()["total"] == 1


async def test_list_items_with_q_and_tag_applies_both(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    await create_item(title="red lamp", tags=["red"])
    await create_item(title="red chair", tags=["red"])
    await create_item(title="blue lamp", tags=["blue"])

    response = await client.get(f"{ITEMS}/", params={"q": "lamp", "tag": "red"}, headers=alice)

    assert titles(response) == ["red lamp"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("created_at", ["b-1", "a-3", "c-none"]),
        ("-created_at", ["c-none", "a-3", "b-1"]),
        ("title", ["a-3", "b-1", "c-none"]),
        ("-title", ["c-none", "b-1", "a-3"]),
        # No price sorts above every price: `-price` is exactly the reverse of `price`.
        ("price", ["b-1", "a-3", "c-none"]),
        ("-price", ["c-none", "a-3", "b-1"]),
    ],
)
async def test_list_items_sorted(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    create_item: CreateItem,
    sort: str,
    expected: list[str],
) -> None:
    await create_item(title="b-1", price="1")
    await create_item(title="a-3", price="3")
    await create_item(title="c-none")

    response = await client.get(f"{ITEMS}/", params={"sort": sort}, headers=alice)

    assert response.status_code == 200
    assert titles(response) == expected


async def test_list_items_with_unknown_sort_is_422(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.get(f"{ITEMS}/", params={"sort": "owner_id"}, headers=alice)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "sort"]


async def test_list_items_pages_through_every_item_once(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    for n in range(5):
        await create_item(title="same title", description=str(n))

    seen: list[str] = []
    for offset in range(0, 6, 2):
        response = await client.get(
            f"{ITEMS}/", params={"sort": "title", "limit": 2, "offset": offset}, headers=alice
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["total"], body["limit"], body["offset"]) == (5, 2, offset)
        seen += [item["id"] for item in body["items"]]

    assert len(seen) == 5
    assert len(set(seen)) == 5


async def test_list_items_with_offset_past_the_end_is_empty(
    client: httpx.AsyncClient, alice: dict[str, str], create_item: CreateItem
) -> None:
    await create_item()

    response = await client.get(f"{ITEMS}/", params={"offset": 10}, headers=alice)

    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 1, "limit": 20, "offset": 10}


@pytest.mark.parametrize("limit", [1, 100])
async def test_list_items_with_limit_at_bounds_is_200(
    client: httpx.AsyncClient, alice: dict[str, str], limit: int
) -> None:
    response = await client.get(f"{ITEMS}/", params={"limit": limit}, headers=alice)

    assert response.status_code == 200
    assert response.json()["limit"] == limit


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),
        ({"tag": "x" * 33}, "tag"),
        ({"tag": " "}, "tag"),
        ({"q": "x" * 201}, "q"),
        ({"q": "a\x00b"}, "q"),
    ],
)
async def test_list_items_with_bad_query_is_422(
    client: httpx.AsyncClient, alice: dict[str, str], params: dict[str, Any], field: str
) -> None:
    response = await client.get(f"{ITEMS}/", params=params, headers=alice)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["query", field]


@pytest.mark.parametrize(
    ("where", "index"),
    [
        (
            "owner_id = :owner ORDER BY created_at DESC, id DESC LIMIT 20",
            "ix_item_owner_id_created_at",
        ),
        ("owner_id = :owner ORDER BY title, id LIMIT 20", "ix_item_owner_id_title"),
        ("owner_id = :owner ORDER BY price DESC, id DESC LIMIT 20", "ix_item_owner_id_price"),
        ("true ORDER BY created_at, id LIMIT 20", "ix_item_created_at"),
        ("true ORDER BY title DESC, id DESC LIMIT 20", "ix_item_title"),
        ("true ORDER BY price, id LIMIT 20", "ix_item_price"),
        ("tags @> ARRAY['red']::text[]", "ix_item_tags"),
        ("title ILIKE '%lamp%'", "ix_item_title_trgm"),
    ],
)
async def test_list_queries_can_use_an_index(app: FastAPI, where: str, index: str) -> None:
    async with app.state.database.engine.connect() as connection:
        await connection.execute(text("SET LOCAL enable_seqscan = off"))
        await connection.execute(text("SET LOCAL enable_sort = off"))
        plan = await connection.execute(
            text(f"EXPLAIN SELECT * FROM item WHERE {where}"),  # noqa: S608 - fixed test SQL
            {"owner": uuid.uuid4()} if ":owner" in where else {},
        )
        lines = "\n".join(row[0] for row in plan)

    assert index in lines
