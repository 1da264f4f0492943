"""The relay: publishes the outbox to the Redis stream, then marks the rows published.

It publishes as soon as a transaction with events commits: this process's commits call
it directly, and every replica's commits reach it through PostgreSQL NOTIFY, which it
LISTENs for on a connection of its own (opened again whenever it is lost). Polling every
`poll_interval` remains as the safety net for a notification missed while that
connection was down.

Delivery is at least once: if Redis takes an event but the commit that marks it fails,
it is published again later, and consumers drop the duplicate by its id.

Order: every replica runs a relay, and one publishes at a time. A batch is taken under a
transaction-level advisory lock (`RELAY_LOCK`) held until its rows are marked published;
a relay that finds the lock taken publishes nothing this round (the holder goes on while
rows are waiting, and every replica is woken by every commit). Within the lock, rows go
out in `seq` order, which is commit order for one aggregate (see `outbox`), and a batch
is only taken once the one before it is marked. If one aggregate's later event is
committed, so is its earlier one, and it is in the same batch or an earlier one. Two
relays publishing batches side by side (the `SKIP LOCKED` claim this replaced) let a
later batch reach the stream first. The cost is one relay's throughput, not the sum.

Published rows are kept for RETENTION. If Redis comes back without its data (restarted
without persistence, flushed, failed over to an empty replica), the stream lost events
nobody may have consumed yet: the relay notices its marker key is gone and publishes
the retained rows again. Consumers have recorded what they handled, so only what was
really lost has an effect.
"""

import asyncio
import contextlib
import logging
import time
from datetime import timedelta

import asyncpg
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from servicekit import metrics, tracing
from servicekit.background import sleep_unless_stopped
from servicekit.events.outbox import NOTIFY_CHANNEL, OutboxEvent, on_local_commit
from servicekit.timestamps import utcnow

logger = logging.getLogger(__name__)

#: Published rows are kept this long for inspection, then deleted.
RETENTION = timedelta(days=7)
#: Seconds before the first retry after a failure (Redis or PostgreSQL down); doubled up to 5.
FIRST_RETRY = 0.2
#: How often published rows older than RETENTION are deleted.
PRUNE_EVERY = 600.0
#: How often the idle LISTEN connection is checked, to find one that died without a word.
LISTEN_CHECK_EVERY = 30.0
#: The advisory lock (PostgreSQL's two int4 keys) whose holder is the publishing relay.
RELAY_LOCK = (0x72656C79, 0)  # "rely"


