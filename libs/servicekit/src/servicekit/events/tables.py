"""The base of servicekit's own tables, which reach a service's schema only when it asks.

The outbox and the processed-event record are defined once here, in a metadata of
their own; a service copies the ones it uses into its metadata with
`register_outbox(metadata)` / `register_processed_events(metadata)` in its models
module, so its Alembic history creates exactly those and importing a module adds none.
"""

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from servicekit.db import NAMING_CONVENTION

_platform = registry(metadata=sa.MetaData(naming_convention=NAMING_CONVENTION))


class PlatformTable(SQLModel, registry=_platform):
    """A table servicekit reads and writes; in no service's metadata until registered."""


def copy_into(metadata: sa.MetaData, model: type[PlatformTable]) -> sa.Table:
    """Add `model`'s table to a service's metadata (once), under the same name."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    if table.name in metadata.tables:
        return metadata.tables[table.name]
    return table.to_metadata(metadata)
