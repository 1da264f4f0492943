"""The shared Redis client against a real Redis that restarts under it."""

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from devstack.servers import RedisServer
from servicekit.redis import create_redis

CONNECTIONS = 6


async def test_every_pooled_connection_serves_its_next_command_after_a_redis_restart(
    redis_server: RedisServer,
) -> None:
    """A restart leaves the pool's idle connections dead: each must reconnect, not fail once."""
    client = create_redis(redis_server.url, timeout=1.0)
    try:
        await asyncio.gather(*(client.ping() for _ in range(CONNECTIONS)))
        assert len(await client.client_list()) >= CONNECTIONS  # the pool holds them all

        redis_server.stop()
        redis_server.start()

        answers = await asyncio.gather(
            *(client.set(f"after-restart:{n}", n) for n in range(CONNECTIONS)),
            return_exceptions=True,
        )
        assert answers == [True] * CONNECTIONS
    finally:
        await client.aclose()


async def test_a_command_fails_with_a_connection_error_while_redis_is_down(
    redis_server: RedisServer,
) -> None:
    client = create_redis(redis_server.url, timeout=1.0)
    try:
        await client.ping()
        redis_server.stop()
        try:
            with pytest.raises(RedisConnectionError):
                await client.get("anything")
        finally:
            redis_server.start()
        assert await client.ping() is True
    finally:
        await client.aclose()