class OutboxRelay:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        stream: str,
        name: str,
        listen_dsn: str | None = None,
        wake_on_commit: bool = True,
        batch_size: int = 100,
        poll_interval: float = 5.0,
        max_stream_length: int = 1_000_000,
        connect_timeout: float = 5.0,
    ) -> None:
        """`listen_dsn` (a libpq URL) is where to LISTEN for other replicas' commits."""
        self.sessionmaker, self.redis, self.stream = sessionmaker, redis, stream
        self.listen_dsn, self.wake_on_commit = listen_dsn, wake_on_commit
        self.batch_size, self.poll_interval = batch_size, poll_interval
        self.max_stream_length, self.connect_timeout = max_stream_length, connect_timeout
        self.marker = f"{stream}:relay:{name}"
        #: How the LISTEN connection shows in pg_stat_activity.
        self.listener_name = f"{name} outbox listener"
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def replay_if_redis_lost_data(self) -> int:
        """Mark retained events unpublished again when Redis no longer holds our marker."""
        if await self.redis.exists(self.marker):
            return 0
        async with self.sessionmaker() as session:
            # A week of rows can take longer than a request's statement may: let it finish.
            await session.exec(sa.text("SET LOCAL statement_timeout = 0"))  # type: ignore[call-overload]
            replayed = await session.exec(
                sa.update(OutboxEvent)
                .where(col(OutboxEvent.published_at) > utcnow() - RETENTION)
                .values(published_at=None)
                .returning(col(OutboxEvent.id))
            )
            count = len(replayed.all())
            await session.commit()
        await self.redis.set(self.marker, utcnow().isoformat())
        if count:
            logger.warning("redis lost the event stream; replaying", extra={"events": count})
        return count

    async def publish_batch(self) -> int:
        """Publish up to one batch of pending events in order; return how many.

        0 also when another relay is publishing: it holds the lock and goes on.
        """
        async with self.sessionmaker() as session:
            # A holder that went silent (a partition, a frozen process) would keep every
            # replica from publishing: PostgreSQL ends its transaction once it has been idle
            # longer than a Redis round trip and its retry can take.
            publishing = await session.scalar(
                sa.select(
                    sa.func.pg_try_advisory_xact_lock(*RELAY_LOCK),
                    sa.func.set_config(
                        "idle_in_transaction_session_timeout",
                        str(round(self.connect_timeout * 5 * 1000)),
                        True,
                    ),
                )
            )
            if not publishing:
                return 0
            # A statement after the lock: its snapshot sees the previous batch marked.
            pending = await session.exec(
                select(OutboxEvent)
                .where(col(OutboxEvent.published_at).is_(None))
                .order_by(col(OutboxEvent.seq))
                .limit(self.batch_size)
            )
            events = list(pending.all())
            if not events:
                return 0
            async with self.redis.pipeline(transaction=False) as pipe:
                for event in events:
                    with tracing.publishing(event.envelope()) as envelope:
                        pipe.xadd(
                            self.stream,
                            {"envelope": envelope.model_dump_json()},
                            maxlen=self.max_stream_length,
                            approximate=True,
                        )
                        logger.info(
                            "event relayed", extra={"event_id": str(event.id), "type": event.type}
                        )
                await pipe.execute()
            await session.exec(
                sa.update(OutboxEvent)
                .where(col(OutboxEvent.id).in_([event.id for event in events]))
                .values(published_at=utcnow())
            )
            await session.commit()
            for event in events:
                metrics.EVENTS_RELAYED.labels(event.type).inc()
            return len(events)

    async def prune(self) -> None:
        async with self.sessionmaker() as session:
            await session.exec(
                sa.delete(OutboxEvent).where(col(OutboxEvent.published_at) < utcnow() - RETENTION)
            )
            await session.commit()

    def wake(self) -> None:
        """Publish now rather than at the next poll; safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # no loop running in the caller's thread
            if asyncio.get_running_loop() is loop:
                self._wakeup.set()
                return
        loop.call_soon_threadsafe(self._wakeup.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; an outage of Redis or PostgreSQL only delays events."""
        self._loop = asyncio.get_running_loop()
        helpers = [asyncio.create_task(self._wake_when_set(stop))]
        unsubscribe = on_local_commit(self.wake) if self.wake_on_commit else None
        if self.wake_on_commit and self.listen_dsn is not None:
            helpers.append(asyncio.create_task(self.listen(stop)))
        try:
            await self._relay(stop)
        finally:
            if unsubscribe is not None:
                unsubscribe()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _relay(self, stop: asyncio.Event) -> None:
        retry = FIRST_RETRY
        pruned_at = -PRUNE_EVERY
        while not stop.is_set():
            # Cleared before publishing: a commit from now on wakes the next round.
            self._wakeup.clear()
            try:
                await self.replay_if_redis_lost_data()
                published = await self.publish_batch()
                if time.monotonic() - pruned_at >= PRUNE_EVERY:
                    await self.prune()
                    pruned_at = time.monotonic()
                retry = FIRST_RETRY
                if published == self.batch_size:
                    continue  # more is waiting: no pause
            except Exception as exc:  # noqa: BLE001 - any failure: keep the rows, retry later
                logger.warning("outbox relay failed; retrying", extra={"err": str(exc)})
                # Not cut short by commits: they would only fail the same way.
                await sleep_unless_stopped(stop, retry)
                retry = min(retry * 2, 5.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.poll_interval)

    async def _wake_when_set(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wakeup.set()

    async def listen(self, stop: asyncio.Event) -> None:
        """Wake on every NOTIFY of a commit with events, reconnecting when the link is lost."""
        assert self.listen_dsn is not None  # noqa: S101 - run() starts this only with a DSN
        retry = 0.1
        while not stop.is_set():
            try:
                connection = await asyncpg.connect(
                    self.listen_dsn,
                    timeout=self.connect_timeout,
                    server_settings={"application_name": self.listener_name},
                )
            except Exception as exc:  # noqa: BLE001 - PostgreSQL down: polling covers meanwhile
                logger.warning("outbox listener cannot connect", extra={"err": str(exc)})
                await sleep_unless_stopped(stop, retry)
                retry = min(retry * 2, 5.0)
                continue
            retry = 0.1
            try:
                await self._listen_on(connection, stop)
            except Exception as exc:  # noqa: BLE001 - whatever broke it, listen again
                logger.warning("outbox listener lost its connection", extra={"err": str(exc)})
            finally:
                connection.terminate()
            await sleep_unless_stopped(stop, retry)  # a server that ends every session at once

    async def _listen_on(self, connection: asyncpg.Connection, stop: asyncio.Event) -> None:
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        await connection.add_listener(NOTIFY_CHANNEL, lambda *_: self.wake())
        self.wake()  # what other replicas committed while nobody was listening
        while not (stop.is_set() or lost.is_set()):
            await _first_of(stop, lost, seconds=LISTEN_CHECK_EVERY)
            if not (stop.is_set() or lost.is_set()):
                await connection.fetchval("SELECT 1", timeout=self.connect_timeout)


async def _first_of(*events: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
