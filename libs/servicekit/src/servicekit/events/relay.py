"""The relay: publishes the outbox to the Redis stream, then marks the rows published.

Delivery is at least once: if Redis takes an event but the commit that marks it fails,
it is published again later, and consumers drop the duplicate by its id. Several
replicas can relay at once: rows are claimed with `FOR UPDATE SKIP LOCKED`.

Published rows are kept for RETENTION. If Redis comes back without its data (restarted
without persistence, flushed, failed over to an empty replica), the stream lost events
nobody may have consumed yet: the relay notices its marker key is gone and publishes
the retained rows again. Consumers have recorded what they handled, so only what was
really lost has an effect.
"""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from servicekit.events.outbox import OutboxEvent
from servicekit.events.workers import sleep_unless_stopped

logger = logging.getLogger(__name__)

#: Published rows are kept this long for inspection, then deleted.
RETENTION = timedelta(days=7)


class OutboxRelay:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        stream: str,
        name: str,
        batch_size: int = 100,
        poll_interval: float = 0.2,
        max_stream_length: int = 1_000_000,
    ) -> None:
        self.sessionmaker, self.redis, self.stream = sessionmaker, redis, stream
        self.batch_size, self.poll_interval = batch_size, poll_interval
        self.max_stream_length = max_stream_length
        self.marker = f"{stream}:relay:{name}"

    async def replay_if_redis_lost_data(self) -> int:
        """Mark retained events unpublished again when Redis no longer holds our marker."""
        if await self.redis.exists(self.marker):
            return 0
        async with self.sessionmaker() as session:
            replayed = await session.exec(
                sa.update(OutboxEvent)
                .where(col(OutboxEvent.published_at) > datetime.now(UTC) - RETENTION)
                .values(published_at=None)
                .returning(col(OutboxEvent.id))
            )
            count = len(replayed.all())
            await session.commit()
        await self.redis.set(self.marker, datetime.now(UTC).isoformat())
        if count:
            logger.warning("redis lost the event stream; replaying", extra={"events": count})
        return count

    async def publish_batch(self) -> int:
        """Publish up to one batch of pending events, oldest first; return how many."""
        async with self.sessionmaker() as session:
            pending = await session.exec(
                select(OutboxEvent)
                .where(col(OutboxEvent.published_at).is_(None))
                .order_by(col(OutboxEvent.occurred_at))
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
            events = list(pending.all())
            if not events:
                return 0
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.xadd(
                        self.stream,
                        {"envelope": event.envelope().model_dump_json()},
                        maxlen=self.max_stream_length,
                        approximate=True,
                    )
                await pipe.execute()
            await session.exec(
                sa.update(OutboxEvent)
                .where(col(OutboxEvent.id).in_([event.id for event in events]))
                .values(published_at=datetime.now(UTC))
            )
            await session.commit()
            return len(events)

    async def prune(self) -> None:
        async with self.sessionmaker() as session:
            await session.exec(
                sa.delete(OutboxEvent).where(
                    col(OutboxEvent.published_at) < datetime.now(UTC) - RETENTION
                )
            )
            await session.commit()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; an outage of Redis or PostgreSQL only delays events."""
        backoff = self.poll_interval
        loops = 0
        while not stop.is_set():
            try:
                await self.replay_if_redis_lost_data()
                published = await self.publish_batch()
                if loops % 3000 == 0:
                    await self.prune()
                loops += 1
                backoff = self.poll_interval
                if published == self.batch_size:
                    continue  # more is waiting: no pause
            except Exception as exc:  # noqa: BLE001 - any failure: keep the rows, retry later
                logger.warning("outbox relay failed; retrying", extra={"err": str(exc)})
                backoff = min(backoff * 2, 5.0)
            await sleep_unless_stopped(stop, backoff)
