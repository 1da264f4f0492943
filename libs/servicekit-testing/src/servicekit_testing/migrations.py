"""Alembic driven from tests: the real migrations build the test database and are checked."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from servicekit.db import metadata


def alembic_config(service_dir: Path, database_url: str) -> Config:
    """The service's own alembic.ini, aimed at `database_url` instead of its settings."""
    config = Config(str(service_dir / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


async def upgrade_to_head(service_dir: Path, database_url: str) -> None:
    """Apply every migration; Alembic's env runs its own event loop, so in a thread of its own."""
    await asyncio.to_thread(command.upgrade, alembic_config(service_dir, database_url), "head")


def _schema_differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def migrations_round_trip(service_dir: Path, database_url: str) -> list[object]:
    """Upgrade to head, downgrade to base, upgrade again; return model/schema differences."""
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
