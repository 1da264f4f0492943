"""GET /api/v1/users/{user_id}: anyone's public profile, never with the email."""

import uuid
from collections.abc import Awaitable, Callable

import httpx

from servicekit.events.envelope import Envelope

USERS = "/api/v1/users"
Deliver = Callable[[str, dict[str, object]], Awaitable[Envelope]]


async def test_read_profile_shows_the_public_fields_only(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    alice_id: uuid.UUID,
    bob: dict[str, str],
    deliver: Deliver,
) -> None:
    await deliver("user.registered", {"user_id": str(alice_id), "email": "alice@example.com"})
    await client.patch(
        f"{USERS}/me", json={"bio": "Hi", "avatar_url": "https://x.org/a.png"}, headers=alice
    )

    response = await client.get(f"{USERS}/{alice_id}", headers=bob)

    assert response.status_code == 200
    assert response.json() == {
        "id": str(alice_id),
        "display_name": "alice",
        "bio": "Hi",
        "avatar_url": "https://x.org/a.png",
    }
    assert "alice@example.com" not in response.text


async def test_read_own_public_profile_has_no_email_either(
    client: httpx.AsyncClient, alice: dict[str, str], alice_id: uuid.UUID, deliver: Deliver
) -> None:
    await deliver("user.registered", {"user_id": str(alice_id), "email": "alice@example.com"})

    response = await client.get(f"{USERS}/{alice_id}", headers=alice)

    assert response.status_code == 200
    assert "email" not in response.json()


async def test_read_unknown_profile_is_404(client: httpx.AsyncClient, bob: dict[str, str]) -> None:
    response = await client.get(f"{USERS}/{uuid.uuid4()}", headers=bob)

    assert response.status_code == 404
    assert response.json() == {"detail": "Profile not found"}


async def test_read_profile_with_malformed_id_is_422(
    client: httpx.AsyncClient, bob: dict[str, str]
) -> None:
    response = await client.get(f"{USERS}/not-a-uuid", headers=bob)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "user_id"]


async def test_read_profile_without_token_is_401(
    client: httpx.AsyncClient, alice: dict[str, str], alice_id: uuid.UUID
) -> None:
    await client.get(f"{USERS}/me", headers=alice)

    response = await client.get(f"{USERS}/{alice_id}")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["X-Request-ID"]
