"""The floor under an authenticated read: the bare endpoint plus the two round trips it needs.

One Redis MGET (the revocation check) and one PostgreSQL `SELECT 1` (the row), through the
same clients the services use, with no token, no middleware, no model and no query work.
No service can read an item faster than this on the same machine; `bench.http_reads`
prints it beside the bare endpoint so the gap between them and the services can be read.
"""

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from redis.asyncio import Redis

KEYS = ("floor:sid", "floor:jti", "floor:nvb", "floor:restored")


async def _no_reset(_: asyncpg.Connection) -> None:
    """As the services' read pool: nothing to reset after a single SELECT."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.redis = Redis.from_url(os.environ["FLOOR_REDIS_URL"], decode_responses=True)
    app.state.pool = await asyncpg.create_pool(
        os.environ["FLOOR_POSTGRES_DSN"], min_size=0, max_size=10, reset=_no_reset
    )
    gc.freeze()  # as the services do
    yield
    await app.state.pool.close()
    await app.state.redis.aclose()


app = FastAPI(lifespan=lifespan)


@app.get("/floor")
async def floor() -> dict[str, bool]:
    await app.state.redis.mget(*KEYS)
    async with app.state.pool.acquire() as connection:
        await connection.fetchval("SELECT 1")
    return {"ok": True}
