"""What a credential change ends, what a stranger's mail may hold, what answers reveal.

Through the gateway only: reset links mailed before a credential change stop working,
text with control characters is refused where another person would read it, the name
typed at registration never reaches the (unverified) address, redirects stay relative
whatever Host was sent, and no answer names the server software.
"""

from collections.abc import Callable

import httpx
import pytest
from e2e import PASSWORD, Mailbox, User

NEW_PASSWORD = "an entirely new passphrase"
RESET_SUBJECT = "Reset"


def _mailed_reset_token(api: httpx.Client, mailbox: Mailbox, user: User) -> str:
    assert api.post("/api/v1/auth/password/forgot", json={"email": user.email}).status_code == 202
    [mail] = mailbox.wait_for(user.email, RESET_SUBJECT)
    return mailbox.token_in(mail)


def _change_password(api: httpx.Client, user: User, _: User) -> httpx.Response:
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    return api.post("/api/v1/auth/password/change", json=body, headers=user.auth)


def _log_out_everywhere(api: httpx.Client, user: User, _: User) -> httpx.Response:
    return api.post("/api/v1/auth/logout-all", headers=user.auth)


def _promote(api: httpx.Client, user: User, admin: User) -> httpx.Response:
    body = {"roles": ["user", "admin"]}
    return api.patch(f"/api/v1/auth/accounts/{user.id}", json=body, headers=admin.auth)


@pytest.mark.parametrize(
    "change", [_change_password, _log_out_everywhere, _promote], ids=lambda c: c.__name__[1:]
)
def test_a_reset_link_mailed_before_a_credential_change_no_longer_works(
    api: httpx.Client,
    mailbox: Mailbox,
    new_user: User,
    admin: User,
    change: Callable[[httpx.Client, User, User], httpx.Response],
) -> None:
    token = _mailed_reset_token(api, mailbox, new_user)
    changed = change(api, new_user, admin)
    assert changed.status_code in (200, 204), changed.text

    reset = api.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": "attacker's choice"}
    )

    assert reset.status_code == 400
    assert reset.json()["detail"] == "Invalid, expired or already used token"
    refused = api.post(
        "/api/v1/auth/token", data={"username": new_user.email, "password": "attacker's choice"}
    )
    assert refused.status_code == 401


# ---- text another person reads ------------------------------------------------------------

CONTROL_CHARACTERS = {
    "line break": "Eve\r\nSubject: urgent",
    "escape": "Eve\x1b[2J",
    "bidi override": "Eve\u202egnp.exe",
    "zero width joiner": "E\u200dve",
}


@pytest.mark.parametrize("name", CONTROL_CHARACTERS.values(), ids=CONTROL_CHARACTERS.keys())
def test_a_name_with_control_characters_is_refused_wherever_others_read_it(
    api: httpx.Client, fresh_email: str, new_user: User, name: str
) -> None:
    account = {"email": fresh_email, "password": PASSWORD, "full_name": name}
    registered = api.post("/api/v1/auth/register", json=account)
    assert registered.status_code == 422
    assert "control characters" in str(registered.json()["detail"])
    profile = api.patch("/api/v1/users/me", json={"display_name": name}, headers=new_user.auth)
    assert profile.status_code == 422
    item = api.post("/api/v1/items/", json={"title": name}, headers=new_user.auth)
    assert item.status_code == 422


def test_a_bio_keeps_its_line_breaks_but_no_other_control_character(
    api: httpx.Client, new_user: User
) -> None:
    kept = api.patch("/api/v1/users/me", json={"bio": "one\ntwo"}, headers=new_user.auth)
    assert kept.status_code == 200
    assert kept.json()["bio"] == "one\ntwo"
    refused = api.patch("/api/v1/users/me", json={"bio": "one\x07two"}, headers=new_user.auth)
    assert refused.status_code == 422


def test_the_name_typed_at_registration_never_reaches_the_address_it_names(
    api: httpx.Client, mailbox: Mailbox, fresh_email: str
) -> None:
    """Anyone can register someone else's address: the mail must be the platform's words."""
    pitch = "Support team: your account is locked, call +1 555 0100 or visit evil.example"
    account = {"email": fresh_email, "password": PASSWORD, "full_name": pitch}
    assert api.post("/api/v1/auth/register", json=account).status_code == 201

    [mail] = mailbox.wait_for(fresh_email, "Confirm")
    text = mailbox.text(mail)

    assert "evil.example" not in text
    assert "Support team" not in text
    assert f"Hello {fresh_email}," in text


# ---- what answers reveal ------------------------------------------------------------------


def test_forgot_answers_alike_for_a_known_and_an_unknown_address(
    api: httpx.Client, new_user: User, fresh_email: str
) -> None:
    known = api.post("/api/v1/auth/password/forgot", json={"email": new_user.email})
    unknown = api.post("/api/v1/auth/password/forgot", json={"email": fresh_email})
    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content == b""
    varying = {"x-request-id", "date"}
    assert set(known.headers) - varying == set(unknown.headers) - varying


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/accounts/", "/api/v1/users/me/", "/api/v1/notifications/health/"]
)
def test_a_trailing_slash_redirect_never_names_the_host_the_client_sent(
    gateway_url: str, path: str
) -> None:
    with httpx.Client(base_url=gateway_url, timeout=10, follow_redirects=False) as client:
        response = client.get(f"{path}?page=2", headers={"Host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == f"{path.rstrip('/')}?page=2"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/auth/health"),
        ("GET", "/api/v1/users/me"),  # 401 from a service
        ("GET", "/api/v1/nowhere"),  # the gateway's own 404
        ("POST", "/api/v1/auth%2Fregister"),  # refused by the gateway before routing
        ("POST", "/api/v1/auth/token"),  # 422
    ],
)
def test_no_answer_names_the_server_software(api: httpx.Client, method: str, path: str) -> None:
    request = api.build_request(method, "/")
    request.url = request.url.copy_with(raw_path=path.encode())
    response = api.send(request)
    assert "server" not in response.headers, response.headers["server"]


@pytest.mark.parametrize(
    "path", ["/api/v1/auth%2Fregister", "/api/v1%2Fauth%2Fregister", "/api/v1/auth%5Cregister"]
)
def test_a_registration_through_an_encoded_path_is_refused_before_any_service(
    api: httpx.Client, fresh_email: str, path: str
) -> None:
    """Spelled so, it would once skip the credential routes' rate limit and still register."""
    request = api.build_request("POST", "/", json={"email": fresh_email, "password": PASSWORD})
    request.url = request.url.copy_with(raw_path=path.encode())
    assert api.send(request).status_code == 400
    again = api.post("/api/v1/auth/register", json={"email": fresh_email, "password": PASSWORD})
    assert again.status_code == 201  # the refused spelling created nothing
