"""Notifications: listed, read one by one or all at once, and pushed over the WebSocket."""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from e2e import PASSWORD, User
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

LogIn = Callable[[str, str], dict[str, Any]]
CLOSE_UNAUTHORIZED = 4401


def notifications(api: httpx.Client, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    response = api.get("/api/v1/notifications/", headers=auth, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def welcomed_user(new_user: User, api: httpx.Client, eventually: Callable[..., Any]) -> User:
    """A new user once the welcome notification (from `user.registered`) is there."""
    assert eventually(lambda: notifications(api, new_user.auth)["total"] == 1)
    return new_user


def change_password(api: httpx.Client, user: User, log_in: LogIn) -> User:
    """Change `user`'s password, which revokes their tokens: the same user, logged in again."""
    new_password = user.password + " 2"
    changed = api.post(
        "/api/v1/auth/password/change",
        headers=user.auth,
        json={"current_password": user.password, "new_password": new_password},
    )
    assert changed.status_code == 204
    return User.from_login(user.email, new_password, user.id, log_in(user.email, new_password))


@pytest.fixture
def warned_user(
    welcomed_user: User, api: httpx.Client, log_in: LogIn, eventually: Callable[..., Any]
) -> User:
    """A user with a welcome and then a security notification (they changed their password)."""
    user = change_password(api, welcomed_user, log_in)
    assert eventually(lambda: notifications(api, user.auth)["total"] == 2)
    return user


def test_a_new_user_is_welcomed_and_marks_it_read(api: httpx.Client, welcomed_user: User) -> None:
    body = notifications(api, welcomed_user.auth)
    assert body["unread"] == 1
    [welcome] = body["items"]
    assert welcome["kind"] == "welcome" and welcome["read_at"] is None
    assert {"id", "title", "body", "created_at"} <= welcome.keys()

    read = api.post(f"/api/v1/notifications/{welcome['id']}/read", headers=welcomed_user.auth)
    assert read.status_code == 200 and read.json()["read_at"]
    assert notifications(api, welcomed_user.auth)["unread"] == 0
    assert notifications(api, welcomed_user.auth, unread_only=True)["items"] == []


def test_newest_first_and_read_all(api: httpx.Client, warned_user: User) -> None:
    body = notifications(api, warned_user.auth)
    assert [n["kind"] for n in body["items"]] == ["security", "welcome"]
    assert body["unread"] == 2

    read_all = api.post("/api/v1/notifications/read-all", headers=warned_user.auth)
    assert read_all.status_code == 204
    after = notifications(api, warned_user.auth)
    assert after["unread"] == 0 and all(n["read_at"] for n in after["items"])
    assert after["total"] == 2


# ---- the WebSocket ------------------------------------------------------------------------


@contextmanager
def stream(gateway_url: str, first_message: str) -> Iterator[ClientConnection]:
    """The notification stream, after sending `first_message` (normally the token)."""
    url = gateway_url.replace("http://", "ws://", 1) + "/api/v1/notifications/ws"
    with connect(url, open_timeout=5) as socket:
        socket.send(first_message)
        yield socket


def authenticated(token: str) -> str:
    return json.dumps({"token": token})


def receive(socket: ClientConnection) -> dict[str, Any]:
    """The next notification; 15 s covers the event's trip through the outbox and Redis."""
    return dict(json.loads(socket.recv(timeout=15)))


def close_code(socket: ClientConnection) -> int | None:
    """The code the server closes the socket with, or None if it sends a message instead."""
    try:
        socket.recv(timeout=15)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    return None


def test_the_stream_starts_with_the_unread_backlog_oldest_first(
    gateway_url: str, warned_user: User
) -> None:
    with stream(gateway_url, authenticated(warned_user.access_token)) as socket:
        backlog = [receive(socket), receive(socket)]
    assert [n["kind"] for n in backlog] == ["welcome", "security"]
    assert all(n["read_at"] is None for n in backlog)


def test_what_was_read_is_not_in_the_backlog(
    api: httpx.Client,
    gateway_url: str,
    welcomed_user: User,
    log_in: LogIn,
    eventually: Callable[..., Any],
) -> None:
    [welcome] = notifications(api, welcomed_user.auth)["items"]
    api.post(f"/api/v1/notifications/{welcome['id']}/read", headers=welcomed_user.auth)
    user = change_password(api, welcomed_user, log_in)
    assert eventually(lambda: notifications(api, user.auth, unread_only=True)["total"] == 1)

    with stream(gateway_url, authenticated(user.access_token)) as socket:
        assert receive(socket)["kind"] == "security"


def test_a_notification_arriving_while_connected_follows_the_backlog(
    api: httpx.Client, gateway_url: str, welcomed_user: User, log_in: LogIn
) -> None:
    # The security notice is made when the `auth.password_changed` event is handled: before
    # the socket below is open (then it comes in the backlog) or after (then it is pushed).
    # Either way the client sees both, in order, each once after deduplication by id.
    user = change_password(api, welcomed_user, log_in)
    seen: dict[str, dict[str, Any]] = {}
    with stream(gateway_url, authenticated(user.access_token)) as socket:
        while len(seen) < 2:
            notification = receive(socket)
            seen.setdefault(notification["id"], notification)
    assert [n["kind"] for n in seen.values()] == ["welcome", "security"]


def test_a_socket_closes_with_4401_once_its_token_is_revoked(
    api: httpx.Client, gateway_url: str, welcomed_user: User
) -> None:
    with stream(gateway_url, authenticated(welcomed_user.access_token)) as socket:
        assert receive(socket)["kind"] == "welcome"
        # Changing the password revokes this token and makes a notification. Pushed to this
        # socket, it makes the stream check the token again (long before its periodic check,
        # every 30 s by default): the socket closes instead of sending it.
        changed = api.post(
            "/api/v1/auth/password/change",
            headers=welcomed_user.auth,
            json={"current_password": PASSWORD, "new_password": PASSWORD + " 2"},
        )
        assert changed.status_code == 204
        assert close_code(socket) == CLOSE_UNAUTHORIZED


@pytest.mark.parametrize("first_message", ['{"token": "not-a-token"}', "hello", "{}"])
def test_a_bad_first_message_closes_the_socket_with_4401(
    gateway_url: str, first_message: str
) -> None:
    with stream(gateway_url, first_message) as socket:
        assert close_code(socket) == CLOSE_UNAUTHORIZED
