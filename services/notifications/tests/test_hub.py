"""The hub: one subscription per process, fanned out to local sockets, surviving Redis restarts."""

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from devstack.servers import RedisServer
from notifications.push import Hub, channel_for
from servicekit.redis import create_redis


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, so stopping it disturbs nothing else."""
    with tempfile.TemporaryDirectory(prefix="test-hub-redis-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
async def redis(private_redis: RedisServer) -> AsyncIterator[Redis]:
    client = create_redis(private_redis.url, timeout=1.0)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def hub(private_redis: RedisServer) -> AsyncIterator[Hub]:
    client = create_redis(private_redis.url, timeout=1.0)
    hub = Hub(client, queue_size=2, poll_timeout=0.1)
    hub.start()
    await asyncio.wait_for(hub.subscribed.wait(), 5)
    try:
        yield hub
    finally:
        await hub.stop()
        await client.aclose()


async def test_hub_hands_a_message_to_every_socket_of_its_user_only(hub: Hub, redis: Redis) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    async with hub.listen(alice) as first, hub.listen(alice) as second, hub.listen(bob) as bobs:
        assert hub.listeners(alice) == 2

        await redis.publish(channel_for(alice), "hello")

        assert await asyncio.wait_for(first.get(), 1) == "hello"
        assert await asyncio.wait_for(second.get(), 1) == "hello"
        await asyncio.sleep(0.2)
        assert bobs.empty()
    assert hub.listeners(alice) == 0


async def test_hub_drops_pushes_for_a_socket_that_does_not_read(hub: Hub, redis: Redis) -> None:
    alice = uuid.uuid4()
    async with hub.listen(alice) as inbox:
        for n in range(5):
            await redis.publish(channel_for(alice), str(n))
        await asyncio.sleep(0.3)

        assert [inbox.get_nowait() for _ in range(inbox.qsize())] == ["0", "1"]


async def test_hub_resubscribes_after_redis_restarts(
    hub: Hub, redis: Redis, private_redis: RedisServer
) -> None:
    alice = uuid.uuid4()
    async with hub.listen(alice) as inbox:
        private_redis.stop()
        for _ in range(300):
            if not hub.subscribed.is_set():
                break
            await asyncio.sleep(0.01)
        assert not hub.subscribed.is_set()

        private_redis.start()
        await asyncio.wait_for(hub.subscribed.wait(), 15)
        await redis.publish(channel_for(alice), "after the restart")

        assert await asyncio.wait_for(inbox.get(), 2) == "after the restart"
