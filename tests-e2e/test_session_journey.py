"""Logging in and out: the token pair, refresh with rotation, logout, logout-all, sessions."""

import base64
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from e2e import PASSWORD, User, bearer

LogIn = Callable[[str, str], dict[str, Any]]
#: A protected route of every service: a token refused by one is refused by all.
PROTECTED = [
    "/api/v1/auth/me",
    "/api/v1/users/me",
    "/api/v1/items/",
    "/api/v1/notifications/",
]


def segment(token: str, index: int) -> dict[str, Any]:
    """A JWT's header (0) or payload (1), unverified: what the contract promises in them."""
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def claims(token: str) -> dict[str, Any]:
    return segment(token, 1)


def statuses(api: httpx.Client, token: str) -> set[int]:
    """What every service answers this access token."""
    return {api.get(path, headers=bearer(token)).status_code for path in PROTECTED}


def test_log_in_with_the_swagger_form_and_every_service_accepts_the_token(
    api: httpx.Client, fresh_email: str
) -> None:
    registered = api.post(
        "/api/v1/auth/register", json={"email": fresh_email, "password": PASSWORD}
    )
    # Exactly what Swagger's Authorize dialog posts: the OAuth2 password form.
    login = api.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": fresh_email, "password": PASSWORD, "scope": ""},
    )
    assert login.status_code == 200
    tokens = login.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] > 0
    access, refresh = claims(tokens["access_token"]), claims(tokens["refresh_token"])
    assert access["sub"] == registered.json()["id"] and access["roles"] == ["user"]
    assert access["type"] == "access" and refresh["type"] == "refresh"
    assert access["sid"] == refresh["sid"]

    assert statuses(api, tokens["access_token"]) == {200}
    me = api.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.json()["email"] == fresh_email


def test_a_wrong_password_and_an_unknown_email_look_the_same(
    api: httpx.Client, new_user: User
) -> None:
    wrong_password = api.post(
        "/api/v1/auth/token", data={"username": new_user.email, "password": "not the password"}
    )
    unknown_email = api.post(
        "/api/v1/auth/token", data={"username": "nobody-" + new_user.email, "password": PASSWORD}
    )
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()


