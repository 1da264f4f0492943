"""A demo service built with `create_app`, on a private PostgreSQL and Redis we can stop."""

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Response
from pydantic import BaseModel, Field

from devstack.ports import free_port
from devstack.servers import PostgresServer, RedisServer
from servicekit import revocation
from servicekit.app import create_app
from servicekit.auth import AdminCaller, Caller, build_verifier
from servicekit.db import DatabaseDep, ReadQuery, SessionDep
from servicekit.errors import NotFound
from servicekit.fields import bounded_text
from servicekit.settings import ServiceSettings
from servicekit_testing import TokenFactory


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with PostgresServer(None, port=free_port()) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis"), port=free_port()) as server:
        yield server


#: The demo app's pools (write, read, Redis) each hold this many connections, and every
#: wait (for one of them, for a lock) is bounded by BOUND seconds; a statement by 2 x BOUND.
#: test_bounded_waits fills them (and checks these values).
POOL_SIZE = 4
BOUND = 0.5


class Thing(BaseModel):
    name: bounded_text(1, 20)  # type: ignore[valid-type]
    price: Decimal = Field(ge=0, max_digits=12, decimal_places=2)


_SERIES = sa.func.generate_series(1, 9).table_valued("n").render_derived(name="series")
#: Read-pool queries need no table of their own: a series is enough to prove the binding.
_NUMBERS = ReadQuery(
    sa.select(_SERIES.c.n).where(_SERIES.c.n < sa.bindparam("below")).order_by(_SERIES.c.n)
)
_ONE_NUMBER = ReadQuery(
    sa.select(_SERIES.c.n, (_SERIES.c.n * _SERIES.c.n).label("square")).where(
        _SERIES.c.n == sa.bindparam("n")
    )
)


def demo_router() -> APIRouter:
    router = APIRouter()

    @router.post("/things", status_code=201)
    async def create_thing(thing: Thing) -> Thing:
        return thing

    @router.get("/things/{name}")
    async def read_thing(name: str) -> Thing:
        raise NotFound("Thing not found")

    @router.get("/whoami")
    async def whoami(caller: Caller) -> dict[str, str]:
        return {"user_id": str(caller.user_id)}

    @router.get("/numbers")
    async def numbers(database: DatabaseDep, below: int = 4) -> dict[str, list[int]]:
        rows = await database.fetch_all(_NUMBERS, below=below)
        return {"numbers": [row["n"] for row in rows]}

    @router.get("/numbers/{n}")
    async def number(database: DatabaseDep, n: int) -> dict[str, int]:
        row = await database.fetch_one(_ONE_NUMBER, n=n)
        if row is None:
            raise NotFound("No such number")
        return {"n": row["n"], "square": row["square"]}

    @router.get("/things")
    async def list_things() -> list[Thing]:
        return [Thing(name="lamp", price=Decimal("3.50"))]

    @router.get("/versioned")
    async def versioned() -> Response:
        return Response(b'{"version": 7}', headers={"ETag": '"v7"'}, media_type="application/json")

    @router.get("/admin-only")
    async def admin_only(_: AdminCaller) -> dict[str, bool]:
        return {"admin": True}

    @router.post("/locks/{key}")
    async def take_lock(session: SessionDep, key: int) -> dict[str, int]:
        """A write that needs a lock (an advisory one stands for a row's)."""
        await session.exec(sa.select(sa.func.pg_advisory_xact_lock(key)))
        await session.commit()
        return {"locked": key}

    @router.post("/sleep")
    async def sleep(session: SessionDep, seconds: float) -> dict[str, float]:
        """A statement that runs `seconds`."""
        await session.exec(sa.select(sa.func.pg_sleep(seconds)))
        return {"slept": seconds}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return router


@pytest.fixture(scope="session")
async def demo_app(postgres: PostgresServer, redis_server: RedisServer) -> AsyncIterator[FastAPI]:
    settings = ServiceSettings(
        SERVICE_NAME="demo",
        DATABASE_URL=postgres.dsn().replace("postgresql://", "postgresql+asyncpg://"),
        REDIS_URL=redis_server.url,
        DEPENDENCY_TIMEOUT=1.0,
        ENVIRONMENT="test",
        METRICS_PORT=free_port(),
        # Small pools and short bounds, so that test_bounded_waits fills and outlasts them.
        DATABASE_POOL_SIZE=POOL_SIZE,
        DATABASE_MAX_OVERFLOW=0,
        DATABASE_READ_POOL_SIZE=POOL_SIZE,
        REDIS_POOL_SIZE=POOL_SIZE,
        DATABASE_POOL_TIMEOUT=BOUND,
        DATABASE_LOCK_TIMEOUT=BOUND,
        DATABASE_STATEMENT_TIMEOUT=2 * BOUND,
    )
    app = create_app(settings, routers=[demo_router()], title="Demo")
    async with app.router.lifespan_context(app):
        await revocation.mark_restored(app.state.redis)
        app.state.tokens = TokenFactory(settings)
        app.state.token_verifier = build_verifier(settings, app.state.tokens.key_source)
        yield app


@pytest.fixture
async def client(demo_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=demo_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        yield client


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]
