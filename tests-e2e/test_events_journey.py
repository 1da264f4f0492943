"""Events across services through the gateway: mails, notifications, WebSocket, deletion."""

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import websockets

from servicekit.testing import TEST_PASSWORD, bearer


def _register(api: httpx.Client) -> tuple[str, dict[str, Any]]:
    email = f"events-{uuid.uuid4().hex[:10]}@example.com"
    registered = api.post("/api/v1/auth/register", json={"email": email, "password": TEST_PASSWORD})
    assert registered.status_code == 201
    return email, registered.json()


def _login(api: httpx.Client, email: str, password: str = TEST_PASSWORD) -> dict[str, Any]:
    response = api.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def test_registration_mails_a_verification_link_that_verifies(
    api: httpx.Client, mailbox: Any
) -> None:
    email, account = _register(api)
    [mail] = mailbox.wait_for(email, "Confirm")
    assert "/api/v1/auth/verify-email?token=" in mailbox.text(mail)
    verified = api.post("/api/v1/auth/verify-email", json={"token": mailbox.token_in(mail)})
    assert verified.status_code == 200
    assert verified.json()["is_verified"] is True and verified.json()["id"] == account["id"]


def test_forgotten_password_reset_by_mail_and_old_tokens_die(
    api: httpx.Client, mailbox: Any
) -> None:
    email, _ = _register(api)
    old = _login(api, email)
    assert api.post("/api/v1/auth/password/forgot", json={"email": email}).status_code == 202
    [mail] = mailbox.wait_for(email, "Reset")
    reset = api.post(
        "/api/v1/auth/password/reset",
        json={"token": mailbox.token_in(mail), "new_password": "an entirely new one"},
    )
    assert reset.status_code == 204
    assert api.get("/api/v1/auth/me", headers=bearer(old["access_token"])).status_code == 401
    assert api.get("/api/v1/items/", headers=bearer(old["access_token"])).status_code == 401
    _login(api, email, "an entirely new one")
    mailbox.wait_for(email, "password was changed")


def test_welcome_notification_is_listed_and_marked_read(
    api: httpx.Client, eventually: Callable[..., Any]
) -> None:
    email, _ = _register(api)
    auth = bearer(_login(api, email)["access_token"])

    def listed() -> dict[str, Any] | None:
        body = api.get("/api/v1/notifications/", headers=auth).json()
        return body if body["total"] >= 1 else None

    body = eventually(listed)
    assert body is not None and body["unread"] == 1
    [welcome] = body["items"]
    read = api.post(f"/api/v1/notifications/{welcome['id']}/read", headers=auth)
    assert read.status_code == 200 and read.json()["read_at"]
    assert api.get("/api/v1/notifications/", headers=auth).json()["unread"] == 0


def test_the_websocket_delivers_the_welcome_notification(
    api: httpx.Client, gateway_url: str
) -> None:
    email, _ = _register(api)
    tokens = _login(api, email)
    url = gateway_url.replace("http://", "ws://") + "/api/v1/notifications/ws"

    async def first_message() -> dict[str, Any]:
        async with websockets.connect(url, open_timeout=5) as socket:
            await socket.send(json.dumps({"token": tokens["access_token"]}))
            # Pushed when `user.registered` is handled, or sent as unread backlog if that
            # happened before we connected: either way, it arrives.
            return dict(json.loads(await asyncio.wait_for(socket.recv(), timeout=15)))

    welcome = asyncio.run(first_message())
    assert welcome["kind"] == "welcome" and welcome["read_at"] is None


def test_a_bad_websocket_token_closes_with_4401(gateway_url: str) -> None:
    url = gateway_url.replace("http://", "ws://") + "/api/v1/notifications/ws"

    async def attempt() -> int:
        async with websockets.connect(url, open_timeout=5) as socket:
            await socket.send(json.dumps({"token": "not-a-token"}))
            try:
                await asyncio.wait_for(socket.recv(), timeout=5)
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None
                return closed.rcvd.code
        return 0

    assert asyncio.run(attempt()) == 4401


def test_deleting_the_account_erases_it_in_every_service(
    api: httpx.Client, eventually: Callable[..., Any]
) -> None:
    email, account = _register(api)
    owner = bearer(_login(api, email)["access_token"])
    assert api.get("/api/v1/users/me", headers=owner).status_code == 200
    item = api.post("/api/v1/items/", headers=owner, json={"title": "Doomed"}).json()
    assert eventually(lambda: api.get("/api/v1/notifications/", headers=owner).json()["total"])

    admin = bearer(_login(api, "admin@example.com", "admin-password-dev-only")["access_token"])
    deleted = api.request(
        "DELETE", "/api/v1/auth/me", headers=owner, json={"password": TEST_PASSWORD}
    )
    assert deleted.status_code == 204
    assert api.get("/api/v1/users/me", headers=owner).status_code == 401

    def erased() -> bool:
        profile = api.get(f"/api/v1/users/{account['id']}", headers=admin).status_code
        items = api.get("/api/v1/items/", headers=admin, params={"owner_id": account["id"]}).json()
        deliveries = api.get(
            "/api/v1/notifications/deliveries", headers=admin, params={"limit": 100}
        )
        mine = [d for d in deliveries.json()["items"] if d["user_id"] == account["id"]]
        return profile == 404 and items["total"] == 0 and not mine

    assert eventually(erased)
    assert api.get(f"/api/v1/items/{item['id']}", headers=admin).status_code == 404
