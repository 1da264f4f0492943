"""Throwaway PostgreSQL/Redis servers: real processes, real clients, real outages."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from devstack.ports import PortInUse, ensure_port_free, free_port, port_is_listening
from devstack.servers import PostgresServer, RedisServer, ServerError

STARTUP_BUDGET = 5.0  # seconds; the brief says "well under", so we assert the hard limit


def timed(action: Callable[[], object]) -> float:
    """Run `action` and return how long it took, in seconds."""
    began = time.monotonic()
    action()
    return time.monotonic() - began


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    """A port that is taken, to provoke PortInUse."""
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


# -- ports ------------------------------------------------------------------------------


def test_free_port_is_bindable() -> None:
    port = free_port()
    ensure_port_free("127.0.0.1", port)  # must not raise
    assert not port_is_listening("127.0.0.1", port)


def test_ensure_port_free_names_the_port(listening_socket: socket.socket) -> None:
    port = listening_socket.getsockname()[1]
    with pytest.raises(PortInUse) as excinfo:
        ensure_port_free("127.0.0.1", port)
    assert str(excinfo.value) == f"port {port} on 127.0.0.1 is already in use"
    assert port_is_listening("127.0.0.1", port)


# -- PostgreSQL -------------------------------------------------------------------------


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    # No data_dir: pytest's tmp_path is private to root, and initdb runs as `postgres`.
    server = PostgresServer()
    yield server
    server.cleanup()


@pytest.mark.asyncio
async def test_postgres_outage_and_recovery_keeps_data(postgres: PostgresServer) -> None:
    first_start = timed(postgres.start)
    assert first_start < STARTUP_BUDGET, f"first start (with initdb) took {first_start:.2f}s"
    assert postgres.is_running()
    assert postgres.admin_dsn == f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"

    conn = await asyncpg.connect(postgres.admin_dsn)
    await conn.execute("CREATE TABLE survivors (name text PRIMARY KEY)")
    await conn.execute("INSERT INTO survivors VALUES ('alice'), ('bob')")
    assert await conn.fetchval("SHOW fsync") == "off"
    await conn.close()

    port = postgres.port
    postgres.stop()
    assert not postgres.is_running()
    assert not port_is_listening("127.0.0.1", port)
    with pytest.raises(OSError):  # ConnectionRefusedError: the outage is real
        await asyncpg.connect(postgres.admin_dsn, timeout=2)

    postgres.start()
    assert postgres.port == port
    conn = await asyncpg.connect(postgres.admin_dsn)
    try:
        names = await conn.fetch("SELECT name FROM survivors ORDER BY name")
        assert [r["name"] for r in names] == ["alice", "bob"]
    finally:
        await conn.close()

    data_dir = postgres.data_dir
    postgres.cleanup()
    assert not postgres.is_running()
    assert not data_dir.exists()


def test_postgres_start_stop_three_times_on_same_port(postgres: PostgresServer) -> None:
    postgres.start()
    port = postgres.port
    for _ in range(3):
        assert timed(postgres.stop) < STARTUP_BUDGET
        assert not port_is_listening("127.0.0.1", port)
        assert timed(postgres.start) < STARTUP_BUDGET
        assert port_is_listening("127.0.0.1", port)
    assert postgres.port == port


def test_postgres_restart_and_crash_stop(postgres: PostgresServer) -> None:
    with postgres:
        postgres.restart()
        assert postgres.is_running()
        postgres.stop(mode="immediate")  # like a crash: no checkpoint
        assert not postgres.is_running()
        postgres.start()  # crash recovery
        assert postgres.is_running()
    assert not postgres.data_dir.exists()  # the context manager cleans up


@pytest.mark.asyncio
async def test_postgres_recovers_from_kill(postgres: PostgresServer) -> None:
    postgres.start()
    conn = await asyncpg.connect(postgres.admin_dsn)
    await conn.execute("CREATE TABLE committed (id int)")
    await conn.execute("INSERT INTO committed VALUES (1)")
    postgres.kill()  # SIGKILL: no shutdown checkpoint, stale lock files left behind
    assert not postgres.is_running()
    with pytest.raises((asyncpg.PostgresError, OSError)):
        await conn.fetchval("SELECT 1")
    conn.terminate()

    postgres.start()  # crash recovery on the same port
    conn = await asyncpg.connect(postgres.admin_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM committed") == 1
    finally:
        await conn.close()


def test_postgres_refuses_a_taken_port(listening_socket: socket.socket) -> None:
    server = PostgresServer(port=listening_socket.getsockname()[1])
    try:
        with pytest.raises(PortInUse):
            server.start()
    finally:
        server.cleanup()


def test_postgres_start_failure_shows_log_tail(postgres: PostgresServer) -> None:
    postgres.start()
    postgres.stop()
    with (postgres.pgdata / "postgresql.conf").open("a") as conf:
        conf.write("shared_buffers = 'lots'\n")
    with pytest.raises(ServerError, match="shared_buffers") as excinfo:
        postgres.start()
    assert "failed to start" in str(excinfo.value)
    assert not postgres.is_running()


def test_postgres_cleanup_spares_foreign_files_in_callers_dir(tmp_path: Path) -> None:
    # Never started (root could not initdb under tmp_path), but cleanup() must only
    # remove what the server creates, never the caller's own files.
    data_dir = tmp_path / "pg"
    data_dir.mkdir()
    (data_dir / "keep.txt").write_text("mine")
    (data_dir / "postgres.log").write_text("server's")
    PostgresServer(data_dir).cleanup()
    assert (data_dir / "keep.txt").exists()
    assert not (data_dir / "postgres.log").exists()


# -- Redis ------------------------------------------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.cleanup()


@pytest.mark.asyncio
async def test_redis_outage_and_recovery(redis_server: RedisServer) -> None:
    assert timed(redis_server.start) < STARTUP_BUDGET
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"

    client = aioredis.from_url(redis_server.url)
    try:
        await client.set("greeting", "hello")
        assert await client.get("greeting") == b"hello"

        port = redis_server.port
        redis_server.stop()
        assert not redis_server.is_running()
        assert not port_is_listening("127.0.0.1", port)
        with pytest.raises(aioredis.ConnectionError):
            await client.ping()

        redis_server.start()
        assert redis_server.port == port
        # The same client object reconnects on its own once the server is back...
        assert await client.ping() is True
        # ...to an empty server: nothing is persisted, like a cache that lost its state.
        assert await client.get("greeting") is None
    finally:
        await client.aclose()


def test_redis_start_stop_three_times_on_same_port(redis_server: RedisServer) -> None:
    redis_server.start()
    port = redis_server.port
    for _ in range(3):
        assert timed(redis_server.stop) < STARTUP_BUDGET
        assert not port_is_listening("127.0.0.1", port)
        assert timed(redis_server.start) < STARTUP_BUDGET
        assert port_is_listening("127.0.0.1", port)


def test_redis_recovers_from_kill(redis_server: RedisServer) -> None:
    redis_server.start()
    redis_server.kill()
    assert not redis_server.is_running()
    assert not port_is_listening("127.0.0.1", redis_server.port)
    redis_server.start()
    assert redis_server.is_running()


def test_redis_context_manager_in_callers_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "redis"
    with RedisServer(data_dir) as server:
        assert server.is_running()
        assert (data_dir / "redis.log").exists()
    assert not server.is_running()
    assert not data_dir.exists()  # emptied, so the directory itself goes too


def test_redis_refuses_a_taken_port(listening_socket: socket.socket) -> None:
    port = listening_socket.getsockname()[1]
    with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1"):
        with RedisServer(port=port):
            pass


def test_redis_start_failure_is_reported(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", executable="/bin/false")
    with pytest.raises(ServerError, match="redis-server exited with 1"):
        server.start()
    server.cleanup()
