"""Outbox, relay and consumer against a real PostgreSQL and a Redis we can stop."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from devstack.servers import PostgresServer, RedisServer
from servicekit.background import running
from servicekit.db import Database
from servicekit.events.consumer import EventConsumer
from servicekit.events.envelope import Envelope
from servicekit.events.erasures import (
    guard_erased_accounts,
    is_erased,
    record_erasure,
    register_erased_accounts,
)
from servicekit.events.outbox import NOTIFY_CHANNEL, OutboxEvent, add_event, register_outbox
from servicekit.events.processed import register_processed_events
from servicekit.events.relay import OutboxRelay
from servicekit.redis import create_redis

STREAM = "test-events"


class Effect(SQLModel, table=True):
    """What the demo handler writes: one row per handling, so duplicates would show."""

    __tablename__ = "demo_effect"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    event_id: uuid.UUID
    note: str


@pytest.fixture(scope="module")
async def database(postgres: PostgresServer) -> AsyncIterator[Database]:
    database = Database(postgres.dsn().replace("postgresql://", "postgresql+asyncpg://"))
    schema = sa.MetaData()  # what a service that publishes and consumes events registers
    tables = [
        register_outbox(schema),
        register_processed_events(schema),
        register_erased_accounts(schema),
        Effect.__table__,
    ]
    async with database.engine.begin() as connection:
        await connection.run_sync(schema.create_all, tables=tables)
    yield database
    async with database.engine.begin() as connection:
        await connection.run_sync(schema.drop_all, tables=tables)
    await database.dispose()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    if not redis_server.is_running():
        redis_server.start()
    client = create_redis(redis_server.url, timeout=1.0)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
async def _empty_tables(database: Database) -> AsyncIterator[None]:
    yield
    async with database.engine.begin() as connection:
        await connection.exec_driver_sql(
            "TRUNCATE outbox_event, processed_event, demo_effect, erased_account"
        )


async def record(session: AsyncSession, envelope: Envelope) -> None:
    if envelope.data.get("poison"):
        raise ValueError("this event can never be handled")
    session.add(Effect(event_id=envelope.id, note=envelope.data["note"]))


def relay(database: Database, redis: Redis) -> OutboxRelay:
    return OutboxRelay(sessionmaker=database.sessionmaker, redis=redis, stream=STREAM, name="demo")


def consumer(database: Database, redis: Redis, name: str, **options: Any) -> EventConsumer:
    return EventConsumer(
        group="demo", sessionmaker=database.sessionmaker, redis=redis,
        handlers={"demo.happened": record}, stream=STREAM, consumer_name=name,
        retry_delay=0.01, block_ms=100, **options,
    )  # fmt: skip


async def stage(database: Database, note: str, *, commit: bool = True, **data: Any) -> None:
    async with database.sessionmaker() as session:
        add_event(session, type="demo.happened", producer="demo", data={"note": note, **data})
        if commit:
            await session.commit()
        else:
            await session.rollback()


async def effects(database: Database) -> list[str]:
    async with database.sessionmaker() as session:
        rows = await session.exec(select(Effect.note).order_by(col(Effect.note)))
        return list(rows.all())


async def test_an_event_whose_change_rolls_back_is_never_published(
    database: Database, redis: Redis
) -> None:
    await stage(database, "kept")
    await stage(database, "rolled back", commit=False)
    assert await relay(database, redis).publish_batch() == 1
    entries = await redis.xrange(STREAM)
    assert len(entries) == 1
    envelope = Envelope.model_validate_json(entries[0][1]["envelope"])
    assert envelope.data == {"note": "kept"} and envelope.producer == "demo"


async def test_the_relay_keeps_events_through_a_redis_outage(
    database: Database, redis: Redis, redis_server: RedisServer
) -> None:
    await stage(database, "during outage")
    redis_server.stop()
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever redis-py raises for "down"
        await relay(database, redis).publish_batch()
    async with database.sessionmaker() as session:
        pending = await session.exec(
            select(OutboxEvent).where(col(OutboxEvent.published_at).is_(None))
        )
        assert len(pending.all()) == 1
    redis_server.start()
    assert await relay(database, redis).publish_batch() == 1
    assert await redis.xlen(STREAM) == 1
    assert await relay(database, redis).publish_batch() == 0


async def test_the_relay_loop_delivers_once_redis_returns(
    database: Database, redis: Redis, redis_server: RedisServer
) -> None:
    redis_server.stop()
    stop = asyncio.Event()
    task = asyncio.create_task(relay(database, redis).run(stop))
    await stage(database, "queued while down")
    await asyncio.sleep(0.5)
    redis_server.start()
    for _ in range(100):
        if await _stream_length(redis) == 1:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await task
    assert await redis.xlen(STREAM) == 1


async def _stream_length(redis: Redis) -> int:
    try:
        return int(await redis.xlen(STREAM))
    except Exception:  # noqa: BLE001 - still reconnecting
        return -1


async def test_consumer_handles_each_event_once(database: Database, redis: Redis) -> None:
    for note in ("a", "b", "c"):
        await stage(database, note)
    await relay(database, redis).publish_batch()
    worker = consumer(database, redis, "one")
    await worker.ensure_group()
    assert await worker.consume_new() == 3
    assert await effects(database) == ["a", "b", "c"]
    assert (await redis.xpending(STREAM, "demo"))["pending"] == 0


async def test_a_redelivered_event_has_no_second_effect(database: Database, redis: Redis) -> None:
    await stage(database, "once")
    await relay(database, redis).publish_batch()
    [(message_id, fields)] = await redis.xrange(STREAM)
    worker = consumer(database, redis, "one")
    await worker.ensure_group()
    await worker.handle_message(message_id, fields)
    await worker.handle_message(message_id, fields)
    assert await effects(database) == ["once"]


async def test_a_consumer_killed_before_acknowledging_does_not_handle_twice(
    database: Database, redis: Redis
) -> None:
    await stage(database, "crash")
    await relay(database, redis).publish_batch()
    doomed = consumer(database, redis, "doomed")
    await doomed.ensure_group()
    replies = await redis.xreadgroup("demo", "doomed", {STREAM: ">"}, count=10)
    [(_, [(message_id, fields)])] = replies
    envelope = Envelope.model_validate_json(fields["envelope"])
    await doomed._handle_once(record, envelope)  # handled and committed; then the process dies
    assert (await redis.xpending(STREAM, "demo"))["pending"] == 1
    survivor = consumer(database, redis, "survivor", claim_idle_ms=0)
    assert await survivor.claim_abandoned() == 1
    assert await effects(database) == ["crash"]
    assert (await redis.xpending(STREAM, "demo"))["pending"] == 0


async def read_then_die(database: Database, redis: Redis, note: str, name: str) -> None:
    """A consumer `name` reads the event `note` and dies before acknowledging it."""
    await stage(database, note)
    await relay(database, redis).publish_batch()
    await consumer(database, redis, name).ensure_group()
    await redis.xreadgroup("demo", name, {STREAM: ">"}, count=10)


async def test_a_restarted_consumer_finishes_its_own_pending_messages(
    database: Database, redis: Redis
) -> None:
    await read_then_die(database, redis, "pending", "same-name")
    restarted = consumer(database, redis, "same-name")
    assert await restarted.consume_pending() == 1
    assert await effects(database) == ["pending"]


async def test_a_consumer_restarted_under_a_new_name_takes_over_its_predecessors_messages(
    database: Database, redis: Redis
) -> None:
    await read_then_die(database, redis, "held", "host-101")
    restarted = consumer(database, redis, "host-102", dead_after_ms=200)  # claim_idle_ms: 30 s
    assert await restarted.claim_from_dead_consumers() == 0  # it may only be slow yet
    await asyncio.sleep(0.3)
    assert await restarted.claim_from_dead_consumers() == 1
    assert await effects(database) == ["held"]
    assert (await redis.xpending(STREAM, "demo"))["pending"] == 0
    # Once empty and silent for longer than claim_idle_ms, the dead consumer is forgotten.
    forgetful = consumer(database, redis, "host-103", dead_after_ms=200, claim_idle_ms=200)
    await forgetful.claim_from_dead_consumers()
    names = {c["name"] for c in await redis.xinfo_consumers(STREAM, "demo")}
    assert "host-101" not in names


async def test_a_polling_consumers_messages_are_left_to_it(
    database: Database, redis: Redis
) -> None:
    await read_then_die(database, redis, "busy", "busy")  # or only slow: it polled just now
    other = consumer(database, redis, "other", dead_after_ms=60_000)
    assert await other.claim_from_dead_consumers() == 0
    assert (await redis.xpending(STREAM, "demo"))["pending"] == 1
    assert await effects(database) == []


async def test_a_poisoned_event_is_dead_lettered_and_does_not_block_the_rest(
    database: Database, redis: Redis
) -> None:
    await stage(database, "before")
    await stage(database, "poison", poison=True)
    await stage(database, "after")
    await relay(database, redis).publish_batch()
    worker = consumer(database, redis, "one", max_attempts=3)
    await worker.ensure_group()
    assert await worker.consume_new() == 3
    assert await effects(database) == ["after", "before"]
    [(_, parked)] = await redis.xrange(f"{STREAM}.dead-letter")
    assert "this event can never be handled" in parked["error"]
    assert Envelope.model_validate_json(parked["envelope"]).data["note"] == "poison"
    assert parked["group"] == "demo"
    assert (await redis.xpending(STREAM, "demo"))["pending"] == 0


async def test_events_published_before_the_group_existed_are_consumed(
    database: Database, redis: Redis
) -> None:
    await stage(database, "early")
    await relay(database, redis).publish_batch()
    late = consumer(database, redis, "late")
    await late.ensure_group()
    assert await late.consume_new() == 1


async def test_the_consumer_loop_survives_a_database_outage_without_dead_lettering(
    database: Database, redis: Redis, postgres: PostgresServer
) -> None:
    await stage(database, "outage")
    await relay(database, redis).publish_batch()
    worker = consumer(database, redis, "patient")
    await worker.ensure_group()
    postgres.stop()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(1.0)
    postgres.start()
    for _ in range(100):
        if await effects_or_none(database) == ["outage"]:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await task
    assert await effects(database) == ["outage"]
    assert await redis.exists(f"{STREAM}.dead-letter") == 0


async def test_a_handler_that_waits_out_its_lock_timeout_is_retried_not_dead_lettered(
    database: Database, redis: Redis, postgres: PostgresServer
) -> None:
    """Contention (the row another transaction holds) says nothing about the event."""
    hot = 4242

    async def record_under_lock(session: AsyncSession, envelope: Envelope) -> None:
        await session.exec(sa.select(sa.func.pg_advisory_xact_lock(hot)))  # type: ignore[call-overload]
        await record(session, envelope)

    await stage(database, "contended")
    await relay(database, redis).publish_batch()
    worker = consumer(database, redis, "contended")
    worker.handlers = {"demo.happened": record_under_lock}
    await worker.ensure_group()
    holder = await asyncpg.connect(postgres.dsn())
    await holder.execute("SELECT pg_advisory_lock($1)", hot)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        # Longer than the lock timeout (2 s) times the handler's attempts (3).
        await asyncio.sleep(database.lock_timeout * worker.max_attempts + 1)
        assert await effects(database) == []
    finally:
        await holder.close()
    for _ in range(100):
        if await effects(database) == ["contended"]:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await task
    assert await effects(database) == ["contended"]
    assert await redis.exists(f"{STREAM}.dead-letter") == 0


async def effects_or_none(database: Database) -> list[str] | None:
    try:
        return await effects(database)
    except Exception:  # noqa: BLE001 - the database is still coming back
        return None


async def test_outbox_rows_are_marked_published(database: Database, redis: Redis) -> None:
    await stage(database, "x")
    await relay(database, redis).publish_batch()
    async with database.sessionmaker() as session:
        published = await session.exec(
            select(sa.func.count())
            .select_from(OutboxEvent)
            .where(col(OutboxEvent.published_at).is_not(None))
        )
        assert published.one() == 1


async def test_events_lost_with_redis_data_are_replayed_and_handled_once(
    database: Database, redis: Redis
) -> None:
    the_relay = relay(database, redis)
    await the_relay.replay_if_redis_lost_data()  # first start: sets the marker
    await stage(database, "handled before the wipe")
    await stage(database, "lost in the wipe")
    await the_relay.publish_batch()
    worker = consumer(database, redis, "one")
    await worker.ensure_group()
    first = await redis.xreadgroup("demo", "one", {STREAM: ">"}, count=1)
    [(_, [(message_id, fields)])] = first
    await worker.handle_message(message_id, fields)  # only the first one got handled
    await redis.flushall()  # Redis restarts empty: stream, group and marker are gone

    assert await the_relay.replay_if_redis_lost_data() == 2
    assert await the_relay.publish_batch() == 2
    await worker.ensure_group()
    assert await worker.consume_new() == 2
    assert await effects(database) == ["handled before the wipe", "lost in the wipe"]
    assert await the_relay.replay_if_redis_lost_data() == 0


async def test_the_consumer_loop_recreates_its_group_after_redis_lost_it(
    database: Database, redis: Redis
) -> None:
    worker = consumer(database, redis, "resilient")
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.3)
    await redis.flushall()
    await stage(database, "after the wipe")
    await relay(database, redis).publish_batch()
    for _ in range(100):
        if await effects(database) == ["after the wipe"]:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await task
    assert await effects(database) == ["after the wipe"]


# The relay publishes as soon as a transaction with events commits. Its poll is set to an
# hour below, so an event that arrives can only have been brought by the wake-up.
HOUR = 3600.0


def waking_relay(database: Database, redis: Redis, postgres: PostgresServer | None) -> OutboxRelay:
    return OutboxRelay(
        sessionmaker=database.sessionmaker, redis=redis, stream=STREAM, name="demo",
        listen_dsn=postgres.dsn() if postgres is not None else None, poll_interval=HOUR,
    )  # fmt: skip


async def published_notes(redis: Redis, count: int) -> list[str]:
    """The notes of the first `count` events in the stream, once that many are there."""
    for _ in range(400):
        if await redis.xlen(STREAM) >= count:
            break
        await asyncio.sleep(0.05)
    entries = await redis.xrange(STREAM)
    return [Envelope.model_validate_json(fields["envelope"]).data["note"] for _, fields in entries]


async def stage_elsewhere(database: Database, note: str) -> None:
    """A commit as another replica makes it: the row and its NOTIFY, but no call in this process."""
    envelope = Envelope(type="demo.happened", producer="demo", data={"note": note})
    async with database.sessionmaker() as session:
        session.add(
            OutboxEvent(id=envelope.id, type=envelope.type, occurred_at=envelope.occurred_at,
                        producer=envelope.producer, data=envelope.data)
        )  # fmt: skip
        await session.exec(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))
        await session.commit()


async def listener_pids(database: Database, relay: OutboxRelay) -> list[int]:
    """Backends of the relay's LISTEN connection; waits a while for one to be there."""
    for _ in range(400):
        async with database.engine.connect() as connection:
            rows = await connection.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                (relay.listener_name,),
            )
            pids = [pid for (pid,) in rows]
        if pids:
            return pids
        await asyncio.sleep(0.05)
    return []


