"""GET /, POST /{id}/read and POST /read-all: the caller's own notifications only."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from notifications.models import Notification

NOTIFICATIONS = "/api/v1/notifications"
Headers = dict[str, str]
AddNotification = Callable[..., Awaitable[Notification]]
NOTIFICATION_KEYS = {"id", "kind", "title", "body", "created_at", "read_at"}


def titles(response: httpx.Response) -> list[str]:
    return [item["title"] for item in response.json()["items"]]


async def test_list_notifications_shows_own_newest_first_with_unread_count(
    client: httpx.AsyncClient,
    alice: Headers,
    alice_id: uuid.UUID,
    bob_id: uuid.UUID,
    add_notification: AddNotification,
) -> None:
    await add_notification(alice_id, title="old", age=timedelta(hours=2), read=True)
    await add_notification(alice_id, title="new", age=timedelta(minutes=1))
    await add_notification(alice_id, title="middle", age=timedelta(hours=1))
    await add_notification(bob_id, title="bob's")

    response = await client.get(f"{NOTIFICATIONS}/", headers=alice)

    assert response.status_code == 200
    body = response.json()
    assert titles(response) == ["new", "middle", "old"]
    assert (body["total"], body["limit"], body["offset"], body["unread"]) == (3, 20, 0, 2)
    item = body["items"][0]
    assert set(item) == NOTIFICATION_KEYS
    assert item["read_at"] is None
    assert item["created_at"].endswith(("Z", "+00:00"))
    assert body["items"][2]["read_at"] is not None


async def test_list_notifications_without_trailing_slash_is_200(
    client: httpx.AsyncClient, alice: Headers, alice_id: uuid.UUID, add_notification: Any
) -> None:
    await add_notification(alice_id)

    response = await client.get(NOTIFICATIONS, headers=alice)

    assert response.status_code == 200
    assert response.json()["total"] == 1


async def test_list_notifications_unread_only_hides_read_ones(
    client: httpx.AsyncClient, alice: Headers, alice_id: uuid.UUID, add_notification: Any
) -> None:
    await add_notification(alice_id, title="read", read=True)
    await add_notification(alice_id, title="unread")

    response = await client.get(f"{NOTIFICATIONS}/", params={"unread_only": True}, headers=alice)

    assert response.status_code == 200
    assert titles(response) == ["unread"]
    assert (response.json()["total"], response.json()["unread"]) == (1, 1)


async def test_list_notifications_paginates_and_counts_everything(
    client: httpx.AsyncClient, alice: Headers, alice_id: uuid.UUID, add_notification: Any
) -> None:
    for minutes in range(5):
        await add_notification(alice_id, title=f"n{minutes}", age=timedelta(minutes=minutes))

    response = await client.get(
        f"{NOTIFICATIONS}/", params={"limit": 2, "offset": 1}, headers=alice
    )

    assert response.status_code == 200
    assert titles(response) == ["n1", "n2"]
    body = response.json()
    assert (body["total"], body["limit"], body["offset"], body["unread"]) == (5, 2, 1, 5)


async def test_list_notifications_of_a_new_user_is_empty(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    response = await client.get(f"{NOTIFICATIONS}/", headers=alice)

    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0, "limit": 20, "offset": 0, "unread": 0}


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"offset": -1}, {"offset": 2**63}],
)
async def test_list_notifications_with_bad_pagination_is_422(
    client: httpx.AsyncClient, alice: Headers, params: dict[str, Any]
) -> None:
    response = await client.get(f"{NOTIFICATIONS}/", params=params, headers=alice)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_list_notifications_with_limit_100_is_200(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    response = await client.get(f"{NOTIFICATIONS}/", params={"limit": 100}, headers=alice)

    assert response.status_code == 200
    assert response.json()["limit"] == 100


async def test_list_notifications_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{NOTIFICATIONS}/")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "X-Request-ID" in response.headers


async def test_list_notifications_with_a_refresh_token_is_401(
    client: httpx.AsyncClient, tokens: Any
) -> None:
    headers = tokens.headers(uuid.uuid4(), token_type="refresh")

    response = await client.get(f"{NOTIFICATIONS}/", headers=headers)

    assert response.status_code == 401


async def test_read_notification_marks_it_read(
    client: httpx.AsyncClient, alice: Headers, alice_id: uuid.UUID, add_notification: Any
) -> None:
    notification = await add_notification(alice_id, title="ping")

    response = await client.post(f"{NOTIFICATIONS}/{notification.id}/read", headers=alice)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == NOTIFICATION_KEYS
    assert (body["id"], body["title"]) == (str(notification.id), "ping")
    assert body["read_at"] is not None
    listed = (await client.get(f"{NOTIFICATIONS}/", headers=alice)).json()
    assert listed["unread"] == 0
    assert listed["items"][0]["read_at"] == body["read_at"]


async def test_read_notification_twice_keeps_the_first_read_time(
    client: httpx.AsyncClient, alice: Headers, alice_id: uuid.UUID, add_notification: Any
) -> None:
    notification = await add_notification(alice_id)
    first = await client.post(f"{NOTIFICATIONS}/{notification.id}/read", headers=alice)

    second = await client.post(f"{NOTIFICATIONS}/{notification.id}/read", headers=alice)

    assert second.status_code == 200
    assert second.json()["read_at"] == first.json()["read_at"]


async def test_read_another_users_notification_is_404_and_changes_nothing(
    client: httpx.AsyncClient,
    alice: Headers,
    bob_id: uuid.UUID,
    add_notification: Any,
    session: AsyncSession,
) -> None:
    bobs = await add_notification(bob_id)

    response = await client.post(f"{NOTIFICATIONS}/{bobs.id}/read", headers=alice)

    assert response.status_code == 404
    assert response.json() == {"detail": "Notification not found"}
    stored = await session.get(Notification, bobs.id)
    assert stored is not None
    assert stored.read_at is None


async def test_read_unknown_notification_is_404(client: httpx.AsyncClient, alice: Headers) -> None:
    response = await client.post(f"{NOTIFICATIONS}/{uuid.uuid4()}/read", headers=alice)

    assert response.status_code == 404


async def test_read_notification_with_malformed_id_is_422(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    response = await client.post(f"{NOTIFICATIONS}/not-a-uuid/read", headers=alice)

    assert response.status_code == 422


async def test_read_notification_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{NOTIFICATIONS}/{uuid.uuid4()}/read")

    assert response.status_code == 401


async def test_read_all_marks_every_own_notification_read_and_no_one_elses(
    client: httpx.AsyncClient,
    alice: Headers,
    bob: Headers,
    alice_id: uuid.UUID,
    bob_id: uuid.UUID,
    add_notification: Any,
) -> None:
    await add_notification(alice_id)
    await add_notification(alice_id)
    await add_notification(bob_id)

    response = await client.post(f"{NOTIFICATIONS}/read-all", headers=alice)

    assert response.status_code == 204
    assert response.content == b""
    alices = (await client.get(f"{NOTIFICATIONS}/", headers=alice)).json()
    assert alices["unread"] == 0
    assert all(item["read_at"] is not None for item in alices["items"])
    assert (await client.get(f"{NOTIFICATIONS}/", headers=bob)).json()["unread"] == 1


async def test_read_all_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{NOTIFICATIONS}/read-all")

    assert response.status_code == 401
