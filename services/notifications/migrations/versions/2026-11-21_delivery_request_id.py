"""Delivery request id: the request that caused a mail, repeated in its X-Request-ID header.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 09:17:41.605798+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "delivery",
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("delivery", "request_id")