def test_importing_the_event_modules_adds_no_table_to_a_service() -> None:
    assert not {"outbox_event", "processed_event"} & set(SQLModel.metadata.tables)


async def test_a_commit_in_this_process_wakes_the_relay_before_its_poll(
    database: Database, redis: Redis
) -> None:
    await stage(database, "before the relay started")
    async with running(waking_relay(database, redis, postgres=None).run):
        assert await published_notes(redis, 1) == ["before the relay started"]
        await stage(database, "while the relay waits")
        assert await published_notes(redis, 2) == [
            "before the relay started",
            "while the relay waits",
        ]


async def test_a_commit_with_events_notifies_other_replicas(
    database: Database, postgres: PostgresServer
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(postgres.dsn())
    try:
        await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.put_nowait(args[2]))
        await stage(database, "told everyone")
        assert await asyncio.wait_for(heard.get(), timeout=20) == NOTIFY_CHANNEL
    finally:
        await listener.close()


async def test_a_commit_by_another_replica_wakes_the_relay_through_notify(
    database: Database, redis: Redis, postgres: PostgresServer
) -> None:
    relay = waking_relay(database, redis, postgres)
    async with running(relay.run):
        assert await listener_pids(database, relay)
        await stage_elsewhere(database, "from another replica")
        assert await published_notes(redis, 1) == ["from another replica"]


