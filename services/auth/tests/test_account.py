"""The account's own life: verification, passwords, deletion; and the admin's views."""

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from servicekit_testing import TEST_PASSWORD, bearer

Outbox = Callable[[str], Awaitable[list[dict[str, Any]]]]
ME = "/api/v1/auth/me"


async def test_verify_email_with_the_mailed_token(
    client: httpx.AsyncClient, user: dict, outbox: Outbox
) -> None:
    [event] = await outbox("user.registered")
    response = await client.post(
        "/api/v1/auth/verify-email", json={"token": event["verification_token"]}
    )
    assert response.status_code == 200
    assert response.json()["is_verified"] is True
    spent = await client.post(
        "/api/v1/auth/verify-email", json={"token": event["verification_token"]}
    )
    assert spent.status_code == 400
    assert spent.json() == {"detail": "Invalid, expired or already used token"}


async def test_verify_email_link_shows_a_page(
    client: httpx.AsyncClient, user: dict, outbox: Outbox
) -> None:
    [event] = await outbox("user.registered")
    response = await client.get(
        "/api/v1/auth/verify-email", params={"token": event["verification_token"]}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Email verified" in response.text
    bad = await client.get("/api/v1/auth/verify-email", params={"token": "<script>x</script>"})
    assert bad.status_code == 400
    assert "<script>" not in bad.text


async def test_expired_verification_token_is_400(
    client: httpx.AsyncClient, app: FastAPI, user: dict, outbox: Outbox
) -> None:
    [event] = await outbox("user.registered")
    async with app.state.database.engine.begin() as connection:
        await connection.execute(
            text("UPDATE one_time_token SET expires_at = now() - interval '1s'")
        )
    response = await client.post(
        "/api/v1/auth/verify-email", json={"token": event["verification_token"]}
    )
    assert response.status_code == 400


async def test_resend_verification_emits_a_new_token_then_throttles(
    client: httpx.AsyncClient, user: dict, outbox: Outbox
) -> None:
    url = "/api/v1/auth/verify-email/resend"
    first = await client.post(url, headers=bearer(user["access_token"]))
    assert first.status_code == 202
    [event] = await outbox("auth.verification_requested")
    assert event["user_id"] == user["account"]["id"] and event["verification_token"]
    second = await client.post(url, headers=bearer(user["access_token"]))
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) > 0
    verified = await client.post(
        "/api/v1/auth/verify-email", json={"token": event["verification_token"]}
    )
    assert verified.status_code == 200