def test_a_missing_or_mistyped_token_is_401_everywhere(api: httpx.Client, new_user: User) -> None:
    for path in PROTECTED:
        missing = api.get(path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == "Bearer"
    # A refresh token is no access token.
    assert statuses(api, new_user.refresh_token) == {401}
    assert statuses(api, new_user.access_token + "x") == {401}


def test_refresh_rotates_the_pair_and_a_replayed_refresh_token_ends_the_session(
    api: httpx.Client, new_user: User
) -> None:
    refreshed = api.post("/api/v1/auth/refresh", json={"refresh_token": new_user.refresh_token})
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["refresh_token"] != new_user.refresh_token
    assert statuses(api, new["access_token"]) == {200}
    # An access token is no refresh token.
    wrong_type = api.post("/api/v1/auth/refresh", json={"refresh_token": new["access_token"]})
    assert wrong_type.status_code == 401

    # The spent token again: reuse, as if it had been stolen. The whole session ends.
    replayed = api.post("/api/v1/auth/refresh", json={"refresh_token": new_user.refresh_token})
    assert replayed.status_code == 401
    assert statuses(api, new["access_token"]) == {401}
    after = api.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert after.status_code == 401


def test_of_two_concurrent_refreshes_one_wins_and_the_other_counts_as_reuse(
    api: httpx.Client, new_user: User
) -> None:
    def refresh() -> httpx.Response:
        return api.post("/api/v1/auth/refresh", json={"refresh_token": new_user.refresh_token})

    with ThreadPoolExecutor(max_workers=2) as pool:
        racing = [pool.submit(refresh), pool.submit(refresh)]
        winner, loser = sorted((r.result() for r in racing), key=lambda r: r.status_code)
    assert (winner.status_code, loser.status_code) == (200, 401)
    # The loser presented a spent token: reuse, so the winner's new pair dies with the session.
    assert statuses(api, winner.json()["access_token"]) == {401}


def test_tokens_name_a_key_the_jwks_publishes_without_its_private_half(
    api: httpx.Client, new_user: User
) -> None:
    jwks = api.get("/api/v1/auth/.well-known/jwks.json")
    assert jwks.status_code == 200
    keys = {key["kid"]: key for key in jwks.json()["keys"]}
    header = segment(new_user.access_token, 0)
    assert header["alg"] in ("RS256", "EdDSA") and header["kid"] in keys
    private_members = {"d", "p", "q", "dp", "dq", "qi"}
    assert all(not private_members & key.keys() for key in keys.values())


def test_logout_ends_this_session_everywhere_and_leaves_the_others(
    api: httpx.Client, new_user: User, log_in: LogIn
) -> None:
    elsewhere = log_in(new_user.email, PASSWORD)
    logout = api.post(
        "/api/v1/auth/logout",
        headers=new_user.auth,
        json={"refresh_token": new_user.refresh_token},
    )
    assert logout.status_code == 204
    # The very same token, now refused by services that never call the auth service.
    assert statuses(api, new_user.access_token) == {401}
    refresh = api.post("/api/v1/auth/refresh", json={"refresh_token": new_user.refresh_token})
    assert refresh.status_code == 401
    assert statuses(api, elsewhere["access_token"]) == {200}


def test_logout_all_ends_every_session_and_a_new_login_works(
    api: httpx.Client, new_user: User, log_in: LogIn
) -> None:
    elsewhere = log_in(new_user.email, PASSWORD)
    assert api.post("/api/v1/auth/logout-all", headers=new_user.auth).status_code == 204
    for access, refresh in [
        (new_user.access_token, new_user.refresh_token),
        (elsewhere["access_token"], elsewhere["refresh_token"]),
    ]:
        assert statuses(api, access) == {401}
        assert api.post("/api/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 401
    # Issued after the logout-all, even within the same second: valid.
    assert statuses(api, log_in(new_user.email, PASSWORD)["access_token"]) == {200}


def test_sessions_are_listed_and_one_can_be_ended_from_another(
    api: httpx.Client, new_user: User, other_user: User, log_in: LogIn
) -> None:
    phone = log_in(new_user.email, PASSWORD)
    listed = api.get("/api/v1/auth/sessions", headers=new_user.auth)
    assert listed.status_code == 200
    sessions = listed.json()["items"]
    assert len(sessions) == 2
    [current] = [s for s in sessions if s["current"]]
    [other] = [s for s in sessions if not s["current"]]
    assert current["sid"] == claims(new_user.access_token)["sid"]
    assert other["sid"] == claims(phone["access_token"])["sid"]
    assert {"created_at", "last_used_at", "user_agent", "ip"} <= current.keys()

    # Someone else's session is not found, and goes on.
    foreign = api.delete(f"/api/v1/auth/sessions/{other['sid']}", headers=other_user.auth)
    assert foreign.status_code == 404
    assert statuses(api, phone["access_token"]) == {200}

    ended = api.delete(f"/api/v1/auth/sessions/{other['sid']}", headers=new_user.auth)
    assert ended.status_code == 204
    assert statuses(api, phone["access_token"]) == {401}
    refresh = api.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refresh.status_code == 401
    remaining = api.get("/api/v1/auth/sessions", headers=new_user.auth).json()["items"]
    assert [s["sid"] for s in remaining] == [current["sid"]]


def test_a_session_records_the_real_client_address_not_a_spoofed_one(
    api: httpx.Client, new_user: User
) -> None:
    spoofed = api.post(
        "/api/v1/auth/token",
        data={"username": new_user.email, "password": PASSWORD},
        headers={"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "Forwarded": "for=6.6.6.6"},
    ).json()
    sessions = api.get("/api/v1/auth/sessions", headers=bearer(spoofed["access_token"])).json()
    addresses = {s["ip"] for s in sessions["items"]}
    # Both logins came from this client: one address, whatever the headers claimed.
    assert len(addresses) == 1 and "6.6.6.6" not in addresses
