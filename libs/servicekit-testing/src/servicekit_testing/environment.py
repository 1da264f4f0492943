"""The environment of a test run: a database name and a Redis port that belong to it alone.

They are chosen before the service is imported, because its settings read `DATABASE_URL`
and `REDIS_URL` at import; the plugin's fixtures then create exactly what was chosen.
"""

import os
import uuid

import httpx

from devstack.ports import free_port

ADMIN_DSN_ENV = "TEST_POSTGRES_ADMIN_DSN"
DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_NAME_ENV = "TEST_DATABASE_NAME"
REDIS_PORT_ENV = "TEST_REDIS_PORT"


def admin_dsn() -> str:
    """The server the run's database is created on, as a superuser may reach it."""
    return os.environ.get(ADMIN_DSN_ENV, DEFAULT_ADMIN_DSN)


def prepare_environment(service: str) -> None:
    """Point the service's settings at a database and a Redis that exist only for this run."""
    admin = httpx.URL(admin_dsn())
    database = f"test_{service}_{uuid.uuid4().hex[:10]}"
    os.environ[DATABASE_NAME_ENV] = database
    os.environ["DATABASE_URL"] = (
        f"postgresql+asyncpg://{admin.username or 'postgres'}@{admin.host}:{admin.port or 5432}"
        f"/{database}"
    )
    os.environ[REDIS_PORT_ENV] = str(free_port())
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{os.environ[REDIS_PORT_ENV]}/0"
    os.environ["ENVIRONMENT"] = "test"
    # Tests drive the relay and the consumer themselves, step by step.
    os.environ["RUN_EVENT_WORKERS"] = "false"
    os.environ["SERVICE_NAME"] = service


def prepared(name: str) -> str:
    """A value `prepare_environment` chose; a clear error when the conftest never called it."""
    try:
        return os.environ[name]
    except KeyError:
        raise RuntimeError(
            f"{name} is not set: call servicekit_testing.prepare_environment(<service>) at the "
            "top of the service's tests/conftest.py, before it imports the service"
        ) from None
