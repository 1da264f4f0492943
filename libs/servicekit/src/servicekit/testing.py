"""Pytest plugin for service tests: a fresh migrated database and a private Redis per session.

A service's `tests/conftest.py` calls `prepare_environment("items")` *before* importing
the service (its settings are read at import), then star-imports this module's fixtures.
Tables are emptied after each test rather than rolled back: several tests need real
commits seen by concurrent transactions (refresh races, If-Match races).
"""

import asyncio
import importlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI

from servicekit import revocation
from servicekit.db import metadata

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from servicekit.auth import StaticKeySource
    from servicekit.settings import ServiceSettings

ADMIN_DSN_ENV = "TEST_POSTGRES_ADMIN_DSN"
DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_dsn() -> str:
    return os.environ.get(ADMIN_DSN_ENV, DEFAULT_ADMIN_DSN)


def prepare_environment(service: str) -> None:
    """Point the service's settings at a database and a Redis that exist only for this run."""
    from devstack.ports import free_port

    admin = httpx.URL(_admin_dsn())
    database = f"test_{service}_{uuid.uuid4().hex[:10]}"
    os.environ["TEST_DATABASE_NAME"] = database
    os.environ["DATABASE_URL"] = (
        f"postgresql+asyncpg://{admin.username or 'postgres'}@{admin.host}:{admin.port or 5432}"
        f"/{database}"
    )
    os.environ["TEST_REDIS_PORT"] = str(free_port())
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{os.environ['TEST_REDIS_PORT']}/0"
    os.environ["ENVIRONMENT"] = "test"
    # Tests drive the relay and the consumer themselves, step by step.
    os.environ["RUN_EVENT_WORKERS"] = "false"
    os.environ["SERVICE_NAME"] = service


def alembic_config(service_dir: Path, database_url: str) -> Config:
    config = Config(str(service_dir / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


__all__ = [
    "_empty_state_after_test",
    "app",
    "client",
    "database",
    "redis_server",
    "service_app",
    "service_dir",
    "service_name",
    "tokens",
    "alice_id",
    "bob_id",
    "alice",
    "bob",
    "admin",
    "session",
]


@pytest.fixture(scope="session")
def service_name() -> str:
    return os.environ["SERVICE_NAME"]


@pytest.fixture(scope="session")
def service_app(service_name: str) -> FastAPI:
    app: FastAPI = importlib.import_module(f"{service_name}.main").app
    return app


@pytest.fixture(scope="session")
def service_dir(service_name: str) -> Path:
    return Path(__file__).resolve().parents[4] / "services" / service_name


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    from devstack.servers import RedisServer

    with tempfile.TemporaryDirectory(prefix="test-redis-") as directory:
        server = RedisServer(Path(directory), port=int(os.environ["TEST_REDIS_PORT"]))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture(scope="session")
async def database(service_dir: Path) -> AsyncIterator[str]:
    """Create the run's database, migrate it to head with the real migrations, drop it after."""
    name = os.environ["TEST_DATABASE_NAME"]
    url = os.environ["DATABASE_URL"]
    admin = await asyncpg.connect(_admin_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    # Alembic's env runs its own event loop; give it a thread of its own.
    await asyncio.to_thread(command.upgrade, alembic_config(service_dir, url), "head")
    try:
        yield url
    finally:
        admin = await asyncpg.connect(_admin_dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


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


@pytest.fixture(autouse=True)
async def _empty_state_after_test(request: pytest.FixtureRequest) -> AsyncIterator[None]:
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


def _schema_differences(connection: object) -> list[object]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(
        connection,  # type: ignore[arg-type]
        opts={"compare_type": True, "compare_server_default": True},
    )
    return list(compare_metadata(context, metadata))


async def migrations_round_trip(service_dir: Path, database_url: str) -> list[object]:
    """Upgrade to head, downgrade to base, upgrade again; return model/schema differences."""
    from sqlalchemy.ext.asyncio import create_async_engine

    config = alembic_config(service_dir, database_url)
    for target in ("head", "base", "head"):
        action = command.upgrade if target == "head" else command.downgrade
        await asyncio.to_thread(action, config, target)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_schema_differences)
    finally:
        await engine.dispose()


class TokenFactory:
    """Mints real signed tokens with a throwaway key, as the auth service would."""

    def __init__(self, settings: "ServiceSettings") -> None:
        from servicekit.keys import generate_private_key, public_jwk

        self.settings = settings
        self.private_key = generate_private_key(settings.AUTH_ALGORITHM)
        self.kid = public_jwk(self.private_key.public_key())["kid"]

    @property
    def key_source(self) -> "StaticKeySource":
        from servicekit.auth import StaticKeySource

        return StaticKeySource({self.kid: self.private_key.public_key()})

    def mint(
        self,
        user_id: uuid.UUID | None = None,
        *,
        roles: tuple[str, ...] = ("user",),
        token_type: str = "access",
        ttl_seconds: int = 900,
        session_id: uuid.UUID | None = None,
    ) -> str:
        from servicekit.auth import issue_token

        token, _ = issue_token(
            private_key=self.private_key,
            kid=self.kid,
            algorithm=self.settings.AUTH_ALGORITHM,
            issuer=self.settings.AUTH_ISSUER,
            audience=self.settings.AUTH_AUDIENCE,
            user_id=user_id or uuid.uuid4(),
            session_id=session_id or uuid.uuid4(),
            roles=list(roles),
            token_type=token_type,  # type: ignore[arg-type]
            ttl_seconds=ttl_seconds,
            token_id=uuid.uuid4().hex,
        )
        return token

    def headers(self, user_id: uuid.UUID | None = None, **kwargs: object) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(user_id, **kwargs)}"}  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tokens(app: FastAPI) -> TokenFactory:
    """Resource services verify against this factory's key instead of fetching a JWKS."""
    from servicekit.auth import build_verifier

    factory = TokenFactory(app.state.settings)
    app.state.token_verifier = build_verifier(app.state.settings, factory.key_source)
    return factory


#: A password that satisfies every service's rules; tests use it unless they test passwords.
TEST_PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- personas for resource services: real tokens for ids no other test uses ----------------

Headers = dict[str, str]


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


@pytest.fixture
async def session(app: FastAPI) -> AsyncIterator["AsyncSession"]:
    """A session of the app's own engine, for arranging and inspecting rows."""
    async with app.state.database.sessionmaker() as session:
        yield session
