"""The async Redis client every service builds (`create_redis`: one retry on a broken
connection) and its dependency (`RedisDep`)."""

from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


class RedisPoolExhausted(RedisConnectionError):
    """Every connection of the pool stayed in use for the whole pool timeout."""


class BoundedConnectionPool(BlockingConnectionPool):
    """At most `max_connections`; a caller waits up to `timeout` for one, then
    `RedisPoolExhausted` (a 503 saying so, not "Redis is down"). redis-py's default pool
    opens up to 100 and then fails at once; an unbounded one would take Redis's clients."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, TimeoutError):  # waited for a free connection
                raise RedisPoolExhausted("every Redis connection is in use") from exc
            raise


def create_redis(
    url: str, *, timeout: float = 2.0, pool_size: int = 50, pool_timeout: float = 2.0
) -> Redis:
    """Short timeouts: a Redis outage must turn into a quick 503, not a hung request.

    One retry, on a broken connection only: after a Redis restart every idle connection in
    the pool is dead, and each would otherwise fail the one command that finds out (a 503
    with Redis back). `from_url` alone retries nothing. A timeout is not retried, so a
    Redis that stopped answering still costs a request one `timeout`, not several.
    """
    pool = BoundedConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=pool_timeout,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=15,
        retry=Retry(
            ExponentialWithJitterBackoff(base=0.01, cap=0.05),
            retries=1,
            supported_errors=(RedisConnectionError,),
        ),
    )
    return Redis.from_pool(pool)  # closes the pool with the client


async def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


RedisDep = Annotated[Redis, Depends(get_redis)]
