import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from servicekit_testing import TEST_PASSWORD as PASSWORD
from servicekit_testing import bearer

URL = "/api/v1/auth/token"


async def test_login_returns_a_bearer_pair(client: httpx.AsyncClient, register: Any) -> None:
    account = await register("carol@example.com")
    response = await client.post(URL, data={"username": "Carol@Example.com", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    me = await client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == account["id"]


async def test_unknown_email_and_wrong_password_answer_identically(
    client: httpx.AsyncClient, register: Any
) -> None:
    await register("dave@example.com")
    wrong_password = await client.post(
        URL, data={"username": "dave@example.com", "password": "x" * 9}
    )
    unknown = await client.post(URL, data={"username": "nobody@example.com", "password": "x" * 9})
    assert wrong_password.status_code == unknown.status_code == 401
    assert (
        wrong_password.json()
        == unknown.json()
        == {
            "detail": "Incorrect email or password",
            "error": "invalid_grant",
            "error_description": "Incorrect email or password",
        }
    )
    assert wrong_password.headers["www-authenticate"] == unknown.headers["www-authenticate"]


async def test_unknown_email_still_costs_a_password_hash(
    client: httpx.AsyncClient, register: Any
) -> None:
    await register("erin@example.com")
    timings = {}
    for username in ("erin@example.com", "ghost@example.com"):
        started = time.perf_counter()
        await client.post(URL, data={"username": username, "password": "wrong password"})
        timings[username] = time.perf_counter() - started
    # Not a benchmark: only that the unknown email did not skip hashing (a 10x gap would).
    assert timings["ghost@example.com"] > timings["erin@example.com"] / 5


async def test_repeated_failures_are_429_with_retry_after(
    client: httpx.AsyncClient, register: Any
) -> None:
    await register("frank@example.com")
    for _ in range(5):
        failed = await client.post(
            URL, data={"username": "frank@example.com", "password": "nope nope"}
        )
        assert failed.status_code == 401
    locked = await client.post(URL, data={"username": "frank@example.com", "password": PASSWORD})
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= 900
    assert locked.json()["detail"]


async def test_guesses_sent_together_get_no_more_tries_than_guesses_sent_one_by_one(
    client: httpx.AsyncClient, register: Any
) -> None:
    """The throttle counts an attempt before its password is checked: twenty guesses in
    flight at once cannot all pass a check made before the first of them failed."""
    await register("hugo@example.com")
    guesses = [{"username": "hugo@example.com", "password": f"guess {n:02}"} for n in range(20)]
    answers = await asyncio.gather(*(client.post(URL, data=guess) for guess in guesses))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 5 + [429] * 15  # LOGIN_MAX_FAILURES_PER_ACCOUNT
    right = await client.post(URL, data={"username": "hugo@example.com", "password": PASSWORD})
    assert right.status_code == 429


async def test_failures_from_one_address_throttle_every_account_it_tries(
    client: httpx.AsyncClient,
) -> None:
    for attempt in range(20):
        answer = await client.post(
            URL, data={"username": f"u{attempt}@example.com", "password": "n" * 9}
        )
        assert answer.status_code == 401
    blocked = await client.post(URL, data={"username": "other@example.com", "password": "n" * 9})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0


async def test_deactivated_account_cannot_log_in(
    client: httpx.AsyncClient, register: Any, admin: dict
) -> None:
    account = await register("gina@example.com")
    patched = await client.patch(
        f"/api/v1/auth/accounts/{account['id']}",
        json={"is_active": False},
        headers=bearer(admin["access_token"]),
    )
    assert patched.status_code == 200
    response = await client.post(URL, data={"username": "gina@example.com", "password": PASSWORD})
    assert response.status_code == 401


async def test_login_form_requires_both_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, data={"username": "x@example.com"})
    assert response.status_code == 422


CHANGES_WHILE_LOGGING_IN = {
    "credential change": "UPDATE account SET credentials_version = credentials_version + 1"
    " WHERE id = :id",
    "deletion": "DELETE FROM account WHERE id = :id",
}


@pytest.mark.parametrize("change", CHANGES_WHILE_LOGGING_IN.values(), ids=CHANGES_WHILE_LOGGING_IN)
async def test_a_login_verified_before_a_change_commits_mints_nothing_after_it(
    client: httpx.AsyncClient, app: FastAPI, register: Any, change: str
) -> None:
    """The login has checked the password and waits for the account's lock, which the
    change holds; once the change commits, the login answers 401 (never 500) and no
    session is left behind."""
    account = await register("ivy@example.com")
    engine = app.state.database.engine
    async with engine.connect() as changer:
        await changer.execute(
            text("SELECT 1 FROM account WHERE id = :id FOR UPDATE"), {"id": account["id"]}
        )
        login = asyncio.create_task(
            client.post(URL, data={"username": "ivy@example.com", "password": PASSWORD})
        )
        await _until_a_query_waits_for_a_lock(engine)
        await changer.execute(text(change), {"id": account["id"]})
        await changer.commit()
    response = await login
    assert response.status_code == 401
    assert response.json()["detail"] == "Incorrect email or password"
    async with engine.connect() as connection:
        sessions = await connection.execute(
            text("SELECT count(*) FROM login_session WHERE user_id = :id"), {"id": account["id"]}
        )
        assert sessions.scalar_one() == 0


async def _until_a_query_waits_for_a_lock(engine: Any) -> None:
    for _ in range(200):
        async with engine.connect() as connection:
            waiting = await connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            if waiting.scalar_one():
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the login never waited for the account's lock")
