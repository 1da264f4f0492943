"""Several relays drain one outbox backlog at once: each aggregate's events keep their order.

A backlog is committed while no relay runs: every aggregate gets `STEPS` events, each in a
later transaction than the one before, and the transactions interleave many aggregates, so
one aggregate's events sit a few dozen rows apart (across the relays' batch boundaries).
Then `RELAYS` relays, each with its own connection pool and Redis client as separate
replicas would have, start together and drain it. The stream must hold every event once,
and each aggregate's events in the order they were committed. Repeated `RUNS` times: a
misorder needs two batches to race, which one run may not show.
"""

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import asyncpg
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from devstack.servers import PostgresServer, RedisServer
from servicekit.background import running
from servicekit.db import Database
from servicekit.events.envelope import Envelope
from servicekit.events.outbox import add_event, register_outbox
from servicekit.events.relay import OutboxRelay
from servicekit.redis import create_redis

RELAYS = 3
RUNS = 8
AGGREGATES = 400
STEPS = 3
#: Aggregates whose step s is committed together with step s+1 of the previous group.
GROUP = 20
DATABASE = "relay_order"


@pytest.fixture(scope="module")
async def database_url(postgres: PostgresServer) -> AsyncIterator[str]:
    admin = await asyncpg.connect(postgres.dsn())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()
    url = postgres.dsn(DATABASE).replace("postgresql://", "postgresql+asyncpg://")
    database = Database(url)
    schema = sa.MetaData()
    outbox = register_outbox(schema)
    async with database.engine.begin() as connection:
        await connection.run_sync(schema.create_all, tables=[outbox])
    await database.dispose()
    yield url


