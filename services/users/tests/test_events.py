"""Event handlers, called with a session as the consumer will, in every order of arrival."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI

from servicekit.events.envelope import Envelope
from users.events import HANDLERS, on_user_registered
from users.models import Profile

USERS = "/api/v1/users"
Deliver = Callable[[str, dict[str, object]], Awaitable[Envelope]]
Profiles = Callable[[], Awaitable[list[Profile]]]


def registered(user_id: uuid.UUID, email: str = "alice@example.com", **extra: object) -> dict:
    return {"user_id": str(user_id), "email": email, "verification_token": "t0k3n", **extra}


def test_handlers_cover_registration_and_deletion() -> None:
    assert set(HANDLERS) == {"user.registered", "user.deleted"}


async def test_user_registered_creates_profile_with_email_and_full_name(
    alice_id: uuid.UUID, deliver: Deliver, profiles: Profiles
) -> None:
    await deliver("user.registered", registered(alice_id, full_name="Alice Liddell"))

    [profile] = await profiles()
    assert (profile.id, profile.email, profile.display_name) == (
        alice_id,
        "alice@example.com",
        "Alice Liddell",
    )
    assert (profile.bio, profile.avatar_url) == (None, None)


async def test_user_registered_without_full_name_uses_the_emails_local_part(
    alice_id: uuid.UUID, deliver: Deliver, profiles: Profiles
) -> None:
    await deliver("user.registered", registered(alice_id, "a.liddell@example.com", full_name=" "))

    [profile] = await profiles()
    assert profile.display_name == "a.liddell"


async def test_user_registered_with_a_long_full_name_is_cut_to_64(
    alice_id: uuid.UUID, deliver: Deliver, profiles: Profiles
) -> None:
    await deliver("user.registered", registered(alice_id, full_name="A" * 100))

    [profile] = await profiles()
    assert profile.display_name == "A" * 64


async def test_profile_from_event_then_token_is_one_profile(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    alice_id: uuid.UUID,
    deliver: Deliver,
    profiles: Profiles,
) -> None:
    await deliver("user.registered", registered(alice_id, full_name="Alice"))

    response = await client.get(f"{USERS}/me", headers=alice)

    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"
    assert response.json()["display_name"] == "Alice"
    assert [profile.id for profile in await profiles()] == [alice_id]


async def test_profile_from_token_then_event_is_completed_not_duplicated(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    alice_id: uuid.UUID,
    deliver: Deliver,
    profiles: Profiles,
) -> None:
    early = await client.get(f"{USERS}/me", headers=alice)
    assert early.json()["email"] is None

    await deliver("user.registered", registered(alice_id, full_name="Alice"))

    late = await client.get(f"{USERS}/me", headers=alice)
    assert late.status_code == 200
    assert (late.json()["email"], late.json()["display_name"]) == ("alice@example.com", "Alice")
    assert late.json()["created_at"] == early.json()["created_at"]
    assert [profile.id for profile in await profiles()] == [alice_id]


async def test_user_registered_never_overwrites_a_name_the_user_set(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    alice_id: uuid.UUID,
    deliver: Deliver,
) -> None:
    await client.patch(f"{USERS}/me", json={"display_name": "Chosen", "bio": "Mine"}, headers=alice)

    await deliver("user.registered", registered(alice_id, full_name="Alice"))

    body = (await client.get(f"{USERS}/me", headers=alice)).json()
    assert (body["display_name"], body["bio"], body["email"]) == (
        "Chosen",
        "Mine",
        "alice@example.com",
    )


async def test_user_registered_redelivered_changes_nothing_the_user_set(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    alice_id: uuid.UUID,
    deliver: Deliver,
    profiles: Profiles,
) -> None:
    await deliver("user.registered", registered(alice_id, full_name="Alice"))
    await client.patch(f"{USERS}/me", json={"display_name": "Renamed"}, headers=alice)

    await deliver("user.registered", registered(alice_id, full_name="Alice"))

    [profile] = await profiles()
    assert (profile.display_name, profile.email) == ("Renamed", "alice@example.com")


async def test_user_registered_racing_first_request_makes_one_profile(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    alice_id: uuid.UUID,
    deliver: Deliver,
    profiles: Profiles,
) -> None:
    await asyncio.gather(
        *(client.get(f"{USERS}/me", headers=alice) for _ in range(4)),
        deliver("user.registered", registered(alice_id, full_name="Alice")),
    )

    [profile] = await profiles()
    assert (profile.id, profile.email, profile.display_name) == (
        alice_id,
        "alice@example.com",
        "Alice",
    )


async def test_user_deleted_erases_the_profile(
    client: httpx.AsyncClient,
    alice_id: uuid.UUID,
    bob: dict[str, str],
    bob_id: uuid.UUID,
    deliver: Deliver,
    profiles: Profiles,
) -> None:
    await deliver("user.registered", registered(alice_id))
    await client.get(f"{USERS}/me", headers=bob)

    await deliver("user.deleted", {"user_id": str(alice_id)})

    assert [profile.id for profile in await profiles()] == [bob_id]
    response = await client.get(f"{USERS}/{alice_id}", headers=bob)
    assert response.status_code == 404


async def test_user_deleted_for_an_unknown_user_or_twice_is_harmless(
    alice_id: uuid.UUID, deliver: Deliver, profiles: Profiles
) -> None:
    await deliver("user.registered", registered(alice_id))

    await deliver("user.deleted", {"user_id": str(uuid.uuid4())})
    assert len(await profiles()) == 1
    for _ in range(2):
        await deliver("user.deleted", {"user_id": str(alice_id)})
    assert await profiles() == []


async def test_a_registration_arriving_after_the_deletion_creates_no_profile(
    client: httpx.AsyncClient,
    alice_id: uuid.UUID,
    alice: dict[str, str],
    deliver: Deliver,
    profiles: Profiles,
) -> None:
    """A crash can deliver them in this order: the deletion seen once is final."""
    await deliver("user.deleted", {"user_id": str(alice_id)})
    await deliver("user.registered", registered(alice_id))
    assert await profiles() == []
    # A request authorised a moment before the deletion cannot bring the profile back either.
    assert (await client.get(f"{USERS}/me", headers=alice)).status_code == 404
    patched = await client.patch(f"{USERS}/me", headers=alice, json={"bio": "still here"})
    assert patched.status_code == 404
    assert await profiles() == []


async def test_handlers_leave_committing_to_the_consumer(
    app: FastAPI, alice_id: uuid.UUID, profiles: Profiles
) -> None:
    envelope = Envelope(type="user.registered", producer="auth", data=registered(alice_id))

    async with app.state.database.sessionmaker() as session:
        await on_user_registered(session, envelope)
        await session.rollback()  # the consumer's transaction failed

    assert await profiles() == []
