"""Auth through the gateway: register, log in with the Swagger form, refresh, log out."""

import uuid

import httpx

from servicekit.testing import TEST_PASSWORD, bearer


def test_register_login_me_refresh_logout_through_the_gateway(api: httpx.Client) -> None:
    email = f"journey-{uuid.uuid4().hex[:10]}@example.com"
    registered = api.post("/api/v1/auth/register", json={"email": email, "password": TEST_PASSWORD})
    assert registered.status_code == 201
    # Exactly what Swagger's Authorize dialog posts: the OAuth2 password form.
    login = api.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": email, "password": TEST_PASSWORD, "scope": ""},
    )
    assert login.status_code == 200
    tokens = login.json()
    me = api.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200 and me.json()["email"] == email
    refreshed = api.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    new = refreshed.json()
    logout = api.post(
        "/api/v1/auth/logout",
        headers=bearer(new["access_token"]),
        json={"refresh_token": new["refresh_token"]},
    )
    assert logout.status_code == 204
    rejected = api.get("/api/v1/auth/me", headers=bearer(new["access_token"]))
    assert rejected.status_code == 401
    assert rejected.headers["www-authenticate"] == "Bearer"


def test_login_sessions_record_the_real_client_address_not_a_spoofed_one(
    api: httpx.Client,
) -> None:
    email = f"spoof-{uuid.uuid4().hex[:10]}@example.com"
    api.post("/api/v1/auth/register", json={"email": email, "password": TEST_PASSWORD})
    tokens = api.post(
        "/api/v1/auth/token",
        data={"username": email, "password": TEST_PASSWORD},
        headers={"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"},
    ).json()
    sessions = api.get("/api/v1/auth/sessions", headers=bearer(tokens["access_token"])).json()
    assert sessions["items"][0]["ip"] == "127.0.0.1"
