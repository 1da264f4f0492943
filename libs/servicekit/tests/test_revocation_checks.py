"""Revocation checks against a real Redis: concurrent checks share a round trip, none is cached."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from devstack.servers import RedisServer
from servicekit import revocation
from servicekit.redis import create_redis
from servicekit.revocation import RevocationChecks, RevocationStateLost, RevocationUnavailable


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = create_redis(redis_server.url, timeout=1.0)
    await revocation.mark_restored(client)
    yield client
    await client.aclose()


def _token() -> dict[str, Any]:
    return {
        "user_id": uuid.uuid4(),
        "session_id": uuid.uuid4(),
        "token_id": uuid.uuid4().hex,
        "issued_at": time.time(),
    }


async def _mget_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


async def test_concurrent_checks_share_one_mget_and_each_gets_its_own_answer(
    redis: Redis,
) -> None:
    checks = RevocationChecks(redis)
    tokens = [_token() for _ in range(30)]
    revoked_session, revoked_jti, logged_out_user = tokens[3], tokens[11], tokens[20]
    await revocation.revoke_sessions(redis, [revoked_session["session_id"]], ttl_seconds=60)
    await redis.set(revocation.token_key(revoked_jti["token_id"]), "1", ex=60)
    await revocation.revoke_user_tokens_issued_before(
        redis,
        logged_out_user["user_id"],
        timestamp=time.time(),
        ttl_seconds=60,
    )
    before = await _mget_calls(redis)

    answers = await asyncio.gather(*(checks.is_revoked(**token) for token in tokens))

    assert await _mget_calls(redis) - before == 1
    assert [n for n, revoked in enumerate(answers) if revoked] == [3, 11, 20]


async def test_a_revocation_counts_for_the_very_next_check(redis: Redis) -> None:
    checks = RevocationChecks(redis)
    token = _token()
    assert await checks.is_revoked(**token) is False

    await revocation.revoke_sessions(redis, [token["session_id"]], ttl_seconds=60)

    assert await checks.is_revoked(**token) is True


async def test_a_token_issued_after_logout_all_is_accepted(redis: Redis) -> None:
    checks = RevocationChecks(redis)
    token = _token()
    await revocation.revoke_user_tokens_issued_before(
        redis,
        token["user_id"],
        timestamp=token["issued_at"] - 0.001,
        ttl_seconds=60,
    )
    assert await checks.is_revoked(**token) is False


async def test_every_waiting_check_fails_when_redis_cannot_answer(
    redis: Redis, redis_server: RedisServer
) -> None:
    checks = RevocationChecks(redis)
    redis_server.stop()
    try:
        results = await asyncio.gather(
            *(checks.is_revoked(**_token()) for _ in range(5)),
            return_exceptions=True,
        )
    finally:
        redis_server.start()
    assert all(isinstance(result, RevocationUnavailable) for result in results)
    await revocation.mark_restored(redis)  # a restarted throwaway Redis holds nothing
    assert await checks.is_revoked(**_token()) is False


async def test_nothing_is_accepted_while_revocations_are_not_restored(redis: Redis) -> None:
    checks = RevocationChecks(redis)
    await redis.delete(revocation.RESTORED_KEY)
    try:
        results = await asyncio.gather(
            *(checks.is_revoked(**_token()) for _ in range(3)),
            return_exceptions=True,
        )
    finally:
        await revocation.mark_restored(redis)
    assert all(isinstance(result, RevocationStateLost) for result in results)


async def test_a_cancelled_check_does_not_disturb_the_others(redis: Redis) -> None:
    checks = RevocationChecks(redis)
    revoked = _token()
    await revocation.revoke_sessions(redis, [revoked["session_id"]], ttl_seconds=60)
    abandoned = asyncio.create_task(checks.is_revoked(**_token()))
    kept = asyncio.create_task(checks.is_revoked(**revoked))
    await asyncio.sleep(0)  # both queued
    abandoned.cancel()

    assert await kept is True
    with pytest.raises(asyncio.CancelledError):
        await abandoned