async def test_the_relay_listens_again_after_its_connection_is_terminated(
    database: Database, redis: Redis, postgres: PostgresServer
) -> None:
    relay = waking_relay(database, redis, postgres)
    async with running(relay.run):
        [first] = await listener_pids(database, relay)
        async with database.engine.connect() as connection:
            await connection.exec_driver_sql("SELECT pg_terminate_backend($1)", (first,))
        for _ in range(400):
            if (pids := await listener_pids(database, relay)) and first not in pids:
                break
            await asyncio.sleep(0.05)
        assert pids and first not in pids
        await stage_elsewhere(database, "after the listener came back")
        assert await published_notes(redis, 1) == ["after the listener came back"]


async def test_an_erasure_waits_for_a_writer_already_past_its_check(database: Database) -> None:
    """The writer's check and its commit are one step to the eraser: nothing slips between."""
    user_id = uuid.uuid4()
    async with database.sessionmaker() as writer, database.sessionmaker() as eraser:
        assert await is_erased(writer, user_id) is False
        erasing = asyncio.create_task(record_erasure(eraser, user_id))
        await asyncio.sleep(0.3)
        assert not erasing.done()  # waits for the writer's transaction
        await writer.commit()
        await asyncio.wait_for(erasing, 5)
        await eraser.commit()
    async with database.sessionmaker() as late_writer:
        assert await is_erased(late_writer, user_id) is True


async def test_guarded_handlers_do_nothing_for_an_erased_account(database: Database) -> None:
    erased, other = uuid.uuid4(), uuid.uuid4()
    handlers = guard_erased_accounts({"demo.happened": record, "gone": record}, erasing="gone")

    async def deliver(event_type: str, user_id: uuid.UUID, note: str) -> None:
        envelope = Envelope(
            type=event_type, producer="demo", data={"user_id": str(user_id), "note": note}
        )
        async with database.sessionmaker() as session:
            await handlers[event_type](session, envelope)
            await session.commit()

    await deliver("gone", erased, "the erasing event itself runs")
    await deliver("demo.happened", erased, "late, for the erased account")
    await deliver("demo.happened", other, "for another account")
    assert await effects(database) == ["for another account", "the erasing event itself runs"]
