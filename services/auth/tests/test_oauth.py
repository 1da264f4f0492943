"""The auth service as an OAuth 2.0 client library sees it: RFC 6749's refresh grant and error
codes at the token endpoint, `no-store` on tokens, RFC 6750's challenges, HTTP's read rules."""

import asyncio
from typing import Any

import httpx

from servicekit_testing import TEST_PASSWORD as PASSWORD
from servicekit_testing import bearer

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


def _refresh_grant(refresh_token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token}


def _assert_oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert body["detail"]
    assert body["error_description"]
    assert response.headers["cache-control"] == "no-store"
    return body


# ---- grant_type=refresh_token (RFC 6749 §6) -------------------------------------------------


async def test_refresh_grant_returns_a_new_pair_and_spends_the_old_one(
    client: httpx.AsyncClient, user: dict
) -> None:
    response = await client.post(TOKEN, data=_refresh_grant(user["refresh_token"]))
    assert response.status_code == 200, response.text
    pair = response.json()
    assert pair["token_type"] == "bearer"
    assert pair["refresh_token"] != user["refresh_token"]
    assert (await client.get(ME, headers=bearer(pair["access_token"]))).status_code == 200
    spent = await client.post(REFRESH, json={"refresh_token": user["refresh_token"]})
    assert spent.status_code == 401


async def test_refresh_grant_reuse_ends_the_session(client: httpx.AsyncClient, user: dict) -> None:
    rotated = (await client.post(REFRESH, json={"refresh_token": user["refresh_token"]})).json()
    reuse = await client.post(TOKEN, data=_refresh_grant(user["refresh_token"]))
    body = _assert_oauth_error(reuse, 401, "invalid_grant")
    assert "already used" in body["detail"]
    assert (await client.get(ME, headers=bearer(rotated["access_token"]))).status_code == 401
    again = await client.post(TOKEN, data=_refresh_grant(rotated["refresh_token"]))
    _assert_oauth_error(again, 401, "invalid_grant")


async def test_concurrent_refresh_grants_exactly_one_wins(
    client: httpx.AsyncClient, user: dict
) -> None:
    answers = await asyncio.gather(
        *(client.post(TOKEN, data=_refresh_grant(user["refresh_token"])) for _ in range(3)),
        *(client.post(REFRESH, json={"refresh_token": user["refresh_token"]}) for _ in range(2)),
    )
    assert sorted(answer.status_code for answer in answers) == [200, 401, 401, 401, 401]


async def test_refresh_grant_refuses_an_access_token(client: httpx.AsyncClient, user: dict) -> None:
    response = await client.post(TOKEN, data=_refresh_grant(user["access_token"]))
    body = _assert_oauth_error(response, 401, "invalid_grant")
    assert body["detail"] == "Not a refresh token"


async def test_refresh_grant_without_the_token_is_invalid_request(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(TOKEN, data={"grant_type": "refresh_token"})
    body = _assert_oauth_error(response, 422, "invalid_request")
    assert "refresh_token" in body["detail"][0]["msg"]


# ---- the token endpoint's errors (RFC 6749 §5.2) --------------------------------------------


async def test_wrong_password_is_invalid_grant(client: httpx.AsyncClient, register: Any) -> None:
    account = await register()
    response = await client.post(TOKEN, data={"username": account["email"], "password": "n" * 9})
    body = _assert_oauth_error(response, 401, "invalid_grant")
    assert body["detail"] == body["error_description"] == "Incorrect email or password"


async def test_unsupported_grant_type_is_named(client: httpx.AsyncClient) -> None:
    response = await client.post(TOKEN, data={"grant_type": "client_credentials"})
    _assert_oauth_error(response, 422, "unsupported_grant_type")


async def test_password_grant_without_password_is_invalid_request(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(TOKEN, data={"grant_type": "password", "username": "a@b.c"})
    _assert_oauth_error(response, 422, "invalid_request")


async def test_throttled_login_says_when_to_come_back(
    client: httpx.AsyncClient, register: Any
) -> None:
    account = await register()
    for _ in range(5):
        await client.post(TOKEN, data={"username": account["email"], "password": "n" * 9})
    locked = await client.post(TOKEN, data={"username": account["email"], "password": PASSWORD})
    _assert_oauth_error(locked, 429, "temporarily_unavailable")
    assert int(locked.headers["retry-after"]) > 0


async def test_json_refresh_errors_carry_the_oauth_code(client: httpx.AsyncClient) -> None:
    _assert_oauth_error(
        await client.post(REFRESH, json={"refresh_token": "garbage"}), 401, "invalid_grant"
    )
    _assert_oauth_error(await client.post(REFRESH, json={}), 422, "invalid_request")


async def test_token_answers_are_never_stored(client: httpx.AsyncClient, user: dict) -> None:
    for response in (
        await client.post(TOKEN, data=_refresh_grant(user["refresh_token"])),
        await client.post(REFRESH, json={"refresh_token": "garbage"}),
    ):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"


# ---- bearer failures (RFC 6750 §3.1) --------------------------------------------------------


async def test_token_of_a_deleted_account_is_an_invalid_token(
    client: httpx.AsyncClient, user: dict
) -> None:
    deleted = await client.request(
        "DELETE", ME, json={"password": PASSWORD}, headers=bearer(user["access_token"])
    )
    assert deleted.status_code == 204
    response = await client.get(ME, headers=bearer(user["access_token"]))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_a_user_at_the_admin_routes_gets_insufficient_scope(
    client: httpx.AsyncClient, user: dict
) -> None:
    response = await client.get("/api/v1/auth/accounts", headers=bearer(user["access_token"]))
    assert response.status_code == 403
    assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')


# ---- caching, conditional GET, HEAD and OPTIONS ---------------------------------------------


async def test_own_account_is_private_and_answers_if_none_match(
    client: httpx.AsyncClient, user: dict
) -> None:
    me = await client.get(ME, headers=bearer(user["access_token"]))
    assert me.headers["cache-control"] == "private, no-cache"
    again = await client.get(
        ME, headers={**bearer(user["access_token"]), "If-None-Match": me.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == me.headers["etag"]
    assert again.headers["cache-control"] == "private, no-cache"


async def test_jwks_is_public_for_five_minutes_and_revalidates(client: httpx.AsyncClient) -> None:
    jwks = await client.get("/api/v1/auth/.well-known/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=300"
    again = await client.get(
        "/api/v1/auth/.well-known/jwks.json", headers={"If-None-Match": jwks.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.headers["cache-control"] == "public, max-age=300"
    head = await client.head("/api/v1/auth/.well-known/jwks.json")
    assert head.status_code == 200
    assert head.content == b""


async def test_options_and_405_name_every_method_of_me(client: httpx.AsyncClient) -> None:
    options = await client.options(ME)
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, HEAD, DELETE, OPTIONS"
    refused = await client.put(ME)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, HEAD, DELETE, OPTIONS"
    token = await client.get(TOKEN)
    assert token.status_code == 405
    assert token.headers["allow"] == "POST, OPTIONS"
