"""GET /deliveries: every outgoing mail, for administrators only."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from notifications.models import Delivery, utcnow

DELIVERIES = "/api/v1/notifications/deliveries"
Headers = dict[str, str]
AddDelivery = Callable[..., Awaitable[Delivery]]
DELIVERY_KEYS = {
    "id", "user_id", "to", "template", "subject", "status", "attempts", "last_error",
    "next_attempt_at", "created_at", "updated_at", "sent_at",
}  # fmt: skip


async def test_list_deliveries_as_admin_shows_every_mail_newest_first(
    client: httpx.AsyncClient, admin: Headers, add_delivery: AddDelivery
) -> None:
    now = utcnow()
    old = await add_delivery(to="old@example.com", created_at=now - timedelta(hours=1))
    new = await add_delivery(
        to="new@example.com",
        status="failed",
        attempts=5,
        last_error="SMTPConnectError: refused",
        created_at=now,
    )

    response = await client.get(f"{DELIVERIES}", headers=admin)

    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["limit"], body["offset"]) == (2, 20, 0)
    assert [item["id"] for item in body["items"]] == [str(new.id), str(old.id)]
    first = body["items"][0]
    assert set(first) == DELIVERY_KEYS  # never the context: it holds tokens
    assert first["status"] == "failed"
    assert first["attempts"] == 5
    assert first["last_error"] == "SMTPConnectError: refused"
    assert first["to"] == "new@example.com"
    assert first["template"] == "verify_email"
    assert "tok-123" not in response.text


async def test_list_deliveries_filters_by_status(
    client: httpx.AsyncClient, admin: Headers, add_delivery: AddDelivery
) -> None:
    await add_delivery(status="sent", attempts=1)
    retrying = await add_delivery(status="retrying", attempts=2, last_error="timeout")

    response = await client.get(DELIVERIES, params={"status": "retrying"}, headers=admin)

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [str(retrying.id)]
    assert response.json()["total"] == 1


async def test_list_deliveries_paginates(
    client: httpx.AsyncClient, admin: Headers, add_delivery: AddDelivery
) -> None:
    now = utcnow()
    for minutes in range(3):
        await add_delivery(
            to=f"u{minutes}@example.com", created_at=now - timedelta(minutes=minutes)
        )

    response = await client.get(DELIVERIES, params={"limit": 1, "offset": 1}, headers=admin)

    assert response.status_code == 200
    assert [item["to"] for item in response.json()["items"]] == ["u1@example.com"]
    assert (response.json()["total"], response.json()["limit"]) == (3, 1)


async def test_list_deliveries_as_a_user_is_403(
    client: httpx.AsyncClient, alice: Headers, add_delivery: AddDelivery
) -> None:
    await add_delivery()

    response = await client.get(DELIVERIES, headers=alice)

    assert response.status_code == 403
    assert response.json() == {"detail": "Administrator role required"}


async def test_list_deliveries_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(DELIVERIES)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"status": "lost"}]
)
async def test_list_deliveries_with_bad_query_is_422(
    client: httpx.AsyncClient, admin: Headers, params: dict[str, Any]
) -> None:
    response = await client.get(DELIVERIES, params=params, headers=admin)

    assert response.status_code == 422


async def test_list_deliveries_of_an_admin_includes_other_users_mail(
    client: httpx.AsyncClient, admin: Headers, add_delivery: AddDelivery
) -> None:
    someone = uuid.uuid4()
    await add_delivery(someone)

    response = await client.get(DELIVERIES, headers=admin)

    assert response.json()["items"][0]["user_id"] == str(someone)
