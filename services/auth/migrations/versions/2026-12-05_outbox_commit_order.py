"""The outbox's commit order: `seq`, taken at commit under the aggregate's lock, orders the relay.

Rows already there are numbered by `occurred_at`, the order the relay used before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 02:50:00.000000+00:00
"""

from collections.abc import Sequence

from servicekit.events.outbox_migrations import add_outbox_seq, drop_outbox_seq

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_seq()


def downgrade() -> None:
    drop_outbox_seq()
