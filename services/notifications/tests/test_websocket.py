"""WS /ws against a real uvicorn: token in the first message, then new notifications as JSON."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from notifications.push import channel_for
from servicekit import revocation
from servicekit_testing import TokenFactory

Handle = Callable[[str, dict[str, Any]], Awaitable[None]]


async def until(check: Callable[[], bool], within: float = 2.0) -> None:
    for _ in range(int(within / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {within} s")


async def closed_with(ws: ClientConnection, within: float = 3.0) -> int | None:
    """The close code the server sent, waiting at most `within` seconds."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


@pytest.fixture
def subscribed(app: FastAPI) -> Callable[[ClientConnection, str, uuid.UUID], Awaitable[None]]:
    """Send the token, then wait until the server listens for that user's notifications."""

    async def authenticate(ws: ClientConnection, token: str, user_id: uuid.UUID) -> None:
        await ws.send(json.dumps({"token": token}))
        await until(lambda: app.state.hub.listeners(user_id) > 0)
        await asyncio.wait_for(app.state.hub.subscribed.wait(), 2)

    return authenticate


@pytest.fixture
async def alice_socket(
    ws_url: str, tokens: TokenFactory, alice_id: uuid.UUID, subscribed: Any
) -> AsyncIterator[ClientConnection]:
    async with connect(ws_url) as ws:
        await subscribed(ws, tokens.mint(alice_id), alice_id)
        yield ws


async def test_stream_pushes_a_notification_created_after_authenticating(
    alice_socket: ClientConnection, handle: Handle, alice_id: uuid.UUID
) -> None:
    started = time.monotonic()
    await handle("auth.password_changed", {"user_id": str(alice_id), "email": "a@example.com"})

    message = json.loads(await asyncio.wait_for(alice_socket.recv(), timeout=1.0))

    assert time.monotonic() - started < 1.0
    assert set(message) == {"id", "kind", "title", "body", "created_at", "read_at"}
    assert (message["kind"], message["read_at"]) == ("security", None)
    uuid.UUID(message["id"])


async def test_stream_delivers_what_another_replica_publishes(
    app: FastAPI, alice_socket: ClientConnection, alice_id: uuid.UUID
) -> None:
    payload = json.dumps({"id": str(uuid.uuid4()), "title": "from elsewhere"})

    await app.state.redis.publish(channel_for(alice_id), payload)

    assert await asyncio.wait_for(alice_socket.recv(), timeout=1.0) == payload


async def test_stream_does_not_push_other_users_notifications(
    alice_socket: ClientConnection, handle: Handle, alice_id: uuid.UUID, bob_id: uuid.UUID
) -> None:
    await handle("auth.password_changed", {"user_id": str(bob_id), "email": "b@example.com"})
    await handle(
        "user.registered",
        {"user_id": str(alice_id), "email": "a@example.com", "verification_token": None},
    )

    message = json.loads(await asyncio.wait_for(alice_socket.recv(), timeout=1.0))

    assert message["kind"] == "welcome"  # Bob's security notice, committed first, never came


async def test_stream_serves_several_sockets_of_one_user(
    ws_url: str, tokens: TokenFactory, alice_id: uuid.UUID, subscribed: Any, handle: Handle
) -> None:
    async with connect(ws_url) as first, connect(ws_url) as second:
        await subscribed(first, tokens.mint(alice_id), alice_id)
        await subscribed(second, tokens.mint(alice_id), alice_id)
        await handle("auth.password_changed", {"user_id": str(alice_id), "email": "a@x.com"})

        one, two = await asyncio.gather(
            asyncio.wait_for(first.recv(), 1.0), asyncio.wait_for(second.recv(), 1.0)
        )

    assert one == two


@pytest.mark.parametrize(
    "first_message",
    [
        json.dumps({"token": "not-a-jwt"}),
        json.dumps({"token": ""}),
        json.dumps({"token": 42}),
        json.dumps({"access_token": "x"}),
        json.dumps(["token"]),
        "not json",
    ],
)
async def test_stream_with_a_bad_first_message_closes_with_4401(
    ws_url: str, first_message: str
) -> None:
    async with connect(ws_url) as ws:
        await ws.send(first_message)

        assert await closed_with(ws) == 4401


async def test_stream_with_a_refresh_token_closes_with_4401(
    ws_url: str, tokens: TokenFactory
) -> None:
    async with connect(ws_url) as ws:
        await ws.send(json.dumps({"token": tokens.mint(token_type="refresh")}))

        assert await closed_with(ws) == 4401


async def test_stream_with_an_expired_token_closes_with_4401(
    ws_url: str, tokens: TokenFactory
) -> None:
    async with connect(ws_url) as ws:
        await ws.send(json.dumps({"token": tokens.mint(ttl_seconds=-60)}))

        assert await closed_with(ws) == 4401


async def test_stream_without_a_first_message_is_closed_after_the_grace_period(
    ws_url: str, tokens: TokenFactory
) -> None:
    # A token in the URL is not how this stream authenticates: it is ignored.
    async with connect(f"{ws_url}?token={tokens.mint()}") as ws:
        started = time.monotonic()

        assert await closed_with(ws, within=3.0) == 4401
        assert 0.9 <= time.monotonic() - started < 2.5  # WS_AUTH_TIMEOUT is 1 s in tests


async def test_stream_closes_with_4401_once_the_session_is_revoked(
    app: FastAPI, ws_url: str, tokens: TokenFactory, alice_id: uuid.UUID, subscribed: Any
) -> None:
    session_id = uuid.uuid4()
    async with connect(ws_url) as ws:
        await subscribed(ws, tokens.mint(alice_id, session_id=session_id), alice_id)

        await revocation.revoke_sessions(app.state.redis, [session_id], ttl_seconds=60)

        assert await closed_with(ws, within=2.0) == 4401  # rechecked every 0.5 s in tests


async def test_stream_forgets_a_socket_once_the_client_leaves(
    app: FastAPI, ws_url: str, tokens: TokenFactory, alice_id: uuid.UUID, subscribed: Any
) -> None:
    async with connect(ws_url) as ws:
        await subscribed(ws, tokens.mint(alice_id), alice_id)

    await until(lambda: app.state.hub.listeners(alice_id) == 0)


async def test_stream_first_sends_unread_notifications_created_before_connecting(
    ws_url: str, tokens: TokenFactory, alice_id: uuid.UUID, handle: Handle, subscribed: Any
) -> None:
    await handle("user.registered", {"user_id": str(alice_id), "email": "a@example.com",
                                     "full_name": "Alice", "verification_token": None})  # fmt: skip
    async with connect(ws_url) as ws:
        await subscribed(ws, tokens.mint(alice_id), alice_id)
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=1.0))
    assert message["kind"] == "welcome" and message["read_at"] is None
