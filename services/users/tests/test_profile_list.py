"""GET /api/v1/users/: every profile, for administrators only."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from servicekit.events.envelope import Envelope
from servicekit_testing import TokenFactory

USERS = "/api/v1/users"
Deliver = Callable[[str, dict[str, object]], Awaitable[Envelope]]


async def register(deliver: Deliver, email: str, full_name: str | None = None) -> uuid.UUID:
    user_id = uuid.uuid4()
    data: dict[str, object] = {"user_id": str(user_id), "email": email, "full_name": full_name}
    await deliver("user.registered", data)
    return user_id


def emails(response: httpx.Response) -> list[str]:
    return [profile["email"] for profile in response.json()["items"]]


async def test_list_profiles_as_admin_shows_every_profile_newest_first(
    client: httpx.AsyncClient, admin: dict[str, str], deliver: Deliver
) -> None:
    first = await register(deliver, "first@example.com", "First")
    await register(deliver, "second@example.com")

    response = await client.get(f"{USERS}/", headers=admin)

    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["limit"], body["offset"]) == (2, 20, 0)
    assert emails(response) == ["second@example.com", "first@example.com"]
    assert body["items"][1]["id"] == str(first)
    assert body["items"][1]["display_name"] == "First"
    assert set(body["items"][1]) == {
        "id",
        "email",
        "display_name",
        "bio",
        "avatar_url",
        "created_at",
        "updated_at",
    }


async def test_list_profiles_without_trailing_slash_is_200(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.get(USERS, headers=admin)

    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0, "limit": 20, "offset": 0}


async def test_list_profiles_as_user_is_403(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.get(f"{USERS}/", headers=alice)

    assert response.status_code == 403
    assert response.json() == {"detail": "Administrator role required"}


async def test_list_profiles_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{USERS}/")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_list_profiles_with_q_searches_name_and_email(
    client: httpx.AsyncClient, admin: dict[str, str], deliver: Deliver
) -> None:
    await register(deliver, "carol@example.com", "Carol Smith")
    await register(deliver, "dave@SMITHS.example", "Dave")
    await register(deliver, "erin@example.com", "Erin")

    response = await client.get(f"{USERS}/", params={"q": "smith"}, headers=admin)

    assert response.status_code == 200
    assert response.json()["total"] == 2
    assert sorted(emails(response)) == ["carol@example.com", "dave@SMITHS.example"]


async def test_list_profiles_with_q_takes_wildcards_literally(
    client: httpx.AsyncClient, admin: dict[str, str], deliver: Deliver
) -> None:
    await register(deliver, "under_score@example.com")
    await register(deliver, "underXscore@example.com")

    response = await client.get(f"{USERS}/", params={"q": "r_s"}, headers=admin)

    assert emails(response) == ["under_score@example.com"]


async def test_list_profiles_includes_profiles_made_from_tokens(
    client: httpx.AsyncClient, admin: dict[str, str], tokens: TokenFactory
) -> None:
    user_id = uuid.uuid4()
    await client.get(f"{USERS}/me", headers=tokens.headers(user_id))

    response = await client.get(f"{USERS}/", headers=admin)

    assert [p["id"] for p in response.json()["items"]] == [str(user_id)]
    assert response.json()["items"][0]["email"] is None


async def test_list_profiles_pages(
    client: httpx.AsyncClient, admin: dict[str, str], deliver: Deliver
) -> None:
    for n in range(5):
        await register(deliver, f"user{n}@example.com")

    pages = [
        await client.get(f"{USERS}/", params={"limit": 2, "offset": offset}, headers=admin)
        for offset in (0, 2, 4)
    ]

    assert [len(page.json()["items"]) for page in pages] == [2, 2, 1]
    assert all(page.json()["total"] == 5 for page in pages)
    seen = [p["id"] for page in pages for p in page.json()["items"]]
    assert len(set(seen)) == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),
        ({"q": "a\x00"}, "q"),
        ({"q": "x" * 321}, "q"),
    ],
)
async def test_list_profiles_with_bad_query_is_422(
    client: httpx.AsyncClient, admin: dict[str, str], params: dict[str, Any], field: str
) -> None:
    response = await client.get(f"{USERS}/", params=params, headers=admin)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


@pytest.mark.parametrize(
    ("where", "index"),
    [
        ("true ORDER BY created_at DESC, id DESC LIMIT 20", "ix_profile_created_at"),
        ("display_name ILIKE '%smith%'", "ix_profile_display_name_trgm"),
        ("email ILIKE '%smith%'", "ix_profile_email_trgm"),
    ],
)
async def test_list_queries_can_use_an_index(app: FastAPI, where: str, index: str) -> None:
    async with app.state.database.engine.connect() as connection:
        await connection.execute(text("SET LOCAL enable_seqscan = off"))
        await connection.execute(text("SET LOCAL enable_sort = off"))
        plan = await connection.execute(
            text(f"EXPLAIN SELECT * FROM profile WHERE {where}")  # noqa: S608 - fixed test SQL
        )
        lines = "\n".join(row[0] for row in plan)

    assert index in lines
