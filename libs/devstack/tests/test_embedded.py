"""Our own PostgreSQL and Redis: only where the machine's cannot be used; kept between runs."""

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from devstack.ports import free_port
from devstack.servers import PostgresServer, RedisServer
from devstack.stack import Stack, StackConfig


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="devstack-embedded-"))
    os.chmod(path, 0o755)  # noqa: S103 - the postgres OS user enters it
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def password_postgres() -> Iterator[PostgresServer]:
    """Like a fresh Debian's PostgreSQL from apt: a password asked over TCP."""
    with PostgresServer() as server:

        async def require_password() -> None:
            connection = await asyncpg.connect(server.admin_dsn)
            await connection.execute("ALTER ROLE postgres PASSWORD 'only-the-admin-knows'")
            (server.pgdata / "pg_hba.conf").write_text(
                "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
            )
            await connection.execute("SELECT pg_reload_conf()")
            await connection.close()

        asyncio.run(require_password())
        yield server


async def fetch_note(dsn: str) -> str | None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE TABLE IF NOT EXISTS note (text text)")
        return await connection.fetchval("SELECT text FROM note")
    finally:
        await connection.close()


async def write_note(dsn: str, text: str) -> None:
    connection = await asyncpg.connect(dsn)
    await connection.execute("INSERT INTO note VALUES ($1)", text)
    await connection.close()


def test_a_server_refusing_the_login_is_replaced_by_our_own_kept_between_runs(
    password_postgres: PostgresServer, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = StackConfig(
        postgres_admin_dsn=password_postgres.admin_dsn,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # no Redis there
        state_dir=state_dir,
    )
    first = Stack(config)
    first.embed_unusable_servers()
    try:
        assert first.postgres is not None and first.redis is not None
        assert first.postgres.port != password_postgres.port
        assert first.postgres.data_dir == state_dir / "postgres"
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2
        assert lines[0].startswith(f"devstack: PostgreSQL at 127.0.0.1:{password_postgres.port}")
        assert "password authentication failed" in lines[0]
        assert "running our own (" in lines[0] and f"data in {state_dir}/postgres" in lines[0]
        assert lines[1].startswith("devstack: Redis at 127.0.0.1:")
        assert asyncio.run(fetch_note(first.postgres_admin_dsn)) is None
        asyncio.run(write_note(first.postgres_admin_dsn, "kept"))
        redis.Redis.from_url(first.redis_url).set("note", "kept too")
        ports = first.postgres.port, first.redis.port
    finally:
        first.stop()
    assert not first.postgres.is_running() and not first.redis.is_running()

    second = Stack(config)
    second.embed_unusable_servers()
    try:
        assert second.postgres is not None and second.redis is not None
        assert (second.postgres.port, second.redis.port) == ports  # clients keep working
        assert asyncio.run(fetch_note(second.postgres_admin_dsn)) == "kept"
        assert redis.Redis.from_url(second.redis_url).get("note") == b"kept too"
    finally:
        second.stop()
    assert password_postgres.is_running()  # the machine's server is left as it was


def test_the_machines_servers_come_first_when_they_work(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with PostgresServer() as postgres, RedisServer() as own_redis:
        stack = Stack(
            StackConfig(
                postgres_admin_dsn=postgres.admin_dsn, redis_url=own_redis.url, state_dir=state_dir
            )
        )
        stack.embed_unusable_servers()
        assert (stack.postgres, stack.redis, stack.embedded) == (None, None, [])
        assert stack.postgres_admin_dsn == postgres.admin_dsn
        assert capsys.readouterr().out == ""
        assert not (state_dir / "postgres").exists()
