"""The database every service uses, one way for each kind of access.

- Reads (a single row, a list, a count): `Database.fetch_one` / `fetch_all` with a `ReadQuery`,
  a Core SELECT written against the models and compiled once, on a small asyncpg pool.
- Writes: the ORM, through `SessionDep` (a session per request, committed by the service).

Every wait is bounded: for a pooled connection (`pool_timeout`, then `PoolExhausted`), for a
row lock (`lock_timeout`) and for a statement (`statement_timeout`), both set on every
connection as it opens. `ping` checks the server on a connection of its own, which a full
pool cannot hold up (readiness).

Also here: the naming convention every schema shares; `is_database_unavailable`, which
tells an outage from a wrong query, and `is_database_busy`, which tells contention (a
lock or a statement that ran out of time, a full pool) from both: each answers 503.
"""

import asyncio
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


class PoolExhausted(Exception):
    """Every connection of a pool stayed in use for the whole `pool_timeout`."""


def _milliseconds(seconds: float) -> str:
    return str(max(0, round(seconds * 1000)))


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
        pool_timeout: float = 2.0,
        lock_timeout: float = 2.0,
        statement_timeout: float = 5.0,
    ) -> None:
        #: Sent as the connection opens (no round trip); 0 means no limit, as in PostgreSQL.
        server_settings = {
            "lock_timeout": _milliseconds(lock_timeout),
            "statement_timeout": _milliseconds(statement_timeout),
        }
        self.engine: AsyncEngine = create_async_engine(
            url,
            # Connections beyond pool_size are closed on return, and opening one costs more
            # than a request: size the pool for the expected concurrency, overflow for bursts.
            pool_size=pool_size,
            max_overflow=max_overflow,
            # No pre-ping: it would cost a round trip per request. A connection PostgreSQL
            # closed while it sat in the pool is replaced at checkout (_replace_if_closed).
            pool_timeout=pool_timeout,
            connect_args={"timeout": connect_timeout, "server_settings": server_settings},
        )
        event.listen(self.engine.sync_engine, "checkout", _replace_if_closed)
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        self.connect_timeout, self.pool_timeout = connect_timeout, pool_timeout
        self.lock_timeout, self.statement_timeout = lock_timeout, statement_timeout
        self._server_settings = server_settings
        #: The same database in libpq's spelling, for asyncpg's own connections (the read
        #: pool, the outbox relay's LISTEN, the readiness probe).
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._read_pool_size = read_pool_size
        self._reads: asyncpg.Pool | None = None
        self._probe: asyncpg.Connection | None = None
        self._ping: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Create the read pool. Its connections open on first use (min_size=0), so a service
        starts, and answers 503, while PostgreSQL is down, as it does through the engine."""
        self._reads = await asyncpg.create_pool(
            self.dsn,
            min_size=0,
            max_size=self._read_pool_size,
            reset=_keep_session_state,
            timeout=self.connect_timeout,
            server_settings=self._server_settings,
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
            connection = await self._acquire_read()
            try:
                return await run(connection)
            except _BROKEN_CONNECTION:
                connection.terminate()  # never back into the pool
                if attempt:
                    raise
            finally:
                await self.reads.release(connection)
        raise AssertionError("unreachable")

    async def _acquire_read(self) -> asyncpg.Connection:
        """A read-pool connection; `PoolExhausted` when all stayed busy for `pool_timeout`."""
        try:
            connection: asyncpg.Connection = await self.reads.acquire(timeout=self.pool_timeout)
        except TimeoutError:
            # Also raised by a connection attempt that timed out (the server unreachable):
            # only a pool with every connection open and in use is merely busy.
            if self.reads.get_size() >= self._read_pool_size and not self.reads.get_idle_size():
                raise PoolExhausted("every read connection is in use") from None
            raise
        return connection

    async def ping(self, seconds: float) -> None:
        """`SELECT 1` on the probe's own connection, within `seconds`; raises when it fails.

        Probes that arrive while one runs share its answer: a flood of readiness checks is
        one round trip at a time, and never takes a pooled connection.
        """
        if self._ping is None or self._ping.done():
            self._ping = asyncio.create_task(self._ping_once(seconds))
        await asyncio.shield(self._ping)

    async def _ping_once(self, seconds: float) -> None:
        async with asyncio.timeout(seconds):
            try:
                if self._probe is None or self._probe.is_closed():
                    self._probe = await asyncpg.connect(
                        self.dsn, timeout=seconds, server_settings=self._server_settings
                    )
                await self._probe.fetchval("SELECT 1")
            except BaseException:
                if self._probe is not None:
                    self._probe.terminate()  # a fresh one next time, not a half-dead one
                    self._probe = None
                raise

    async def dispose(self) -> None:
        if self._ping is not None:
            self._ping.cancel()
        if self._probe is not None:
            self._probe.terminate()
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
#: Contention: 55P03 lock_not_available (lock_timeout), 57014 query_canceled (statement_timeout),
#: 40P01 deadlock_detected, 40001 serialization_failure. Trying again later can succeed.
_BUSY_SQLSTATES = ("55P03", "57014", "40P01", "40001")


def sqlstates(exc: BaseException) -> list[str]:
    """The SQLSTATEs an error carries: asyncpg's own, or the one SQLAlchemy wrapped."""
    errors = (
        exc,
        getattr(exc, "orig", None),
        getattr(getattr(exc, "orig", None), "__cause__", None),
    )
    states = (
        getattr(error, "sqlstate", None) or getattr(error, "pgcode", None) for error in errors
    )
    return [state for state in states if isinstance(state, str)]


def is_database_busy(exc: BaseException) -> bool:
    """True when the database gave up waiting (a lock, a statement, a pooled connection)."""
    if isinstance(exc, PoolExhausted | sa_exc.TimeoutError):  # the engine's pool: waited
        return True
    return any(state.startswith(_BUSY_SQLSTATES) for state in sqlstates(exc))


def is_database_unavailable(exc: BaseException) -> bool:
    """True when a database error says the server is down or restarting: retry, answer 503."""
    if isinstance(
        exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError
    ):
        return True
    if is_database_busy(exc):
        return False  # up, and answering: it said why it gave up
    if isinstance(exc, asyncpg.PostgresError):  # from the read pool, not wrapped by SQLAlchemy
        return str(exc.sqlstate or "").startswith(_UNAVAILABLE_SQLSTATES)
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        return True
    return any(state.startswith(_UNAVAILABLE_SQLSTATES) for state in sqlstates(exc))


async def get_database(request: Request) -> Database:
    """Async though it awaits nothing, as every dependency here: FastAPI runs a plain `def`
    dependency in its thread pool, a thread hop per request."""
    database: Database = request.app.state.database
    return database


SessionDep = Annotated[AsyncSession, Depends(get_session)]
DatabaseDep = Annotated[Database, Depends(get_database)]
