"""HTTP and OAuth to the letter, through the gateway, one test per rule (RFC 9110/9111,
RFC 6749 §5, RFC 6750 §3): the gateway strips or rewrites none of these headers."""

import uuid

import httpx
import pytest
from e2e import SERVICES, User, bearer

ALLOWED_ORIGIN = "http://localhost:5173"
ADMIN_ONLY = {
    "auth": "/api/v1/auth/accounts",
    "users": "/api/v1/users/",
    "items": "/api/v1/items/?owner_id=00000000-0000-0000-0000-000000000001",
    "notifications": "/api/v1/notifications/deliveries",
}
OWN_DATA = {
    "auth": "/api/v1/auth/me",
    "users": "/api/v1/users/me",
    "items": "/api/v1/items/",
    "notifications": "/api/v1/notifications/",
}


def test_if_none_match_with_the_current_etag_is_304_everywhere_there_is_one(
    api: httpx.Client, new_user: User
) -> None:
    item = api.post("/api/v1/items/", json={"title": "Lamp"}, headers=new_user.auth)
    item_url = item.headers["location"]
    for url in [item_url, *OWN_DATA.values(), "/api/v1/auth/.well-known/jwks.json"]:
        first = api.get(url, headers=new_user.auth)
        etag = first.headers["etag"]
        again = api.get(url, headers={**new_user.auth, "If-None-Match": etag})
        assert again.status_code == 304, url
        assert again.content == b"", url
        assert again.headers["etag"] == etag, url
        assert again.headers["cache-control"] == first.headers["cache-control"], url

    api.patch(item_url, json={"title": "Desk lamp"}, headers=new_user.auth)
    changed = api.get(item_url, headers={**new_user.auth, "If-None-Match": item.headers["etag"]})
    assert changed.status_code == 200
    assert changed.json()["title"] == "Desk lamp"


def test_head_is_answered_wherever_get_is(api: httpx.Client, new_user: User) -> None:
    for service in SERVICES:
        head = api.head(f"/api/v1/{service}/health")
        assert head.status_code == 200, service
        assert head.content == b""
    for url in OWN_DATA.values():
        get = api.get(url, headers=new_user.auth)
        head = api.head(url, headers=new_user.auth)
        assert head.status_code == 200, url
        assert head.content == b""
        assert head.headers["etag"] == get.headers["etag"], url


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/v1/items/", "GET, HEAD, POST, OPTIONS"),
        ("POST", f"/api/v1/items/{uuid.UUID(int=7)}", "GET, HEAD, PUT, PATCH, DELETE, OPTIONS"),
        ("GET", "/api/v1/auth/token", "POST, OPTIONS"),
        ("DELETE", "/api/v1/users/me", "GET, HEAD, PATCH, OPTIONS"),
        ("PUT", "/api/v1/notifications/read-all", "POST, OPTIONS"),
    ],
)
def test_405_and_options_name_every_allowed_method(
    api: httpx.Client, method: str, path: str, allow: str
) -> None:
    refused = api.request(method, path)
    assert refused.status_code == 405
    assert refused.headers["allow"] == allow
    assert refused.json()["detail"]
    options = api.options(path)
    assert options.status_code == 204
    assert options.headers["allow"] == allow


def test_options_with_an_origin_is_the_gateways_cors_preflight(api: httpx.Client) -> None:
    preflight = api.options(
        "/api/v1/items/",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization,if-none-match",
        },
    )
    assert preflight.status_code == 200
    assert "allow" not in preflight.headers
    allowed = preflight.headers["access-control-allow-headers"].lower().split(",")
    assert "if-none-match" in allowed


def test_cache_control_says_what_each_answer_holds(
    api: httpx.Client, new_user: User, fresh_email: str
) -> None:
    login = api.post(
        "/api/v1/auth/token", data={"username": new_user.email, "password": new_user.password}
    )
    assert login.headers["cache-control"] == "no-store"
    assert login.headers["pragma"] == "no-cache"
    refresh = api.post(
        "/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    assert refresh.headers["cache-control"] == "no-store"
    for url in OWN_DATA.values():
        assert api.get(url, headers=new_user.auth).headers["cache-control"] == "private, no-cache"
    jwks = api.get("/api/v1/auth/.well-known/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=300"
    registered = api.post("/api/v1/auth/register", json={"email": fresh_email, "password": "x" * 9})
    assert registered.headers["cache-control"] == "no-store"
    for refused in (api.get("/api/v1/items/"), api.get("/api/v1/nowhere")):
        assert refused.headers["cache-control"] == "no-store"


def test_bearer_failures_name_their_oauth_error_in_every_service(
    api: httpx.Client, new_user: User
) -> None:
    for service, url in OWN_DATA.items():
        missing = api.get(url)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer", service
        invalid = api.get(url, headers=bearer("not.a.token"))
        assert invalid.status_code == 401
        assert invalid.headers["www-authenticate"] == (
            'Bearer error="invalid_token", error_description="Malformed token"'
        ), service
        refresh_as_access = api.get(url, headers=bearer(new_user.refresh_token))
        assert refresh_as_access.status_code == 401
        assert 'error="invalid_token"' in refresh_as_access.headers["www-authenticate"]
    for service, url in ADMIN_ONLY.items():
        refused = api.get(url, headers=new_user.auth)
        assert refused.status_code == 403, service
        assert refused.headers["www-authenticate"].startswith(
            'Bearer error="insufficient_scope"'
        ), service


def test_token_endpoint_errors_carry_the_oauth_code_beside_detail(
    api: httpx.Client, new_user: User
) -> None:
    wrong = api.post("/api/v1/auth/token", data={"username": new_user.email, "password": "x" * 9})
    assert wrong.status_code == 401
    assert wrong.json() == {
        "detail": "Incorrect email or password",
        "error": "invalid_grant",
        "error_description": "Incorrect email or password",
    }
    unsupported = api.post("/api/v1/auth/token", data={"grant_type": "client_credentials"})
    assert unsupported.status_code == 422
    assert unsupported.json()["error"] == "unsupported_grant_type"
    malformed = api.post("/api/v1/auth/refresh", json={})
    assert malformed.status_code == 422
    assert malformed.json()["error"] == "invalid_request"


def test_the_refresh_grant_rotates_and_detects_reuse_like_the_json_refresh(
    api: httpx.Client, new_user: User
) -> None:
    grant = {"grant_type": "refresh_token", "refresh_token": new_user.refresh_token}
    rotated = api.post("/api/v1/auth/token", data=grant)
    assert rotated.status_code == 200, rotated.text
    pair = rotated.json()
    assert api.get("/api/v1/items/", headers=bearer(pair["access_token"])).status_code == 200
    reuse = api.post("/api/v1/auth/refresh", json={"refresh_token": new_user.refresh_token})
    assert reuse.status_code == 401
    assert reuse.json()["error"] == "invalid_grant"
    # Reuse ended the session: the rotated pair is dead too.
    assert api.get("/api/v1/items/", headers=bearer(pair["access_token"])).status_code == 401
    again = api.post(
        "/api/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]},
    )
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_grant"


def test_cors_exposes_what_a_browser_client_needs(api: httpx.Client) -> None:
    refused = api.get("/api/v1/users/me", headers={"Origin": ALLOWED_ORIGIN})
    exposed = {
        name.strip().lower() for name in refused.headers["access-control-expose-headers"].split(",")
    }
    assert {"etag", "www-authenticate", "allow", "location", "retry-after"} <= exposed
    assert refused.headers["www-authenticate"] == "Bearer"
