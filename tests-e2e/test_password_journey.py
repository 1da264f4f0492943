"""Passwords: forgotten and reset by mail, changed while logged in; old tokens die either way."""

from collections.abc import Callable
from typing import Any

import httpx
from e2e import PASSWORD, Mailbox, User, bearer

LogIn = Callable[[str, str], dict[str, Any]]
NEW_PASSWORD = "an entirely new passphrase"


def test_a_forgotten_password_is_reset_with_the_mailed_token(
    api: httpx.Client, mailbox: Mailbox, new_user: User, log_in: LogIn
) -> None:
    forgot = api.post("/api/v1/auth/password/forgot", json={"email": new_user.email})
    assert forgot.status_code == 202
    [mail] = mailbox.wait_for(new_user.email, "Reset")
    token = mailbox.token_in(mail)

    reset = api.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204
    # Every token issued before the reset dies, in every service.
    assert api.get("/api/v1/auth/me", headers=new_user.auth).status_code == 401
    assert api.get("/api/v1/items/", headers=new_user.auth).status_code == 401
    refresh = api.post("/api/v1/auth/refresh", json={"refresh_token": new_user.refresh_token})
    assert refresh.status_code == 401

    again = api.post("/api/v1/auth/password/reset", json={"token": token, "new_password": "x" * 12})
    assert again.status_code == 400  # single use
    log_in(new_user.email, NEW_PASSWORD)
    mailbox.wait_for(new_user.email, "password was changed")


def test_forgot_answers_the_same_for_an_unknown_address(
    api: httpx.Client, fresh_email: str
) -> None:
    response = api.post("/api/v1/auth/password/forgot", json={"email": fresh_email})
    assert response.status_code == 202
    assert response.content == b""


def test_a_made_up_reset_token_is_refused(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/auth/password/reset", json={"token": "made-up", "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 400


def test_changing_the_password_signs_out_everywhere_and_warns_the_user(
    api: httpx.Client,
    mailbox: Mailbox,
    new_user: User,
    log_in: LogIn,
    eventually: Callable[..., Any],
) -> None:
    wrong = api.post(
        "/api/v1/auth/password/change",
        headers=new_user.auth,
        json={"current_password": "not the password", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 400
    assert api.get("/api/v1/auth/me", headers=new_user.auth).status_code == 200  # unchanged

    changed = api.post(
        "/api/v1/auth/password/change",
        headers=new_user.auth,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204
    assert api.get("/api/v1/users/me", headers=new_user.auth).status_code == 401

    fresh = bearer(log_in(new_user.email, NEW_PASSWORD)["access_token"])
    mailbox.wait_for(new_user.email, "password was changed")

    def security_notice() -> list[dict[str, Any]]:
        listed = api.get("/api/v1/notifications/", headers=fresh).json()["items"]
        return [n for n in listed if n["kind"] == "security"]

    [notice] = eventually(security_notice)
    assert notice["title"] == "Your password was changed" and notice["read_at"] is None
