"""The database pools against a real PostgreSQL that restarts under them."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from devstack.servers import PostgresServer
from servicekit.db import Database, ReadQuery

CONNECTIONS = 5
_ONE = ReadQuery(sa.select(sa.literal(1).label("one")))


@pytest.fixture
async def database(postgres: PostgresServer) -> AsyncIterator[Database]:
    url = postgres.dsn().replace("postgresql://", "postgresql+asyncpg://")
    database = Database(url, pool_size=CONNECTIONS, max_overflow=0, read_pool_size=CONNECTIONS)
    await database.open()
    yield database
    await database.dispose()


async def _session_query(database: Database, *, hold: float = 0.0) -> int:
    async with database.sessionmaker() as session:
        one = (await session.exec(sa.select(sa.literal(1)))).scalar_one()
        await asyncio.sleep(hold)
        return int(one)


async def _read_pool_query(database: Database, *, hold: float = 0.0) -> int:
    row = await database.fetch_one(_ONE)
    await asyncio.sleep(hold)
    assert row is not None
    return int(row["one"])


async def test_every_pooled_connection_serves_its_next_request_after_a_postgres_restart(
    database: Database, postgres: PostgresServer
) -> None:
    """A restart closes every idle connection; the next request on each must get a new one,
    not fail once with a 503 while PostgreSQL is back."""
    for query in (_session_query, _read_pool_query):  # every connection of both pools in use
        await asyncio.gather(*(query(database, hold=0.05) for _ in range(CONNECTIONS)))
    assert database.engine.pool.checkedin() == CONNECTIONS  # type: ignore[attr-defined]

    # In a thread: the service's event loop keeps running through the outage, as it would.
    await asyncio.to_thread(postgres.stop)
    await asyncio.to_thread(postgres.start)

    for query in (_session_query, _read_pool_query):
        answers = await asyncio.gather(
            *(query(database, hold=0.05) for _ in range(CONNECTIONS)), return_exceptions=True
        )
        assert answers == [1] * CONNECTIONS, query.__name__