async def commit_backlog(database: Database) -> int:
    """Commit every aggregate's steps in order, interleaved with other aggregates'."""
    groups = [[uuid.uuid4() for _ in range(GROUP)] for _ in range(AGGREGATES // GROUP)]
    staged = 0
    # Transaction t holds step s of group t - s: one aggregate's steps are consecutive
    # transactions, each around GROUP * STEPS rows after the previous one.
    for t in range(len(groups) + STEPS - 1):
        async with database.sessionmaker() as session:
            for step in range(STEPS):
                if 0 <= t - step < len(groups):
                    for aggregate in groups[t - step]:
                        add_event(
                            session,
                            type="demo.step",
                            producer="demo",
                            data={"aggregate": str(aggregate), "step": step},
                            aggregate=str(aggregate),
                        )
                        staged += 1
            await session.commit()
    return staged


def misordered(entries: list[tuple[str, dict[str, str]]]) -> tuple[int, int]:
    """(aggregates whose steps reached the stream out of order, events seen twice)."""
    steps: dict[str, list[int]] = defaultdict(list)
    seen: set[uuid.UUID] = set()
    duplicates = 0
    for _, fields in entries:
        envelope = Envelope.model_validate_json(fields["envelope"])
        if envelope.id in seen:
            duplicates += 1
            continue
        seen.add(envelope.id)
        steps[envelope.data["aggregate"]].append(envelope.data["step"])
    wrong = sum(1 for found in steps.values() if found != sorted(found))
    return wrong, duplicates


async def drain_with_relays(url: str, redis_url: str, stream: str, expected: int) -> None:
    replicas = [Database(url) for _ in range(RELAYS)]
    clients = [create_redis(redis_url, timeout=2.0) for _ in range(RELAYS)]
    relays = [
        OutboxRelay(
            sessionmaker=replica.sessionmaker,
            redis=client,
            stream=stream,
            name="demo",
            wake_on_commit=False,
            poll_interval=0.05,
        )  # fmt: skip
        for replica, client in zip(replicas, clients, strict=True)
    ]
    # Redis holds the relays' marker, as it does once a service has run: no replay of
    # retained events (a relay that finds it missing republishes them, a test of its own).
    await clients[0].set(relays[0].marker, "set")
    try:
        async with running(*(relay.run for relay in relays)):
            for _ in range(1200):
                if await clients[0].xlen(stream) >= expected:
                    break
                await asyncio.sleep(0.05)
    finally:
        for client in clients:
            await client.aclose()
        for replica in replicas:
            await replica.dispose()


async def test_relays_draining_one_backlog_keep_each_aggregates_order(
    database_url: str, redis_server: RedisServer
) -> None:
    if not redis_server.is_running():
        redis_server.start()
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    database = Database(database_url)
    outcomes = []
    try:
        for run in range(RUNS):
            stream = f"relay-order-{run}-{uuid.uuid4().hex[:8]}"
            expected = await commit_backlog(database)
            await drain_with_relays(database_url, redis_server.url, stream, expected)
            entries = await redis.xrange(stream)
            wrong, duplicates = misordered(entries)
            outcomes.append((len(entries) - duplicates, wrong))
            await redis.delete(stream, f"{stream}:relay:demo")
            async with database.engine.begin() as connection:
                await connection.exec_driver_sql("TRUNCATE outbox_event")
    finally:
        await redis.aclose()
        await database.dispose()
    print(f"relay order: {RUNS} runs, {RELAYS} relays, (events, misordered aggregates) {outcomes}")
    assert outcomes == [(AGGREGATES * STEPS, 0)] * RUNS


async def test_an_aggregates_events_are_published_in_commit_order_not_staging_order(
    database_url: str, redis_server: RedisServer
) -> None:
    """The transaction that staged first but commits last is published last.

    Its first statements (a flush, as autoflush does before any query) run before the other
    transaction commits: a number or a time taken then would put its event first.
    """
    if not redis_server.is_running():
        redis_server.start()
    database = Database(database_url)
    redis = create_redis(redis_server.url)
    stream = f"commit-order-{uuid.uuid4().hex[:8]}"
    aggregate = str(uuid.uuid4())
    try:
        async with database.sessionmaker() as first:
            add_event(first, type="demo.step", producer="demo",
                      data={"step": "staged first"}, aggregate=aggregate)  # fmt: skip
            await first.flush()
            async with database.sessionmaker() as second:
                add_event(second, type="demo.step", producer="demo",
                          data={"step": "committed first"}, aggregate=aggregate)  # fmt: skip
                await second.commit()
            await first.commit()
        relay = OutboxRelay(
            sessionmaker=database.sessionmaker, redis=redis, stream=stream, name="demo"
        )
        assert await relay.publish_batch() == 2
        steps = [
            Envelope.model_validate_json(fields["envelope"]).data["step"]
            for _, fields in await redis.xrange(stream)
        ]
        assert steps == ["committed first", "staged first"]
    finally:
        await redis.delete(stream)
        await redis.aclose()
        async with database.engine.begin() as connection:
            await connection.exec_driver_sql("TRUNCATE outbox_event")
        await database.dispose()


async def test_a_relay_that_froze_holding_the_publishing_lock_does_not_stop_the_others(
    database_url: str, redis_server: RedisServer
) -> None:
    """A relay stuck mid-batch (here: a Redis that accepts and never answers) loses its
    transaction, and with it the lock, once idle past its bound; another relay publishes."""
    if not redis_server.is_running():
        redis_server.start()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # never answers

    silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
    silent_port = silent.sockets[0].getsockname()[1]
    frozen_db, live_db = Database(database_url), Database(database_url)
    frozen_redis = create_redis(f"redis://127.0.0.1:{silent_port}/0", timeout=60.0)
    live_redis = create_redis(redis_server.url)
    stream = f"frozen-{uuid.uuid4().hex[:8]}"
    relays = [
        OutboxRelay(
            sessionmaker=db.sessionmaker,
            redis=client,
            stream=stream,
            name="demo",
            wake_on_commit=False,
            poll_interval=0.1,
            connect_timeout=0.2,
        )  # fmt: skip
        for db, client in ((frozen_db, frozen_redis), (live_db, live_redis))
    ]
    await live_redis.set(relays[1].marker, "set")
    async with frozen_db.sessionmaker() as session:
        add_event(session, type="demo.step", producer="demo", data={"step": 0})
        await session.commit()
    # The frozen relay takes the lock and its batch, then waits on its silent Redis.
    frozen = asyncio.create_task(relays[0].publish_batch())
    try:
        await asyncio.sleep(0.5)
        assert await relays[1].publish_batch() == 0  # the lock is still held
        async with running(relays[1].run):
            for _ in range(200):
                if await live_redis.xlen(stream):
                    break
                await asyncio.sleep(0.05)
        assert await live_redis.xlen(stream) == 1
        assert not frozen.done()
    finally:
        frozen.cancel()
        await asyncio.gather(frozen, return_exceptions=True)
        silent.close()
        await live_redis.delete(stream)
        for client in (frozen_redis, live_redis):
            await client.aclose()
        async with live_db.engine.begin() as connection:
            await connection.exec_driver_sql("TRUNCATE outbox_event")
        for db in (frozen_db, live_db):
            await db.dispose()
