"""The platform driven by an OAuth 2.0 client library written by others (Authlib), through the
gateway: the password grant, calls to every service with the bearer token it keeps, refresh
through the library (RFC 6749 §6), and failures the library reports as OAuth errors (§5.2)."""

import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from e2e import PASSWORD, SERVICES, User, from_address

with warnings.catch_warnings():
    # Authlib prefers the `httpx2` fork and warns when it falls back to httpx, which we use.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

TOKEN_URL = "/api/v1/auth/token"


@pytest.fixture
def oauth(gateway_url: str, client_address: str | None) -> Iterator[OAuth2Client]:
    """A public client (no secret), as a browser or a CLI would be."""
    with OAuth2Client(
        client_id="e2e-client",
        token_endpoint_auth_method="none",
        token_endpoint=f"{gateway_url}{TOKEN_URL}",
        base_url=gateway_url,
        **from_address(client_address),
        timeout=10.0,
    ) as client:
        yield client


def _own_data(client: OAuth2Client) -> dict[str, Any]:
    """One authenticated call per service, with the token the library holds."""
    answers = {
        "auth": client.get("/api/v1/auth/me"),
        "users": client.get("/api/v1/users/me"),
        "items": client.post("/api/v1/items/", json={"title": "Bought with OAuth"}),
        "notifications": client.get("/api/v1/notifications/"),
    }
    assert set(answers) == set(SERVICES)
    for service, answer in answers.items():
        assert answer.status_code in (200, 201), (service, answer.text)
    return {service: answer.json() for service, answer in answers.items()}


def test_the_password_grant_logs_in_and_every_service_accepts_the_token(
    oauth: OAuth2Client, new_user: User
) -> None:
    token = oauth.fetch_token(TOKEN_URL, username=new_user.email, password=PASSWORD)
    assert token["token_type"] == "bearer"
    assert token["expires_at"] > time.time()
    answers = _own_data(oauth)
    assert answers["auth"]["id"] == new_user.id
    assert answers["users"]["id"] == new_user.id
    assert answers["items"]["owner_id"] == new_user.id


def test_the_library_refreshes_with_the_refresh_grant_and_rotation_holds(
    oauth: OAuth2Client, new_user: User
) -> None:
    first = dict(oauth.fetch_token(TOKEN_URL, username=new_user.email, password=PASSWORD))
    second = oauth.refresh_token(TOKEN_URL)
    assert second["refresh_token"] != first["refresh_token"]
    assert oauth.get("/api/v1/users/me").status_code == 200

    # The library refreshes by itself once its token has expired (here: made to look so).
    refreshed: list[dict[str, Any]] = []
    oauth.update_token = lambda token, **_: refreshed.append(dict(token))
    oauth.token["expires_at"] = int(time.time()) - 1
    assert oauth.get("/api/v1/items/").status_code == 200
    assert len(refreshed) == 1
    assert refreshed[0]["refresh_token"] not in (first["refresh_token"], second["refresh_token"])

    # The spent first refresh token is reuse: an OAuth error, and the session is over.
    with pytest.raises(OAuthError) as reuse:
        oauth.refresh_token(TOKEN_URL, refresh_token=first["refresh_token"])
    assert reuse.value.error == "invalid_grant"
    assert oauth.get("/api/v1/auth/me").status_code == 401


def test_a_wrong_password_is_an_oauth_error_not_a_token(
    oauth: OAuth2Client, new_user: User
) -> None:
    with pytest.raises(OAuthError) as failed:
        oauth.fetch_token(TOKEN_URL, username=new_user.email, password="not the password")
    assert failed.value.error == "invalid_grant"
    assert failed.value.description == "Incorrect email or password"
    assert not oauth.token


def test_an_unsupported_grant_is_named_by_its_oauth_code(oauth: OAuth2Client) -> None:
    with pytest.raises(OAuthError) as failed:
        oauth.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert failed.value.error == "unsupported_grant_type"
