"""Times as every table stores them: aware, in UTC (`utcnow`), in `timestamptz` columns
(`timestamp_field`)."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp_field(**kwargs: Any) -> Any:
    """A SQLModel field in a `timestamp with time zone` column; `Field`'s arguments otherwise."""
    return Field(sa_type=sa.DateTime(timezone=True), **kwargs)
