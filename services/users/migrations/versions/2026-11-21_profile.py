"""Profiles keyed by the account id, indexed for the admin list and its search.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 08:12:21.950498+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Trigram indexes serve `ILIKE '%q%'`. pg_trgm ships with PostgreSQL (contrib) and is a
    # trusted extension: the service's role may create it in the database it owns.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    op.create_table(
        "profile",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("display_name", sa.String(length=64), nullable=True),
        sa.Column("bio", sa.String(length=500), nullable=True),
        sa.Column("avatar_url", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile")),
    )
    # The admin list, newest first, and its `q` over display name and email.
    op.create_index("ix_profile_created_at", "profile", ["created_at", "id"])
    op.create_index(
        "ix_profile_display_name_trgm",
        "profile",
        ["display_name"],
        postgresql_using="gin",
        postgresql_ops={"display_name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_profile_email_trgm",
        "profile",
        ["email"],
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops"},
    )


def downgrade() -> None:
    op.drop_table("profile")  # its indexes go with it
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
