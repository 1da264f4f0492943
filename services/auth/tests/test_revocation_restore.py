"""Redis losing its data never brings a revoked token back to life."""

from typing import Any

import httpx
from fastapi import FastAPI

from auth import revocations
from servicekit_testing import TEST_PASSWORD, bearer

ME = "/api/v1/auth/me"


async def _wipe_and_restore(app: FastAPI, client: httpx.AsyncClient, token: str) -> None:
    """Empty Redis: every token is refused until the revocations are back."""
    await app.state.redis.flushall()
    during = await client.get(ME, headers=bearer(token))
    assert during.status_code == 503
    assert during.json() == {"detail": "Token revocations are being restored"}
    restored = await revocations.restore_if_lost(
        sessionmaker=app.state.database.sessionmaker, redis=app.state.redis
    )
    assert restored is not None


async def test_a_logged_out_token_stays_refused_after_redis_lost_its_data(
    app: FastAPI, client: httpx.AsyncClient, user: dict[str, Any], login: Any
) -> None:
    other = await login(user["account"]["email"])
    await client.post("/api/v1/auth/logout", headers=bearer(user["access_token"]))
    await _wipe_and_restore(app, client, user["access_token"])
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 401
    assert (await client.get(ME, headers=bearer(other["access_token"]))).status_code == 200


async def test_logout_all_and_deletion_survive_redis_losing_its_data(
    app: FastAPI, client: httpx.AsyncClient, user: dict[str, Any], register: Any, login: Any
) -> None:
    await client.post("/api/v1/auth/logout-all", headers=bearer(user["access_token"]))
    doomed_account = await register()
    doomed = await login(doomed_account["email"])
    deleted = await client.request(
        "DELETE", ME, headers=bearer(doomed["access_token"]), json={"password": TEST_PASSWORD}
    )
    assert deleted.status_code == 204
    await _wipe_and_restore(app, client, user["access_token"])
    assert (await client.get(ME, headers=bearer(user["access_token"]))).status_code == 401
    assert (await client.get(ME, headers=bearer(doomed["access_token"]))).status_code == 401
    fresh = await login(user["account"]["email"])
    assert (await client.get(ME, headers=bearer(fresh["access_token"]))).status_code == 200


async def test_nothing_is_restored_while_redis_still_has_everything(app: FastAPI) -> None:
    restored = await revocations.restore_if_lost(
        sessionmaker=app.state.database.sessionmaker, redis=app.state.redis
    )
    assert restored is None
