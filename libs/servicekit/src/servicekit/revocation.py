"""Token revocation in Redis: written by the auth service, read by every verifier.

Three facts, each one key, all read with a single MGET per request (or per batch of
concurrent requests, see RevocationChecks):
- a revoked login session (`sid`): logout, ending a session, refresh-token reuse;
- a revoked token (`jti`);
- a per-user "not valid before" time: logout-all, password change or reset,
  deactivation, deletion. Kept as a float so a token issued later in the same
  second is still accepted.
Each key expires when the longest token it could cover would have expired anyway.

Redis is the fast copy, not the only one: the auth service records every revocation in
its database too, and writes RESTORED_KEY once Redis holds them all. A Redis that lost
its data (restarted without persistence, flushed) lacks that key, and verifiers refuse
every token (503) until the auth service has put the revocations back: a revoked token
is never accepted, not even once.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

from servicekit.redis import RedisPoolExhausted

_PREFIX = "revoked"
#: Present while Redis holds every revocation still in force.
RESTORED_KEY = f"{_PREFIX}:restored"


class RevocationStateLost(Exception):
    """Redis answered, but without the revocations: nothing can be accepted until restored."""


class RevocationUnavailable(Exception):
    """Redis did not answer: a verifier that cannot ask must refuse (503)."""


def session_key(session_id: UUID | str) -> str:
    return f"{_PREFIX}:sid:{session_id}"


def token_key(token_id: str) -> str:
    return f"{_PREFIX}:jti:{token_id}"


def not_before_key(user_id: UUID | str) -> str:
    return f"{_PREFIX}:nvb:{user_id}"


def _revoked(values: Sequence[bytes | str | None], issued_at: float) -> bool:
    session, token, not_before = values
    if session is not None or token is not None:
        return True
    return not_before is not None and issued_at <= float(not_before)


@dataclass(slots=True)
class _Check:
    keys: tuple[str, str, str]
    issued_at: float
    answer: asyncio.Future[bool]


class RevocationChecks:
    """Asks Redis whether tokens are revoked: one round trip per request, shared under load.

    Checks made while the event loop is busy are sent together as one MGET when it next
    gets a turn (pipelining, as ioredis's auto-pipelining does), so a busy service pays
    for one Redis command per batch rather than per request. Each answer still comes from
    Redis after its request arrived: nothing is cached, and a revocation counts at once.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._queued: list[_Check] = []
        self._in_flight: set[asyncio.Task[None]] = set()

    async def is_revoked(
        self, *, user_id: UUID | str, session_id: UUID | str, token_id: str, issued_at: float
    ) -> bool:
        """Raises RevocationUnavailable (Redis cannot answer) or RevocationStateLost."""
        loop = asyncio.get_running_loop()
        if not self._queued:
            loop.call_soon(self._send_queued)
        keys = (session_key(session_id), token_key(token_id), not_before_key(user_id))
        check = _Check(keys, issued_at, loop.create_future())
        self._queued.append(check)
        return await check.answer

    def _send_queued(self) -> None:
        batch, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._answer(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _answer(self, batch: list[_Check]) -> None:
        keys = [RESTORED_KEY, *(key for check in batch for key in check.keys)]
        try:
            values = await self.redis.mget(keys)
        except RedisPoolExhausted as exc:  # Redis is fine, this process is full: say so
            for check in batch:
                if not check.answer.done():
                    check.answer.set_exception(exc)
            return
        except (RedisError, OSError) as exc:
            for check in batch:
                if not check.answer.done():
                    check.answer.set_exception(RevocationUnavailable(str(exc)))
            return
        except BaseException:
            for check in batch:
                check.answer.cancel()
            raise
        restored = values[0]
        for n, check in enumerate(batch):
            if check.answer.done():  # its request went away meanwhile
                continue
            if restored is None:
                check.answer.set_exception(RevocationStateLost())
            else:
                check.answer.set_result(_revoked(values[1 + 3 * n : 4 + 3 * n], check.issued_at))


async def revoke_sessions(redis: Redis, session_ids: list[UUID], *, ttl_seconds: int) -> None:
    if session_ids:
        async with redis.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                pipe.set(session_key(session_id), "1", ex=ttl_seconds)
            await pipe.execute()


async def revoke_user_tokens_issued_before(
    redis: Redis, user_id: UUID, *, timestamp: float, ttl_seconds: int
) -> None:
    """Every token of the user issued at or before `timestamp` stops working."""
    await redis.set(not_before_key(user_id), repr(timestamp), ex=ttl_seconds)


async def mark_restored(redis: Redis) -> None:
    await redis.set(RESTORED_KEY, "1")
