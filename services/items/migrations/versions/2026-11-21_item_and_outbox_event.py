"""Items, with an index for every filter and sort of the list; the event outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 08:07:58.146652+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Trigram indexes serve `title ILIKE '%q%'`. pg_trgm ships with PostgreSQL (contrib) and is
    # a trusted extension: the service's role may create it in the database it owns.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    op.create_table(
        "item",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=5000), nullable=True),
        sa.Column("price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("price >= 0", name=op.f("ck_item_price_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item")),
    )
    # A user's own list, by each sort (ties broken by id).
    op.create_index("ix_item_owner_id_created_at", "item", ["owner_id", "created_at", "id"])
    op.create_index("ix_item_owner_id_title", "item", ["owner_id", "title", "id"])
    op.create_index("ix_item_owner_id_price", "item", ["owner_id", "price", "id"])
    # An administrator's list of everyone's items, by each sort.
    op.create_index("ix_item_created_at", "item", ["created_at", "id"])
    op.create_index("ix_item_title", "item", ["title", "id"])
    op.create_index("ix_item_price", "item", ["price", "id"])
    # `tags @> ARRAY[...]` and `title ILIKE '%q%'`.
    op.create_index("ix_item_tags", "item", ["tags"], postgresql_using="gin")
    op.create_index(
        "ix_item_title_trgm",
        "item",
        ["title"],
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops"},
    )

    op.create_table(
        "outbox_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("producer", sa.String(length=50), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_event")),
    )
    op.create_index(
        "ix_outbox_event_pending",
        "outbox_event",
        ["occurred_at"],
        postgresql_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_event_pending", table_name="outbox_event")
    op.drop_table("outbox_event")
    op.drop_table("item")  # its indexes go with it
    op.execute("DROP EXTENSION IF EXISTS pg_trgm")
