"""The async Redis client every service builds (`create_redis`: one retry on a broken
connection) and its dependency (`RedisDep`)."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def create_redis(url: str, *, timeout: float = 2.0) -> Redis:
    """Short timeouts: a Redis outage must turn into a quick 503, not a hung request.

    One retry, on a broken connection only: after a Redis restart every idle connection in
    the pool is dead, and each would otherwise fail the one command that finds out (a 503
    with Redis back). `from_url` alone retries nothing. A timeout is not retried, so a
    Redis that stopped answering still costs a request one `timeout`, not several.
    """
    return Redis.from_url(
        url,
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


async def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


RedisDep = Annotated[Redis, Depends(get_redis)]
