"""Outbox traceparent: the W3C trace context an event carries to its consumers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 03:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "outbox_event",
        sa.Column("traceparent", sqlmodel.sql.sqltypes.AutoString(length=55), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("outbox_event", "traceparent")
