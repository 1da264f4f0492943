"""Alembic environment of the notifications service (the shared async runner does the work)."""

from logging.config import fileConfig

from alembic import context

from notifications.models import metadata
from notifications.settings import settings
from servicekit.migrations import run_migrations

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

run_migrations(metadata, settings.DATABASE_URL)
