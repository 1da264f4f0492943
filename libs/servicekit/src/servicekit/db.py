"""The database every service uses, one way for each kind of access.

- Reads (a single row, a list, a count): `Database.fetch_one` / `fetch_all` with a `ReadQuery`,
  a Core SELECT written against the models and compiled once, on a small asyncpg pool.
- Writes: the ORM, through `SessionDep` (a session per request, committed by the service).

Also here: the naming convention every schema shares, and `is_database_unavailable`, which
tells an outage (503) from a wrong query.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any, TypeVar, cast

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import MetaData, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

#: Deterministic constraint names, so Alembic can drop what it created.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Each service runs in its own process, so the shared SQLModel metadata holds only its tables.
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata


_DIALECT = asyncpg_dialect.dialect()


class ReadQuery:
    """A Core SELECT compiled once for asyncpg, for `Database.fetch_one` and `fetch_all`.

    The statement is still written against the models, so it cannot drift from the
    schema; only SQLAlchemy's per-call work (compilation, result processing, the ORM)
    is skipped. Parameters are bound by name, as with `sa.bindparam("name")`, and reach
    asyncpg as they are (no SQLAlchemy type processing: pass UUIDs, ints, datetimes).
    """

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        self.sql = str(compiled)
        self.names = tuple(compiled.positiontup or ())
        #: Values written into the statement itself (literals become bound parameters too).
        binds = {name: compiled.binds[name] for name in self.names}
        self._fixed = {name: b.effective_value for name, b in binds.items() if not b.required}

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        values = {**self._fixed, **params}
        return [values[name] for name in self.names]


_T = TypeVar("_T")

#: A connection that cannot serve another query: gone, or (InternalClientError) told by
#: PostgreSQL that its session is over while its socket is not closed yet.
_BROKEN_CONNECTION = (
    asyncpg.PostgresConnectionError,
    asyncpg.InternalClientError,
    ConnectionError,  # reset, broken pipe; not a timeout, which would only be paid twice
)


def _replace_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection that PostgreSQL closed (a restart, an idle timeout) is known closed
    to asyncpg already: the pool replaces it at no round trip, and the request that would
    have found out with a 503 gets a live one. asyncpg's own pool does the same."""
    if dbapi_connection.driver_connection.is_closed():
        raise sa_exc.DisconnectionError("closed while idle in the pool")


async def _keep_session_state(_: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip: the read pool only runs single SELECTs outside any
    transaction, which leave no session state behind."""


class Database:
    """The engine and session factory for writes, and the read pool; one per process, owned
    by the app's lifespan.

    Reads skip SQLAlchemy's per-call work and the transaction around them: a single SELECT
    on asyncpg costs a fraction of the CPU the same SELECT costs through a session
    (`bench/http_reads.py` measures it).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        max_overflow: int = 5,
        read_pool_size: int = 10,
        connect_timeout: float = 5.0,
    ) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url,
            # Connections beyond pool_size are closed on return, and opening one costs more
            # than a request: size the pool for the expected concurrency, overflow for bursts.
            pool_size=pool_size,
            max_overflow=max_overflow,
            # No pre-ping: it would cost a round trip per request. A connection PostgreSQL
            # closed while it sat in the pool is replaced at checkout (_replace_if_closed).
            pool_timeout=connect_timeout,
            connect_args={"timeout": connect_timeout},
        )
        event.listen(self.engine.sync_engine, "checkout", _replace_if_closed)
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        self.connect_timeout = connect_timeout
        #: The same database in libpq's spelling, for asyncpg's own connections (the read
        #: pool, the outbox relay's LISTEN).
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._read_pool_size = read_pool_size
        self._reads: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Create the read pool. Its connections open on first use (min_size=0), so a service
        starts, and answers 503, while PostgreSQL is down, as it does through the engine."""
        self._reads = await asyncpg.create_pool(
            self.dsn,
            min_size=0,
            max_size=self._read_pool_size,
            reset=_keep_session_state,
            timeout=self.connect_timeout,
        )

    @property
    def reads(self) -> asyncpg.Pool:
        if self._reads is None:
            raise RuntimeError("Database.open() has not been awaited")
        return self._reads

    async def fetch_one(self, query: ReadQuery, **params: Any) -> asyncpg.Record | None:
        """The first row `query` finds, or None."""
        args = query.args(params)
        return await self._read(lambda connection: connection.fetchrow(query.sql, *args))

    async def fetch_all(self, query: ReadQuery, **params: Any) -> list[asyncpg.Record]:
        """Every row `query` finds."""
        args = query.args(params)
        return await self._read(lambda connection: connection.fetch(query.sql, *args))

    async def _read(self, run: Callable[[asyncpg.Connection], Awaitable[_T]]) -> _T:
        """Run a read; if its pooled connection turns out broken, once more on a fresh one.

        A read here is a single SELECT, so running it twice changes nothing. Without the
        retry, a connection that PostgreSQL ended while it sat in the pool would fail the
        request that found out, even with PostgreSQL back. Failing to connect at all is
        not retried: PostgreSQL is down, and the answer is a 503 at once.
        """
        for attempt in range(2):
            async with self.reads.acquire(timeout=self.connect_timeout) as connection:
                try:
                    return await run(connection)
                except _BROKEN_CONNECTION:
                    connection.terminate()  # never back into the pool
                    if attempt:
                        raise
        raise AssertionError("unreachable")

    async def dispose(self) -> None:
        if self._reads is not None:
            await self._reads.close()
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request; the view commits, anything unfinished is rolled back."""
    database: Database = request.app.state.database
    async with database.sessionmaker() as session:
        yield session


#: SQLSTATE classes that mean "PostgreSQL cannot serve right now", not "your query is wrong":
#: 08 connection exceptions, 57P operator intervention (shutting down, starting up, recovering).
_UNAVAILABLE_SQLSTATES = ("08", "57P")


def is_database_unavailable(exc: BaseException) -> bool:
    """True when a database error says the server is down or restarting: retry, answer 503."""
    if isinstance(
        exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError
    ):
        return True
    if isinstance(exc, asyncpg.PostgresError):  # from the read pool, not wrapped by SQLAlchemy
        return str(exc.sqlstate or "").startswith(_UNAVAILABLE_SQLSTATES)
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        return True
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
    return False


async def get_database(request: Request) -> Database:
    """Async though it awaits nothing, as every dependency here: FastAPI runs a plain `def`
    dependency in its thread pool, a thread hop per request."""
    database: Database = request.app.state.database
    return database


SessionDep = Annotated[AsyncSession, Depends(get_session)]
DatabaseDep = Annotated[Database, Depends(get_database)]
