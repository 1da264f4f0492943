"""GET and PATCH /api/v1/users/me: the caller's own profile."""

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx
import pytest

from users.models import Profile

USERS = "/api/v1/users"
Profiles = Callable[[], Awaitable[list[Profile]]]


async def test_read_my_profile_creates_it_from_the_token(
    client: httpx.AsyncClient, alice: dict[str, str], alice_id: uuid.UUID, profiles: Profiles
) -> None:
    response = await client.get(f"{USERS}/me", headers=alice)

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(alice_id)
    assert (body["email"], body["display_name"], body["bio"], body["avatar_url"]) == (None,) * 4
    assert datetime.fromisoformat(body["created_at"]).utcoffset() is not None
    assert body["created_at"] == body["updated_at"]
    assert [profile.id for profile in await profiles()] == [alice_id]


async def test_read_my_profile_again_returns_the_same_profile(
    client: httpx.AsyncClient, alice: dict[str, str], profiles: Profiles
) -> None:
    first = await client.get(f"{USERS}/me", headers=alice)
    second = await client.get(f"{USERS}/me", headers=alice)

    assert second.status_code == 200
    assert second.json() == first.json()
    assert len(await profiles()) == 1


async def test_read_my_profile_concurrently_makes_one_profile(
    client: httpx.AsyncClient, alice: dict[str, str], alice_id: uuid.UUID, profiles: Profiles
) -> None:
    responses = await asyncio.gather(*(client.get(f"{USERS}/me", headers=alice) for _ in range(8)))

    assert [r.status_code for r in responses] == [200] * 8
    assert len({r.json()["created_at"] for r in responses}) == 1
    assert [profile.id for profile in await profiles()] == [alice_id]


async def test_read_my_profile_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{USERS}/me")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"detail": "Not authenticated"}


async def test_update_my_profile_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"{USERS}/me", json={"bio": "hi"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_update_my_profile_changes_only_fields_sent(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    await client.patch(
        f"{USERS}/me",
        json={"display_name": "Alice", "bio": "Hello", "avatar_url": "https://x.org/a.png"},
        headers=alice,
    )

    response = await client.patch(f"{USERS}/me", json={"bio": "Updated"}, headers=alice)

    assert response.status_code == 200
    body = response.json()
    assert (body["display_name"], body["bio"], body["avatar_url"]) == (
        "Alice",
        "Updated",
        "https://x.org/a.png",
    )
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(body["created_at"])
    assert (await client.get(f"{USERS}/me", headers=alice)).json() == body


async def test_update_my_profile_before_reading_it_creates_it(
    client: httpx.AsyncClient, alice: dict[str, str], alice_id: uuid.UUID, profiles: Profiles
) -> None:
    response = await client.patch(f"{USERS}/me", json={"display_name": "Al"}, headers=alice)

    assert response.status_code == 200
    assert response.json()["id"] == str(alice_id)
    assert response.json()["display_name"] == "Al"
    assert response.json()["email"] is None
    assert [(p.id, p.display_name) for p in await profiles()] == [(alice_id, "Al")]


async def test_update_my_profile_with_null_clears_bio_and_avatar(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    await client.patch(
        f"{USERS}/me", json={"bio": "Hello", "avatar_url": "https://x.org/a.png"}, headers=alice
    )

    response = await client.patch(
        f"{USERS}/me", json={"bio": None, "avatar_url": None}, headers=alice
    )

    assert response.status_code == 200
    assert (response.json()["bio"], response.json()["avatar_url"]) == (None, None)


async def test_update_my_profile_trims_display_name_and_normalises_avatar_url(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.patch(
        f"{USERS}/me",
        json={"display_name": "  Alice  ", "avatar_url": "HTTP://Example.ORG"},
        headers=alice,
    )

    assert response.status_code == 200
    assert response.json()["display_name"] == "Alice"
    assert response.json()["avatar_url"] == "http://example.org/"


async def test_update_my_profile_at_the_length_limits_is_200(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    body = {"display_name": "n" * 64, "bio": "b" * 500, "avatar_url": "https://x.org/" + "p" * 2000}

    response = await client.patch(f"{USERS}/me", json=body, headers=alice)

    assert response.status_code == 200
    assert response.json()["display_name"] == "n" * 64
    assert response.json()["bio"] == "b" * 500


BAD_UPDATES = {
    "empty display_name": ('{"display_name": ""}', "display_name"),
    "blank display_name": ('{"display_name": "   "}', "display_name"),
    "display_name too long": (json.dumps({"display_name": "n" * 65}), "display_name"),
    "null display_name": ('{"display_name": null}', "display_name"),
    "display_name with NUL": ('{"display_name": "a\\u0000"}', "display_name"),
    "display_name with lone surrogate": ('{"display_name": "\\ud800"}', "display_name"),
    "bio too long": (json.dumps({"bio": "b" * 501}), "bio"),
    "bio with NUL": ('{"bio": "\\u0000"}', "bio"),
    "bio with lone surrogate": ('{"bio": "x\\udc00"}', "bio"),
    "bio not a string": ('{"bio": 5}', "bio"),
    "ftp avatar_url": ('{"avatar_url": "ftp://x.org/a.png"}', "avatar_url"),
    "javascript avatar_url": ('{"avatar_url": "javascript:alert(1)"}', "avatar_url"),
    "relative avatar_url": ('{"avatar_url": "/a.png"}', "avatar_url"),
    "empty avatar_url": ('{"avatar_url": ""}', "avatar_url"),
    "avatar_url with NUL": ('{"avatar_url": "https://x.org/a\\u0000"}', "avatar_url"),
    "avatar_url with lone surrogate": ('{"avatar_url": "https://x.org/\\ud800"}', "avatar_url"),
    "avatar_url too long": (
        json.dumps({"avatar_url": "https://x.org/" + "p" * 2040}),
        "avatar_url",
    ),
}


@pytest.mark.parametrize(("raw", "field"), BAD_UPDATES.values(), ids=BAD_UPDATES.keys())
async def test_update_my_profile_with_bad_input_is_422_and_changes_nothing(
    client: httpx.AsyncClient, alice: dict[str, str], raw: str, field: str
) -> None:
    before = await client.patch(f"{USERS}/me", json={"display_name": "Kept"}, headers=alice)

    response = await client.patch(
        f"{USERS}/me", content=raw, headers=alice | {"Content-Type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]
    assert (await client.get(f"{USERS}/me", headers=alice)).json() == before.json()
