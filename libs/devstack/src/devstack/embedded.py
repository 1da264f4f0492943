"""make dev's own PostgreSQL and Redis, for where the machine's cannot be used as they are.

The machine's servers come first. A fresh Debian's PostgreSQL asks for a password over TCP,
and a machine may run no Redis at all; rather than have the developer edit `pg_hba.conf`,
make dev then runs a server of its own from the machine's binaries, with its data under
`.dev/` so that accounts and items survive from one run to the next. Each keeps the port it
got the first time while that port is free, so a client pointed at it keeps working.
"""

from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import redis

from devstack.ports import PortInUse, ensure_port_free, free_port
from devstack.servers import PostgresServer, RedisServer, postgres_bindir

__all__ = ["notice", "postgres_refusal", "redis_refusal", "start_postgres", "start_redis"]


async def postgres_refusal(dsn: str) -> str | None:
    """Why `dsn` cannot be used (not running, login refused, ...); None when it can."""
    try:
        connection = await asyncpg.connect(dsn, timeout=3)
    except Exception as exc:  # any reason at all means: not usable as it is
        return str(exc) or type(exc).__name__
    await connection.close()
    return None


def redis_refusal(url: str) -> str | None:
    """Why the Redis at `url` cannot be used; None when it answers PING."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__
    return None


def _remembered_port(data_dir: Path, host: str) -> int:
    """The port this server had last time if it is still free, else a new one, remembered."""
    record = data_dir / "port"
    try:
        port = int(record.read_text())
        ensure_port_free(host, port)
    except (FileNotFoundError, ValueError, PortInUse):
        port = free_port(host)
        data_dir.mkdir(parents=True, exist_ok=True)
        record.write_text(f"{port}\n")
    return port


def start_postgres(state_dir: Path, host: str) -> PostgresServer:
    """A cluster in `state_dir/postgres`, started (initdb the first time)."""
    data_dir = state_dir / "postgres"
    server = PostgresServer(data_dir, port=_remembered_port(data_dir, host), host=host)
    server.start()
    return server


def start_redis(state_dir: Path, host: str) -> RedisServer:
    """A Redis with an append-only file in `state_dir/redis`, started."""
    data_dir = state_dir / "redis"
    server = RedisServer(data_dir, _remembered_port(data_dir, host), host, persistent=True)
    server.start()
    return server


def notice(what: str, url: str, refusal: str, server: PostgresServer | RedisServer) -> str:
    """The one line make dev prints about it (the URL without its credentials)."""
    binaries = postgres_bindir() if isinstance(server, PostgresServer) else "redis-server"
    reason = " ".join(refusal.split())
    address = urlsplit(url).netloc.rpartition("@")[2]
    return (
        f"devstack: {what} at {address} cannot be used ({reason}): running our own "
        f"({binaries}) on {server.host}:{server.port}, data in {server.data_dir}"
    )
