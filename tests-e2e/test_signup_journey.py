"""Signing up: register, get the verification mail, confirm the address."""

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from e2e import PASSWORD, Mailbox, User, bearer


def test_sign_up_and_confirm_the_address_with_the_mailed_link(
    api: httpx.Client, mailbox: Mailbox, fresh_email: str, log_in: Callable[..., dict[str, Any]]
) -> None:
    registered = api.post(
        "/api/v1/auth/register",
        json={"email": fresh_email, "password": PASSWORD, "full_name": "Ada Lovelace"},
    )
    assert registered.status_code == 201
    account = registered.json()
    assert account["email"] == fresh_email and account["full_name"] == "Ada Lovelace"
    assert account["is_verified"] is False and account["is_active"] is True
    assert account["roles"] == ["user"]
    assert not {"password", "password_hash"} & account.keys()

    [mail] = mailbox.wait_for(fresh_email, "Confirm")
    link = urlsplit(mailbox.link_in(mail, "/api/v1/auth/verify-email?token="))
    # The link names the public URL; follow it through the gateway this suite talks to.
    page = api.get(f"{link.path}?{link.query}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")

    me = api.get("/api/v1/auth/me", headers=bearer(log_in(fresh_email, PASSWORD)["access_token"]))
    assert me.json()["is_verified"] is True
    assert api.get(f"{link.path}?{link.query}").status_code == 400  # a link works once


def test_an_app_confirms_the_address_by_posting_the_mailed_token(
    api: httpx.Client, mailbox: Mailbox, fresh_email: str
) -> None:
    account = api.post(
        "/api/v1/auth/register", json={"email": fresh_email, "password": PASSWORD}
    ).json()
    [mail] = mailbox.wait_for(fresh_email, "Confirm")
    token = mailbox.token_in(mail)

    verified = api.post("/api/v1/auth/verify-email", json={"token": token})
    assert verified.status_code == 200
    assert verified.json()["id"] == account["id"] and verified.json()["is_verified"] is True
    assert api.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 400
    assert api.post("/api/v1/auth/verify-email", json={"token": "made-up"}).status_code == 400


def test_an_unverified_user_asks_for_a_new_mail_once_a_minute(
    api: httpx.Client, mailbox: Mailbox, new_user: User
) -> None:
    mailbox.wait_for(new_user.email, "Confirm")
    resent = api.post("/api/v1/auth/verify-email/resend", headers=new_user.auth)
    assert resent.status_code == 202
    newest, _ = mailbox.wait_for(new_user.email, "Confirm", count=2)

    again = api.post("/api/v1/auth/verify-email/resend", headers=new_user.auth)
    assert again.status_code == 429
    assert int(again.headers["retry-after"]) >= 1

    token = mailbox.token_in(newest)
    assert api.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 200
    verified_already = api.post("/api/v1/auth/verify-email/resend", headers=new_user.auth)
    assert verified_already.status_code == 409


def test_an_address_registers_once_whatever_its_case(api: httpx.Client, fresh_email: str) -> None:
    first = api.post("/api/v1/auth/register", json={"email": fresh_email, "password": PASSWORD})
    assert first.status_code == 201
    again = api.post(
        "/api/v1/auth/register", json={"email": fresh_email.upper(), "password": PASSWORD}
    )
    assert again.status_code == 409
    assert again.json()["detail"]


def test_a_password_shorter_than_8_characters_is_refused(
    api: httpx.Client, fresh_email: str
) -> None:
    response = api.post("/api/v1/auth/register", json={"email": fresh_email, "password": "short"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]
