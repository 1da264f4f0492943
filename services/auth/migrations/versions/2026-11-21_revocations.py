"""Revocations: the durable copy from which Redis is rebuilt if it loses its data.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 09:14:38.792155+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "revocation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("subject", sa.Uuid(), nullable=False),
        sa.Column("not_before", sa.Double(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revocation")),
    )
    op.create_index(op.f("ix_revocation_expires_at"), "revocation", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_revocation_expires_at"), table_name="revocation")
    op.drop_table("revocation")
