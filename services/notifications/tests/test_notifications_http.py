"""HTTP's read and cache rules on notifications (RFC 9110/9111) and the bearer challenges."""

import uuid
from collections.abc import Awaitable, Callable

import httpx

from notifications.models import Notification
from servicekit_testing import TokenFactory

NOTIFICATIONS = "/api/v1/notifications"
Headers = dict[str, str]
AddNotification = Callable[..., Awaitable[Notification]]


async def test_list_answers_if_none_match_until_something_is_read(
    client: httpx.AsyncClient,
    alice: Headers,
    alice_id: uuid.UUID,
    add_notification: AddNotification,
) -> None:
    await add_notification(alice_id, title="hello")
    first = await client.get(f"{NOTIFICATIONS}/", headers=alice)
    assert first.headers["Cache-Control"] == "private, no-cache"
    etag = first.headers["ETag"]
    same = await client.get(f"{NOTIFICATIONS}/", headers=alice | {"If-None-Match": etag})
    assert same.status_code == 304
    assert same.content == b""

    assert (await client.post(f"{NOTIFICATIONS}/read-all", headers=alice)).status_code == 204
    after = await client.get(f"{NOTIFICATIONS}/", headers=alice | {"If-None-Match": etag})
    assert after.status_code == 200
    assert after.json()["unread"] == 0


async def test_a_user_at_the_deliveries_gets_insufficient_scope(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    response = await client.get(f"{NOTIFICATIONS}/deliveries", headers=alice)
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')


async def test_an_expired_token_is_an_invalid_token(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    expired = tokens.headers(ttl_seconds=-60)
    response = await client.get(f"{NOTIFICATIONS}/", headers=expired)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="Token expired"'
    )


async def test_read_all_allows_post_only(client: httpx.AsyncClient) -> None:
    refused = await client.get(f"{NOTIFICATIONS}/read-all")
    assert refused.status_code == 405
    assert refused.headers["Allow"] == "POST, OPTIONS"
    head = await client.head(f"{NOTIFICATIONS}/health")
    assert head.status_code == 200
    assert head.content == b""
