"""Refresh rotation with reuse detection, logout, logout-all and the session list."""

import asyncio
from typing import Any

import httpx

from servicekit_testing import bearer

REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


async def test_refresh_returns_a_new_pair_and_spends_the_old_one(
    client: httpx.AsyncClient, user: dict
) -> None:
    response = await client.post(REFRESH, json={"refresh_token": user["refresh_token"]})
    assert response.status_code == 200
    pair = response.json()
    assert pair["refresh_token"] != user["refresh_token"]
    assert pair["access_token"] != user["access_token"]
    assert (await client.get(ME, headers=bearer(pair["access_token"]))).status_code == 200


async def test_reusing_a_spent_refresh_token_ends_the_whole_session(
    client: httpx.AsyncClient, user: dict
) -> None:
    rotated = (await client.post(REFRESH, json={"refresh_token": user["refresh_token"]})).json()
    reuse = await client.post(REFRESH, json={"refresh_token": user["refresh_token"]})
    assert reuse.status_code == 401
    assert "already used" in reuse.json()["detail"]
    # Every token of the session is now dead: the rotated pair and the original access token.
    assert (await client.get(ME, headers=bearer(rotated["access_token"]))).status_code == 401
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 401
    again = await client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]})
    assert again.status_code == 401


async def test_concurrent_refreshes_of_one_token_exactly_one_wins(
    client: httpx.AsyncClient, user: dict
) -> None:
    answers = await asyncio.gather(
        *(client.post(REFRESH, json={"refresh_token": user["refresh_token"]}) for _ in range(5))
    )
    assert sorted(answer.status_code for answer in answers) == [200, 401, 401, 401, 401]


async def test_refresh_with_garbage_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(REFRESH, json={"refresh_token": "garbage"})
    assert response.status_code == 401


async def test_refresh_without_body_is_422(client: httpx.AsyncClient) -> None:
    assert (await client.post(REFRESH)).status_code == 422


async def test_logout_kills_this_sessions_access_and_refresh_tokens(
    client: httpx.AsyncClient, user: dict, login: Any
) -> None:
    other = await login(user["account"]["email"])
    response = await client.post(
        "/api/v1/auth/logout",
        headers=bearer(user["access_token"]),
        json={"refresh_token": user["refresh_token"]},
    )
    assert response.status_code == 204
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 401
    refresh = await client.post(REFRESH, json={"refresh_token": user["refresh_token"]})
    assert refresh.status_code == 401
    # Another login of the same user is untouched.
    assert (await client.get(ME, headers=bearer(other["access_token"]))).status_code == 200


async def test_logout_without_a_body_works(client: httpx.AsyncClient, user: dict) -> None:
    response = await client.post("/api/v1/auth/logout", headers=bearer(user["access_token"]))
    assert response.status_code == 204
    refresh = await client.post(REFRESH, json={"refresh_token": user["refresh_token"]})
    assert refresh.status_code == 401


async def test_logout_all_kills_every_session_but_not_a_later_login(
    client: httpx.AsyncClient, user: dict, login: Any
) -> None:
    other = await login(user["account"]["email"])
    response = await client.post("/api/v1/auth/logout-all", headers=bearer(other["access_token"]))
    assert response.status_code == 204
    for token in (user["access_token"], other["access_token"]):
        assert (await client.get(ME, headers=bearer(token))).status_code == 401
    for token in (user["refresh_token"], other["refresh_token"]):
        assert (await client.post(REFRESH, json={"refresh_token": token})).status_code == 401
    # Within the same second: the "not valid before" keeps sub-second precision.
    fresh = await login(user["account"]["email"])
    assert (await client.get(ME, headers=bearer(fresh["access_token"]))).status_code == 200


async def test_sessions_list_own_live_sessions_and_marks_current(
    client: httpx.AsyncClient, user: dict, login: Any, register: Any
) -> None:
    await login(user["account"]["email"])
    stranger = await register()
    await login(stranger["email"])
    response = await client.get("/api/v1/auth/sessions", headers=bearer(user["access_token"]))
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2 and len(body["items"]) == 2
    assert sorted(item["current"] for item in body["items"]) == [False, True]
    assert set(body["items"][0]) == {
        "sid",
        "created_at",
        "last_used_at",
        "user_agent",
        "ip",
        "current",
    }
    assert body["items"][0]["ip"] == "203.0.113.7"


async def test_ending_a_session_revokes_its_tokens(
    client: httpx.AsyncClient, user: dict, login: Any
) -> None:
    other = await login(user["account"]["email"])
    sessions = (
        await client.get("/api/v1/auth/sessions", headers=bearer(user["access_token"]))
    ).json()
    [other_sid] = [item["sid"] for item in sessions["items"] if not item["current"]]
    response = await client.delete(
        f"/api/v1/auth/sessions/{other_sid}", headers=bearer(user["access_token"])
    )
    assert response.status_code == 204
    assert (await client.get(ME, headers=bearer(other["access_token"]))).status_code == 401
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 200
    remaining = (
        await client.get("/api/v1/auth/sessions", headers=bearer(user["access_token"]))
    ).json()
    assert remaining["total"] == 1


async def test_ending_another_users_session_is_404(
    client: httpx.AsyncClient, user: dict, register: Any, login: Any
) -> None:
    stranger = await register()
    stranger_tokens = await login(stranger["email"])
    sessions = (
        await client.get("/api/v1/auth/sessions", headers=bearer(stranger_tokens["access_token"]))
    ).json()
    sid = sessions["items"][0]["sid"]
    response = await client.delete(
        f"/api/v1/auth/sessions/{sid}", headers=bearer(user["access_token"])
    )
    assert response.status_code == 404
    still = await client.get(ME, headers=bearer(stranger_tokens["access_token"]))
    assert still.status_code == 200


async def test_ending_a_session_with_a_malformed_id_is_422(
    client: httpx.AsyncClient, user: dict
) -> None:
    response = await client.delete(
        "/api/v1/auth/sessions/nope", headers=bearer(user["access_token"])
    )
    assert response.status_code == 422
