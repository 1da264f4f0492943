"""The database pools against a real PostgreSQL that restarts under them."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from devstack.servers import PostgresServer
from servicekit.db import Database, ReadQuery, is_database_unavailable

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


class _SlowToCloseProxy:
    """A TCP relay to PostgreSQL that passes every byte at once but a hang-up late.

    PostgreSQL ends a session with a FATAL message and then closes; until the close arrives,
    asyncpg holds a connection that has read the message but is not closed, and refuses any
    query on it ("another operation is in progress"). Holding the close makes that window,
    which a crashing PostgreSQL opens now and then, long enough to test.
    """

    def __init__(self, target_port: int, *, hold: float) -> None:
        self.target_port, self.hold = target_port, hold
        self.backend_ports: list[int] = []  # our side of each PostgreSQL connection
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> "_SlowToCloseProxy":
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _relay(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        server_in, server = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.backend_ports.append(server.get_extra_info("sockname")[1])
        for task in (
            asyncio.create_task(self._pipe(client_in, server, hold=0)),
            asyncio.create_task(self._pipe(server_in, client, hold=self.hold)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, hold: float
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            await asyncio.sleep(hold)
        except OSError:
            pass
        finally:
            writer.close()


async def _end_backend_sessions(postgres: PostgresServer, client_ports: list[int]) -> None:
    """What PostgreSQL does to every session when it goes down: a FATAL message, then close.

    Returns once those backends have exited (the timeout makes PostgreSQL wait for it), so
    their messages have been written.
    """
    admin = await asyncpg.connect(postgres.dsn())
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE client_port = ANY($1)",
            client_ports,
        )
    finally:
        await admin.close()


async def test_a_connection_told_to_end_but_not_yet_closed_never_gives_an_internal_error(
    postgres: PostgresServer,
) -> None:
    """The read pool retries on a fresh connection (a SELECT may run twice); a session cannot
    retry, so it fails as 'database unavailable' (503) and its pool drops that connection."""
    async with _SlowToCloseProxy(postgres.port, hold=2.0) as proxy:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/postgres"
        database = Database(url, pool_size=1, max_overflow=0, read_pool_size=1)
        await database.open()
        try:
            assert await _session_query(database) == 1
            assert await _read_pool_query(database) == 1
            await _end_backend_sessions(postgres, proxy.backend_ports)
            await asyncio.sleep(0.1)  # the FATAL messages are relayed; the hang-ups are held

            assert await _read_pool_query(database) == 1
            with pytest.raises(sa_exc.DBAPIError) as refused:
                await _session_query(database)
            assert is_database_unavailable(refused.value), refused.value
            assert await _session_query(database) == 1
        finally:
            await database.dispose()
