"""Entry point of every service image (docker/Dockerfile): migrate, then serve.

Without arguments:
  1. Wait for PostgreSQL. Compose starts the service once PostgreSQL's health check passes,
     but a slow first start or a PostgreSQL restart must not turn into a crash loop.
  2. `alembic upgrade head` from /app/service (alembic.ini and migrations/ of this service;
     the URL comes from DATABASE_URL through the service's settings), holding a PostgreSQL
     advisory lock, so that replicas started together (`docker compose up --scale items=3`)
     migrate one after the other: Alembic takes no lock of its own, and two upgrades of a
     fresh database at once collide.
  3. Replace this process with uvicorn (exec): it becomes PID 1 and gets docker's SIGTERM.
`migrate` alone does steps 1-2 and exits; `serve` alone does step 3. The Helm chart runs
them as an init container and the container after it (deploy/helm/platform), so a pod whose
migration fails says so in its status, and the startup probe times uvicorn only.
With other arguments, run them instead: `docker compose run --rm items alembic current`.

Why migrate here rather than in one-shot `migrate-<svc>` compose services that the services
wait for with `service_completed_successfully`:
  - a container never serves with a schema older than its own code, whichever way it was
    started (`up`, `restart`, `--scale`, a restart after a crash);
  - compose keeps one service per microservice, and `docker compose up --wait` has nothing
    that exits on purpose (older compose releases hang or fail on one-shot containers with
    --wait: docker/compose#9273, #10596);
  - the cost, one no-op `alembic upgrade head` per container start, is a few hundred ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: The port uvicorn listens on in every service container; gateway/dynamic.yml's default
#: upstreams (http://<service>:8000) and docker/healthcheck.py rely on it.
PORT = 8000
#: Where the Dockerfile puts the service's alembic.ini and migrations/.
SERVICE_DIR = Path("/app/service")
#: Arbitrary, fixed key of the advisory lock. Advisory locks are per database, and each
#: service has its own database, so one key serves every service.
MIGRATION_LOCK_KEY = 0x706C6174666F726D  # "platform"
#: Seconds to wait for PostgreSQL before giving up (the restart policy then tries again).
DEFAULT_WAIT_SECONDS = 90.0
#: Same marker as servicekit.settings.DEVELOPMENT_SECRET_MARKER (kept literal here so this
#: script imports nothing from the service before the environment has been checked).
DEVELOPMENT_SECRET_MARKER = "dev-only"
#: The two phases the entry point runs without arguments, in this order.
PHASES = ("migrate", "serve")


class StartupError(RuntimeError):
    """Starting cannot succeed as configured; the message says what to do."""


def log(level: str, event: str, **fields: Any) -> None:
    """One JSON line on stderr, shaped like the services' own logs."""
    entry = {
        "ts": datetime.now(UTC).isoformat(),
        "level": level,
        "service": os.environ.get("SERVICE", "?"),
        "logger": "entrypoint",
        "event": event,
        **fields,
    }
    print(json.dumps(entry, default=str), file=sys.stderr, flush=True)


def normalised_hosts(hosts: str) -> str:
    """A comma-separated host list without empty entries (compose appends the trusted
    proxies, none by default, after a comma)."""
    return ",".join(host.strip() for host in hosts.split(",") if host.strip())


def uvicorn_argv(service: str, forwarded_allow_ips: str) -> list[str]:
    """The server command: one process per container (scale with replicas, not workers)."""
    return [
        "uvicorn",
        f"{service}.main:app",
        "--host",
        "0.0.0.0",  # noqa: S104 - inside the container; only the compose network reaches it
        "--port",
        str(PORT),
        # Trust X-Forwarded-For/-Proto from the gateway only: any other peer's headers are
        # ignored, so a client cannot pick its own address for rate limits and throttling.
        "--proxy-headers",
        "--forwarded-allow-ips",
        forwarded_allow_ips,
        # servicekit logs every request as JSON, with its request id.
        "--no-access-log",
        # No `Server: uvicorn` naming the software.
        "--no-server-header",
        # Below docker's 10 s stop timeout, so open WebSockets cannot turn a stop into a kill.
        "--timeout-graceful-shutdown",
        "8",
    ]


def refuse_development_values(environ: Mapping[str, str]) -> None:
    """In production, refuse any variable still holding a development or placeholder value.

    The services refuse such settings themselves, but not every kind of setting (secrets
    are SecretStr, which their check skips), and .env.example's placeholders carry the
    marker precisely so that a copied, unedited example never starts.
    """
    if environ.get("ENVIRONMENT") != "production":
        return
    offending = sorted(
        name for name, value in environ.items() if DEVELOPMENT_SECRET_MARKER in value
    )
    if offending:
        raise StartupError(
            f"{', '.join(offending)} still hold a development/placeholder value "
            f"(containing {DEVELOPMENT_SECRET_MARKER!r}); generate real values with "
            "`uv run python scripts/generate_env.py`"
        )


