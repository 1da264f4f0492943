"""Pytest fixtures for a service's tests: its app running on a fresh database and a private Redis.

Enabled by a service's conftest with `pytest_plugins = ["servicekit_testing.plugin"]`; the
conftest provides `service_app` and `service_dir` (`service_fixtures`), so this kit never
learns which services exist or where they live. The database is created and migrated with
the service's real migrations once per session, and dropped after it. Tables are emptied
after each test rather than rolled back: several tests need real commits seen by concurrent
transactions (refresh races, If-Match races).
"""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlmodel.ext.asyncio.session import AsyncSession

from devstack.servers import RedisServer
from servicekit import revocation
from servicekit.auth import build_verifier
from servicekit.db import metadata
from servicekit_testing.environment import (
    DATABASE_NAME_ENV,
    REDIS_PORT_ENV,
    admin_dsn,
    prepared,
)
from servicekit_testing.migrations import upgrade_to_head
from servicekit_testing.tokens import Headers, TokenFactory

# ---- what the service's conftest provides -------------------------------------------------


@pytest.fixture(scope="session")
def service_app() -> FastAPI:
    """The app under test: each service's conftest overrides this with its `main.app`."""
    pytest.fail(
        "the service's conftest.py must define a `service_app` fixture "
        "(service_app, service_dir = service_fixtures(app, folder))",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def service_dir() -> Path:
    """The folder holding the service's alembic.ini: overridden by the service's conftest."""
    pytest.fail(
        "the service's conftest.py must define a `service_dir` fixture "
        "(service_app, service_dir = service_fixtures(app, folder))",
        pytrace=False,
    )


# ---- the run's private database and Redis --------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A redis-server of the run's own, on the port the service's settings already name."""
    with RedisServer(None, port=int(prepared(REDIS_PORT_ENV))) as server:
        yield server.url


@pytest.fixture(scope="session")
async def database(service_dir: Path) -> AsyncIterator[str]:
    """Create the run's database, migrate it to head with the real migrations, drop it after."""
    name = prepared(DATABASE_NAME_ENV)
    url = prepared("DATABASE_URL")
    admin = await asyncpg.connect(admin_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await upgrade_to_head(service_dir, url)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(admin_dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# ---- the app and ways to talk to it --------------------------------------------------------


@pytest.fixture(scope="session")
async def app(service_app: FastAPI, database: str, redis_server: str) -> AsyncIterator[FastAPI]:
    """The service app with its lifespan running (engine, Redis, background tasks)."""
    async with service_app.router.lifespan_context(service_app):
        # What the auth service does once Redis holds every revocation.
        await revocation.mark_restored(service_app.state.redis)
        yield service_app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def session(app: FastAPI) -> AsyncIterator[AsyncSession]:
    """A session of the app's own engine, for arranging and inspecting rows."""
    async with app.state.database.sessionmaker() as session:
        yield session


@pytest.fixture(autouse=True)
async def _empty_state_after_test(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each test starts from empty tables and an empty Redis, whatever the last one left."""
    yield
    if "app" not in request.fixturenames:
        return
    app: FastAPI = request.getfixturevalue("app")
    if metadata.tables:
        quoted = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
        async with app.state.database.engine.begin() as connection:
            await connection.exec_driver_sql(f"TRUNCATE {quoted} CASCADE")
    await app.state.redis.flushdb()
    await revocation.mark_restored(app.state.redis)


# ---- tokens and personas: real tokens for ids no other test uses ---------------------------


@pytest.fixture(scope="session")
def tokens(app: FastAPI) -> TokenFactory:
    """Resource services verify against this factory's key instead of fetching a JWKS."""
    factory = TokenFactory(app.state.settings)
    app.state.token_verifier = build_verifier(app.state.settings, factory.key_source)
    return factory


@pytest.fixture
def alice_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def bob_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def alice(tokens: TokenFactory, alice_id: uuid.UUID) -> Headers:
    return tokens.headers(alice_id)


@pytest.fixture
def bob(tokens: TokenFactory, bob_id: uuid.UUID) -> Headers:
    return tokens.headers(bob_id)


@pytest.fixture
def admin(tokens: TokenFactory) -> Headers:
    return tokens.headers(uuid.uuid4(), roles=("user", "admin"))
