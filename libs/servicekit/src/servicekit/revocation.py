"""Token revocation in Redis: written by the auth service, read by every verifier.

Three facts, each one key, all read with a single MGET per request:
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

from uuid import UUID

from redis.asyncio import Redis

_PREFIX = "revoked"
#: Present while Redis holds every revocation still in force.
RESTORED_KEY = f"{_PREFIX}:restored"


class RevocationStateLost(Exception):
    """Redis answered, but without the revocations: nothing can be accepted until restored."""


def session_key(session_id: UUID | str) -> str:
    return f"{_PREFIX}:sid:{session_id}"


def token_key(token_id: str) -> str:
    return f"{_PREFIX}:jti:{token_id}"


def not_before_key(user_id: UUID | str) -> str:
    return f"{_PREFIX}:nvb:{user_id}"


async def is_revoked(
    redis: Redis, *, user_id: UUID | str, session_id: UUID | str, token_id: str, issued_at: float
) -> bool:
    """One round trip. Raises redis errors: a verifier that cannot ask must refuse (503)."""
    session, token, not_before, restored = await redis.mget(
        session_key(session_id), token_key(token_id), not_before_key(user_id), RESTORED_KEY
    )
    if restored is None:
        raise RevocationStateLost
    if session is not None or token is not None:
        return True
    return not_before is not None and issued_at <= float(not_before)


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