def connect_arguments(database_url: str) -> dict[str, Any]:
    """asyncpg.connect() arguments from a SQLAlchemy URL (postgresql+asyncpg://...)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    return {
        "host": url.host,
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "database": url.database,
    }


async def wait_for_postgres(database_url: str, wait_seconds: float) -> Any:
    """A connection to the service's database, retrying while PostgreSQL is not up yet."""
    import asyncpg

    arguments = connect_arguments(database_url)
    where = f"{arguments['host']}:{arguments['port']}/{arguments['database']}"
    deadline = time.monotonic() + wait_seconds
    delay = 0.5
    while True:
        try:
            return await asyncpg.connect(**arguments, timeout=5)
        except (
            asyncpg.InvalidAuthorizationSpecificationError,  # bad password, unknown role
            asyncpg.InvalidCatalogNameError,  # no such database
            asyncpg.InsufficientPrivilegeError,  # CONNECT revoked
        ) as exc:
            # Retrying cannot help. The usual cause: PostgreSQL creates roles and databases
            # only when its volume is empty, so a regenerated .env no longer matches them.
            raise StartupError(
                f"PostgreSQL at {where} refused {arguments['user']!r}: {exc}. If .env was "
                "regenerated after the first start, the postgres volume still holds the old "
                "roles: `docker compose down -v` (this deletes all data) and start again."
            ) from exc
        except (OSError, TimeoutError, asyncpg.PostgresConnectionError,
                asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:  # fmt: skip
            if time.monotonic() + delay > deadline:
                raise StartupError(
                    f"PostgreSQL at {where} not reachable after {wait_seconds:.0f}s: {exc!r}"
                ) from exc
            log("INFO", "waiting for PostgreSQL", target=where, error=repr(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def migrate(
    database_url: str,
    *,
    service_dir: Path = SERVICE_DIR,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    alembic: Sequence[str] = (sys.executable, "-m", "alembic"),
    environ: Mapping[str, str] | None = None,
) -> None:
    """`alembic upgrade head` in `service_dir`, one container of the service at a time.

    Alembic gets this process's environment (DATABASE_URL and the rest of the settings),
    or `environ` when given.
    """
    connection = await wait_for_postgres(database_url, wait_seconds)
    try:
        # Session-level lock: held until released or the connection closes, whatever
        # Alembic does in its own connection meanwhile.
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        log("INFO", "applying migrations", command="alembic upgrade head")
        process = await asyncio.create_subprocess_exec(
            *alembic, "upgrade", "head", cwd=service_dir, env=environ
        )
        if await process.wait() != 0:
            raise StartupError(f"`alembic upgrade head` failed (exit code {process.returncode})")
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await connection.close()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # As PID 1, Python ignores SIGTERM unless it handles it: `docker stop` during the
    # migration phase would otherwise wait 10 s for SIGKILL.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if argv and tuple(argv) not in {(phase,) for phase in PHASES}:
        os.execvp(argv[0], list(argv))  # noqa: S606 - the operator's own command
    phases = tuple(argv) or PHASES
    try:
        service = os.environ.get("SERVICE", "")
        if not service:
            raise StartupError("SERVICE is not set (the image sets it from the build arg)")
        refuse_development_values(os.environ)
        if "migrate" in phases:
            database_url = os.environ.get("DATABASE_URL", "")
            if not database_url:
                raise StartupError("DATABASE_URL is not set")
            wait_seconds = float(os.environ.get("MIGRATION_WAIT_SECONDS", DEFAULT_WAIT_SECONDS))
            asyncio.run(migrate(database_url, service_dir=SERVICE_DIR, wait_seconds=wait_seconds))
    except StartupError as exc:
        log("ERROR", "cannot start", error=str(exc))
        return 1
    if "serve" not in phases:
        log("INFO", "migrations applied")
        return 0
    # uvicorn's own default is 127.0.0.1 (trust nobody else); compose passes the gateway's IP.
    forwarded_allow_ips = normalised_hosts(os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"))
    log("INFO", "starting uvicorn", port=PORT, forwarded_allow_ips=forwarded_allow_ips)
    command = uvicorn_argv(service, forwarded_allow_ips)
    os.execvp(command[0], command)  # noqa: S606 - fixed argv
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
