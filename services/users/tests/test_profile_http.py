"""HTTP's read and cache rules on profiles (RFC 9110/9111) and the admin list's bearer challenge."""

import uuid

import httpx

USERS = "/api/v1/users"


async def test_my_profile_is_private_and_answers_if_none_match_until_it_changes(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    first = await client.get(f"{USERS}/me", headers=alice)
    assert first.headers["Cache-Control"] == "private, no-cache"
    etag = first.headers["ETag"]

    unchanged = await client.get(f"{USERS}/me", headers=alice | {"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["ETag"] == etag

    await client.patch(f"{USERS}/me", json={"display_name": "Alice"}, headers=alice)
    changed = await client.get(f"{USERS}/me", headers=alice | {"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["display_name"] == "Alice"


async def test_public_profile_answers_head_and_if_none_match(
    client: httpx.AsyncClient, alice: dict[str, str], alice_id: uuid.UUID, bob: dict[str, str]
) -> None:
    await client.get(f"{USERS}/me", headers=alice)
    url = f"{USERS}/{alice_id}"
    seen = await client.get(url, headers=bob)
    head = await client.head(url, headers=bob)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["ETag"] == seen.headers["ETag"]
    again = await client.get(url, headers=bob | {"If-None-Match": seen.headers["ETag"]})
    assert again.status_code == 304


async def test_a_user_at_the_admin_list_gets_insufficient_scope(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    response = await client.get(f"{USERS}/", headers=alice)
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
    assert response.headers["Cache-Control"] == "no-store"


async def test_me_allows_get_head_and_patch(client: httpx.AsyncClient) -> None:
    options = await client.options(f"{USERS}/me")
    assert options.status_code == 204
    assert options.headers["Allow"] == "GET, HEAD, PATCH, OPTIONS"
    refused = await client.delete(f"{USERS}/me")
    assert refused.status_code == 405
    assert refused.headers["Allow"] == "GET, HEAD, PATCH, OPTIONS"
