"""Every wait a request can meet is bounded and says why it gave up; readiness is not fooled.

The demo app's pools hold POOL_SIZE connections each and every wait is bounded by BOUND
seconds (conftest). Each test fills one pool or holds one lock for far longer than that
(HOLD): an unbounded wait would outlast the test's patience, a bounded one answers 503
with Retry-After and a detail, never 500, while `/ready` stays 200: PostgreSQL and Redis
still answer.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from devstack.servers import PostgresServer
from servicekit import revocation
from servicekit.db import Database, is_database_busy, is_database_unavailable
from servicekit.errors import AT_CAPACITY, CONTENDED

#: The demo app's settings (conftest): each pool's size, and the bound of every wait.
POOL_SIZE = 4
BOUND = 0.5
#: Longer than any bound: what a request would wait without one.
HOLD = 30.0
#: How long an answer may take at most: the bound, plus a machine busy with other tests.
PATIENCE = BOUND + 5.0


async def _timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await asyncio.wait_for(request, timeout=HOLD)
    return response, time.monotonic() - started


def _assert_busy(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": detail}
    assert response.headers["Retry-After"] == "1"


async def _ready(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/api/v1/demo/ready")


@asynccontextmanager
async def _advisory_lock_held(postgres: PostgresServer, key: int) -> AsyncIterator[None]:
    """Another session holds the lock, as a transaction holding a row would."""
    holder = await asyncpg.connect(postgres.dsn())
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", key)
        yield
    finally:
        await holder.close()


def test_the_demo_app_has_the_pools_and_bounds_these_tests_fill(demo_app: FastAPI) -> None:
    settings = demo_app.state.settings
    sizes = {
        settings.DATABASE_POOL_SIZE,
        settings.DATABASE_READ_POOL_SIZE,
        settings.REDIS_POOL_SIZE,
    }
    assert (sizes, settings.DATABASE_MAX_OVERFLOW) == ({POOL_SIZE}, 0)
    assert {settings.DATABASE_POOL_TIMEOUT, settings.DATABASE_LOCK_TIMEOUT} == {BOUND}


async def test_a_write_waiting_on_a_held_lock_answers_503_within_the_bound(
    client: httpx.AsyncClient, postgres: PostgresServer
) -> None:
    async with _advisory_lock_held(postgres, 1001):
        response, seconds = await _timed(client.post("/api/v1/demo/locks/1001"))
        _assert_busy(response, CONTENDED)
        assert seconds < PATIENCE
        # Another row's writes are not held up.
        assert (await client.post("/api/v1/demo/locks/1002")).status_code == 200
        assert (await _ready(client)).status_code == 200
    assert (await client.post("/api/v1/demo/locks/1001")).status_code == 200


async def test_a_statement_that_runs_too_long_is_cancelled_with_a_503(
    client: httpx.AsyncClient,
) -> None:
    response, seconds = await _timed(client.post("/api/v1/demo/sleep", params={"seconds": HOLD}))
    _assert_busy(response, "The database took too long to answer; try again shortly")
    assert seconds < PATIENCE
    assert (await client.post("/api/v1/demo/sleep", params={"seconds": 0})).status_code == 200


async def test_a_full_write_pool_answers_503_and_leaves_the_service_ready(
    client: httpx.AsyncClient, demo_app: FastAPI
) -> None:
    database: Database = demo_app.state.database
    async with AsyncExitStack() as held:
        for _ in range(POOL_SIZE):
            connection = await held.enter_async_context(database.engine.connect())
            await connection.exec_driver_sql("SELECT 1")
        response, seconds = await _timed(client.post("/api/v1/demo/locks/2001"))
        _assert_busy(response, AT_CAPACITY)
        assert seconds < PATIENCE
        ready = await _ready(client)
        assert ready.status_code == 200, ready.text
        # Reads have their own pool.
        assert (await client.get("/api/v1/demo/numbers")).status_code == 200
    assert (await client.post("/api/v1/demo/locks/2001")).status_code == 200


async def test_a_full_read_pool_answers_503_and_leaves_the_service_ready(
    client: httpx.AsyncClient, demo_app: FastAPI
) -> None:
    reads = demo_app.state.database.reads
    held = [await reads.acquire() for _ in range(POOL_SIZE)]
    try:
        response, seconds = await _timed(client.get("/api/v1/demo/numbers"))
        _assert_busy(response, AT_CAPACITY)
        assert seconds < PATIENCE
        assert (await _ready(client)).status_code == 200
    finally:
        for connection in held:
            await reads.release(connection)
    assert (await client.get("/api/v1/demo/numbers")).json() == {"numbers": [1, 2, 3]}


async def test_a_full_redis_pool_answers_503_and_leaves_the_service_ready(
    client: httpx.AsyncClient, demo_app: FastAPI
) -> None:
    headers = demo_app.state.tokens.headers()
    await revocation.mark_restored(demo_app.state.redis)  # other tests restart Redis
    pool = demo_app.state.redis.connection_pool
    held = [await pool.get_connection() for _ in range(POOL_SIZE)]
    try:
        response, seconds = await _timed(client.get("/api/v1/demo/whoami", headers=headers))
        _assert_busy(response, AT_CAPACITY)
        assert seconds < PATIENCE
        assert (await _ready(client)).status_code == 200
    finally:
        for connection in held:
            await pool.release(connection)
    assert (await client.get("/api/v1/demo/whoami", headers=headers)).status_code == 200


async def test_readiness_probes_use_no_pooled_connection(
    client: httpx.AsyncClient, demo_app: FastAPI
) -> None:
    """Every pool full, fifty probes at once: each still answers 200, at once."""
    database: Database = demo_app.state.database
    redis_pool = demo_app.state.redis.connection_pool
    async with AsyncExitStack() as held:
        for _ in range(POOL_SIZE):
            connection = await held.enter_async_context(database.engine.connect())
            await connection.exec_driver_sql("SELECT 1")
        reads = [await database.reads.acquire() for _ in range(POOL_SIZE)]
        redis_connections = [await redis_pool.get_connection() for _ in range(POOL_SIZE)]
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(*(_ready(client) for _ in range(50))), timeout=BOUND
            )
        finally:
            for connection in reads:
                await database.reads.release(connection)
            for connection in redis_connections:
                await redis_pool.release(connection)
    assert {answer.status_code for answer in answers} == {200}


@pytest.mark.parametrize(
    ("sqlstate", "busy"),
    [("55P03", True), ("57014", True), ("40P01", True), ("40001", True), ("23505", False)],
)
def test_contention_is_busy_not_unavailable(sqlstate: str, busy: bool) -> None:
    error = asyncpg.PostgresError.new({"C": sqlstate, "M": "test"})
    assert is_database_busy(error) is busy
    assert not is_database_unavailable(error)
