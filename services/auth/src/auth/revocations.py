"""Revocations kept in the database as well as in Redis, and Redis rebuilt from them.

Redis answers every verifier in one round trip; the database makes that copy
recoverable. Each revocation is written to both, in the transaction of the change it
belongs to. When Redis comes back without its data, the RESTORED key is missing, every
verifier answers 503, and this module puts the revocations back, then the key.
"""

import asyncio
import logging
import math
import time
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.models import Revocation, RevocationKind
from auth.settings import settings
from servicekit import revocation
from servicekit.background import sleep_unless_stopped
from servicekit.timestamps import utcnow

logger = logging.getLogger(__name__)


def _expiry() -> datetime:
    """A revocation matters until the longest token it covers would have expired."""
    return utcnow() + timedelta(seconds=settings.REFRESH_TOKEN_TTL)


async def revoke_sessions(
    *, session: AsyncSession, redis: Redis, session_ids: list[uuid.UUID]
) -> None:
    await revocation.revoke_sessions(redis, session_ids, ttl_seconds=settings.REFRESH_TOKEN_TTL)
    expires_at = _expiry()
    session.add_all(
        Revocation(kind=RevocationKind.SESSION.value, subject=sid, expires_at=expires_at)
        for sid in session_ids
    )


async def revoke_user_tokens(*, session: AsyncSession, redis: Redis, user_id: uuid.UUID) -> None:
    now = time.time()
    await revocation.revoke_user_tokens_issued_before(
        redis, user_id, timestamp=now, ttl_seconds=settings.REFRESH_TOKEN_TTL
    )
    session.add(
        Revocation(
            kind=RevocationKind.USER.value, subject=user_id, not_before=now, expires_at=_expiry()
        )
    )


async def restore(*, session: AsyncSession, redis: Redis) -> int:
    """Write every revocation still in force back to Redis, then mark Redis complete."""
    now = utcnow()
    await session.exec(sa.delete(Revocation).where(col(Revocation.expires_at) <= now))
    await session.commit()
    rows = (await session.exec(select(Revocation))).all()
    latest_not_before: dict[uuid.UUID, tuple[float, int]] = {}
    async with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            ttl = max(1, math.ceil((row.expires_at - now).total_seconds()))
            if row.kind == RevocationKind.SESSION.value:
                pipe.set(revocation.session_key(row.subject), "1", ex=ttl)
            elif row.not_before is not None:
                previous = latest_not_before.get(row.subject)
                if previous is None or row.not_before > previous[0]:
                    latest_not_before[row.subject] = (row.not_before, ttl)
        for user_id, (not_before, ttl) in latest_not_before.items():
            pipe.set(revocation.not_before_key(user_id), repr(not_before), ex=ttl)
        await pipe.execute()
    await revocation.mark_restored(redis)
    return len(rows)


async def restore_if_lost(
    *, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis
) -> int | None:
    """Restore when Redis lacks the RESTORED key; the count restored, or None if not needed."""
    if await redis.exists(revocation.RESTORED_KEY):
        return None
    async with sessionmaker() as session:
        count = await restore(session=session, redis=redis)
    logger.warning("revocations restored to redis", extra={"revocations": count})
    return count


async def keep_restored(
    stop: asyncio.Event,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: Redis,
    interval: float = 1.0,
) -> None:
    """Watch Redis; whenever it has lost the revocations, put them back."""
    while not stop.is_set():
        try:
            await restore_if_lost(sessionmaker=sessionmaker, redis=redis)
        except Exception as exc:  # noqa: BLE001 - Redis or PostgreSQL down: try again soon
            logger.warning("revocations not restored yet", extra={"err": str(exc)})
        await sleep_unless_stopped(stop, interval)
