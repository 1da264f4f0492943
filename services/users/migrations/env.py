"""Alembic environment of the users service (the shared async runner does the work)."""

from logging.config import fileConfig

from alembic import context

from servicekit.migrations import run_migrations
from users.models import metadata
from users.settings import settings

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

run_migrations(metadata, settings.DATABASE_URL)