async def test_forgot_password_answers_the_same_for_unknown_emails(
    client: httpx.AsyncClient, user: dict, outbox: Outbox
) -> None:
    known = await client.post(
        "/api/v1/auth/password/forgot", json={"email": user["account"]["email"].upper()}
    )
    unknown = await client.post("/api/v1/auth/password/forgot", json={"email": "who@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content
    [event] = await outbox("auth.password_reset_requested")
    assert event["email"] == user["account"]["email"] and event["reset_token"]


async def test_password_reset_is_single_use_and_revokes_every_token(
    client: httpx.AsyncClient, user: dict, outbox: Outbox, login: Any
) -> None:
    await client.post("/api/v1/auth/password/forgot", json={"email": user["account"]["email"]})
    [event] = await outbox("auth.password_reset_requested")
    body = {"token": event["reset_token"], "new_password": "a brand new secret"}
    response = await client.post("/api/v1/auth/password/reset", json=body)
    assert response.status_code == 204
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 401
    again = await client.post("/api/v1/auth/password/reset", json=body)
    assert again.status_code == 400
    await login(user["account"]["email"], "a brand new secret")
    old = await client.post(
        "/api/v1/auth/token", data={"username": user["account"]["email"], "password": TEST_PASSWORD}
    )
    assert old.status_code == 401
    assert [e["user_id"] for e in await outbox("auth.password_changed")] == [user["account"]["id"]]


async def test_password_reset_with_a_weak_password_is_422_and_keeps_the_token(
    client: httpx.AsyncClient, user: dict, outbox: Outbox
) -> None:
    await client.post("/api/v1/auth/password/forgot", json={"email": user["account"]["email"]})
    [event] = await outbox("auth.password_reset_requested")
    weak = await client.post(
        "/api/v1/auth/password/reset", json={"token": event["reset_token"], "new_password": "short"}
    )
    assert weak.status_code == 422
    ok = await client.post(
        "/api/v1/auth/password/reset",
        json={"token": event["reset_token"], "new_password": "long enough now"},
    )
    assert ok.status_code == 204


async def test_password_change_revokes_tokens_and_emits_event(
    client: httpx.AsyncClient, user: dict, outbox: Outbox, login: Any
) -> None:
    response = await client.post(
        "/api/v1/auth/password/change",
        headers=bearer(user["access_token"]),
        json={"current_password": TEST_PASSWORD, "new_password": "another fine secret"},
    )
    assert response.status_code == 204
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 401
    await login(user["account"]["email"], "another fine secret")
    [event] = await outbox("auth.password_changed")
    assert event == {"user_id": user["account"]["id"], "email": user["account"]["email"]}


async def test_password_change_with_wrong_current_password_is_400_and_changes_nothing(
    client: httpx.AsyncClient, user: dict, outbox: Outbox, login: Any
) -> None:
    response = await client.post(
        "/api/v1/auth/password/change",
        headers=bearer(user["access_token"]),
        json={"current_password": "not my password", "new_password": "another fine secret"},
    )
    assert response.status_code == 400
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 200
    await login(user["account"]["email"], TEST_PASSWORD)
    assert await outbox("auth.password_changed") == []


async def test_delete_me_needs_the_password(client: httpx.AsyncClient, user: dict) -> None:
    response = await client.request(
        "DELETE", ME, headers=bearer(user["access_token"]), json={"password": "wrong password"}
    )
    assert response.status_code == 400
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 200


async def test_delete_me_revokes_tokens_and_emits_user_deleted(
    client: httpx.AsyncClient, user: dict, outbox: Outbox
) -> None:
    response = await client.request(
        "DELETE", ME, headers=bearer(user["access_token"]), json={"password": TEST_PASSWORD}
    )
    assert response.status_code == 204
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": user["refresh_token"]}
    )
    assert refresh.status_code == 401
    assert await outbox("user.deleted") == [{"user_id": user["account"]["id"]}]
    login = await client.post(
        "/api/v1/auth/token", data={"username": user["account"]["email"], "password": TEST_PASSWORD}
    )
    assert login.status_code == 401


async def test_accounts_list_is_admin_only(client: httpx.AsyncClient, user: dict) -> None:
    response = await client.get("/api/v1/auth/accounts", headers=bearer(user["access_token"]))
    assert response.status_code == 403


async def test_admin_lists_and_searches_accounts(
    client: httpx.AsyncClient, admin: dict, register: Any
) -> None:
    await register("zed.one@example.com")
    await register("zed.two@example.com")
    await register("other@example.com")
    response = await client.get(
        "/api/v1/auth/accounts",
        params={"q": "ZED", "limit": 1},
        headers=bearer(admin["access_token"]),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2 and body["limit"] == 1 and body["offset"] == 0
    assert len(body["items"]) == 1 and body["items"][0]["email"].startswith("zed.")
    assert "password_hash" not in response.text
    everything = await client.get("/api/v1/auth/accounts", headers=bearer(admin["access_token"]))
    assert everything.json()["total"] == 4


async def test_accounts_pagination_bounds_are_422(client: httpx.AsyncClient, admin: dict) -> None:
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        response = await client.get(
            "/api/v1/auth/accounts", params=params, headers=bearer(admin["access_token"])
        )
        assert response.status_code == 422


async def test_admin_grants_a_role_and_old_tokens_stop_working(
    client: httpx.AsyncClient, admin: dict, user: dict, login: Any
) -> None:
    response = await client.patch(
        f"/api/v1/auth/accounts/{user['account']['id']}",
        json={"roles": ["user", "admin"]},
        headers=bearer(admin["access_token"]),
    )
    assert response.status_code == 200
    assert response.json()["roles"] == ["admin", "user"]
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 401
    promoted = await login(user["account"]["email"])
    listing = await client.get("/api/v1/auth/accounts", headers=bearer(promoted["access_token"]))
    assert listing.status_code == 200


async def test_deactivation_revokes_tokens(
    client: httpx.AsyncClient, admin: dict, user: dict
) -> None:
    response = await client.patch(
        f"/api/v1/auth/accounts/{user['account']['id']}",
        json={"is_active": False},
        headers=bearer(admin["access_token"]),
    )
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 401


async def test_admin_cannot_demote_themselves(client: httpx.AsyncClient, admin: dict) -> None:
    me = (await client.get(ME, headers=bearer(admin["access_token"]))).json()
    response = await client.patch(
        f"/api/v1/auth/accounts/{me['id']}",
        json={"roles": ["user"]},
        headers=bearer(admin["access_token"]),
    )
    assert response.status_code == 400


async def test_patch_unknown_account_is_404_and_bad_role_is_422(
    client: httpx.AsyncClient, admin: dict
) -> None:
    unknown = await client.patch(
        "/api/v1/auth/accounts/00000000-0000-0000-0000-000000000000",
        json={"is_active": False},
        headers=bearer(admin["access_token"]),
    )
    assert unknown.status_code == 404
    bad = await client.patch(
        "/api/v1/auth/accounts/00000000-0000-0000-0000-000000000000",
        json={"roles": ["emperor"]},
        headers=bearer(admin["access_token"]),
    )
    assert bad.status_code == 422


async def test_first_admin_is_created_once(app: FastAPI) -> None:
    from auth import service

    async with app.state.database.sessionmaker() as session:
        for _ in range(2):
            await service.ensure_first_admin(
                session=session, email="Boss@example.com", password=TEST_PASSWORD
            )
        admin = await service.get_account_by_email(session=session, email="boss@example.com")
        count = (await session.exec(text("SELECT count(*) FROM account"))).scalar_one()  # type: ignore[call-overload]
    assert admin is not None and sorted(admin.roles) == ["admin", "user"]
    assert count == 1
