"""The database side of `docker compose up`, rehearsed on a private PostgreSQL server.

What the containers do at start-up, minus the containers: the postgres image's init step
(docker/postgres/init-databases.sh, run as the image runs it: psql over the local server as
POSTGRES_USER) and each service's entry point (docker/entrypoint.py: wait, lock, `alembic
upgrade head` with the environment compose gives it). Uses the PostgreSQL server binaries
of this machine (`make test` needs them already), on a free port in a temporary directory.
"""

# ruff: noqa: S101 - pytest assertions (pyproject's per-file-ignores predate tests-deploy)

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from deploykit import REPO_ROOT, SERVICES, environment_of, load_module

from devstack.servers import PostgresServer

INIT_SCRIPT = REPO_ROOT / "docker" / "postgres" / "init-databases.sh"


@pytest.fixture(scope="module")
def postgres(compose: dict[str, Any]) -> Iterator[PostgresServer]:
    """A private server initialised exactly as the postgres container initialises its volume."""
    server = PostgresServer()
    server.start()
    try:
        environment = {
            **os.environ,
            **environment_of(compose["services"]["postgres"]),
            "PGHOST": server.host,
            "PGPORT": str(server.port),
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": "postgres",
        }
        result = subprocess.run(  # noqa: S603 - fixed argv
            [shutil.which("bash") or "/bin/bash", str(INIT_SCRIPT)],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        _require_passwords_for_service_roles(server)
        yield server
    finally:
        server.stop()
        server.cleanup()


def _require_passwords_for_service_roles(server: PostgresServer) -> None:
    """The private server trusts local TCP; make the service roles prove their password, as
    the image's `host all all all scram-sha-256` rule does."""
    hba = server.pgdata / "pg_hba.conf"
    rule = f"host all {','.join(SERVICES)} {server.host}/32 scram-sha-256\n"
    hba.write_text(rule + hba.read_text())

    async def reload() -> None:
        connection = await asyncpg.connect(server.admin_dsn)
        try:
            await connection.execute("SELECT pg_reload_conf()")
        finally:
            await connection.close()

    asyncio.run(reload())


def on_server(database_url: str, server: PostgresServer) -> str:
    """The compose DATABASE_URL pointed at the private server instead of `postgres:5432`."""
    parts = urlsplit(database_url)
    netloc = f"{parts.username}:{parts.password}@{server.host}:{server.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str) -> Any:
    parts = urlsplit(url)
    return asyncpg.connect(
        host=parts.hostname,
        port=parts.port,
        user=parts.username,
        password=parts.password,
        database=parts.path[1:],
    )


def service_url(compose: dict[str, Any], name: str, server: PostgresServer) -> str:
    return on_server(environment_of(compose["services"][name])["DATABASE_URL"], server)


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_reaches_its_own_database_with_its_password(
    compose: dict[str, Any], postgres: PostgresServer, name: str
) -> None:
    async def check() -> None:
        connection = await connect(service_url(compose, name, postgres))
        try:
            assert await connection.fetchval("SELECT current_database()") == name
            owner = await connection.fetchval(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", name
            )
            assert owner == name
        finally:
            await connection.close()
        wrong = urlsplit(service_url(compose, name, postgres))
        wrong = wrong._replace(netloc=wrong.netloc.replace(wrong.password or "", "wrong", 1))
        with pytest.raises(asyncpg.InvalidPasswordError):
            await connect(urlunsplit(wrong))

    asyncio.run(check())


@pytest.mark.parametrize("name", SERVICES)
def test_no_service_can_connect_to_another_services_database(
    compose: dict[str, Any], postgres: PostgresServer, name: str
) -> None:
    async def check() -> None:
        own = urlsplit(service_url(compose, name, postgres))
        for other in SERVICES:
            if other == name:
                continue
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connect(urlunsplit(own._replace(path=f"/{other}")))

    asyncio.run(check())


def test_entrypoint_migrates_every_service_with_replicas_starting_together(
    compose: dict[str, Any], postgres: PostgresServer, generated_root: Path
) -> None:
    """Two replicas of each service run the entry point's migration step at the same moment:
    the advisory lock serialises them and both succeed, with the production environment
    compose gives the service (Alembic's env.py builds and validates its settings)."""
    entrypoint = load_module("docker/entrypoint.py")
    alembic = (sys.executable, "-m", "alembic")

    async def replicas(name: str) -> None:
        environment = environment_of(compose["services"][name])
        environment["DATABASE_URL"] = url = service_url(compose, name, postgres)
        entrypoint.refuse_development_values(environment)
        environ = {**_without_settings(os.environ), **environment}
        service_dir = REPO_ROOT / "services" / name
        await asyncio.gather(
            *(
                entrypoint.migrate(
                    url, service_dir=service_dir, wait_seconds=10, alembic=alembic, environ=environ
                )
                for _replica in range(2)
            )
        )
        connection = await connect(url)
        try:
            version = await connection.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await connection.close()
        config = Config(str(service_dir / "alembic.ini"))
        assert version == ScriptDirectory.from_config(config).get_current_head()

    async def every_service() -> None:
        await asyncio.gather(*(replicas(name) for name in SERVICES))

    asyncio.run(every_service())


def _without_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """This process's environment minus anything a service setting could pick up."""
    return {
        name: value
        for name, value in environ.items()
        if name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
    }


def test_entrypoint_gives_up_clearly_when_the_role_is_refused(
    compose: dict[str, Any], postgres: PostgresServer
) -> None:
    """A .env regenerated after the first start: the hint says what to do, without retrying."""
    entrypoint = load_module("docker/entrypoint.py")
    parts = urlsplit(service_url(compose, "items", postgres))
    stale = urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.password or "", "old", 1)))
    with pytest.raises(entrypoint.StartupError, match="docker compose down -v"):
        asyncio.run(entrypoint.wait_for_postgres(stale, wait_seconds=30))


def test_entrypoint_waits_for_postgres_then_gives_up(compose: dict[str, Any]) -> None:
    from devstack.ports import free_port

    entrypoint = load_module("docker/entrypoint.py")
    url = f"postgresql+asyncpg://items:x@127.0.0.1:{free_port()}/items"
    with pytest.raises(entrypoint.StartupError, match="not reachable after"):
        asyncio.run(entrypoint.wait_for_postgres(url, wait_seconds=1.5))


def test_entrypoint_migrate_phase_migrates_and_exits(
    compose: dict[str, Any], postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`entrypoint.py migrate`, the Helm chart's init container: the migration step under the
    lock, exit 0, and no uvicorn."""
    entrypoint = load_module("docker/entrypoint.py")
    environment = environment_of(compose["services"]["users"])
    environment["DATABASE_URL"] = url = service_url(compose, "users", postgres)
    for name in list(os.environ):
        if name not in _without_settings(os.environ):
            monkeypatch.delenv(name)
    for name, value in {**environment, "SERVICE": "users"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(entrypoint, "SERVICE_DIR", REPO_ROOT / "services" / "users")

    def no_exec(*argv: object) -> None:
        raise AssertionError(f"migrate must not exec anything: {argv}")

    monkeypatch.setattr(os, "execvp", no_exec)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert entrypoint.main(["migrate"]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)

    async def version() -> str:
        connection = await connect(url)
        try:
            return str(await connection.fetchval("SELECT version_num FROM alembic_version"))
        finally:
            await connection.close()

    config = Config(str(REPO_ROOT / "services" / "users" / "alembic.ini"))
    assert asyncio.run(version()) == ScriptDirectory.from_config(config).get_current_head()
