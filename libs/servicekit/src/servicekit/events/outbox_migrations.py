"""Alembic steps of the outbox table, which every publishing service's history holds.

Written once here, called by a revision in each history (auth, items): the table is
servicekit's, so its changes are too. A step, once released, never changes: a new change
is a new step.
"""

import sqlalchemy as sa
from alembic import op

_PENDING = "ix_outbox_event_pending"
_PENDING_WHERE = sa.text("published_at IS NULL")


def add_outbox_seq() -> None:
    """`seq`, the relay's order; rows already there numbered by `occurred_at` (the old order)."""
    op.add_column(
        "outbox_event",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
    )
    # The identity numbered existing rows 1..N in storage order; renumber them within 1..N.
    op.execute(
        "UPDATE outbox_event AS o SET seq = r.n FROM (SELECT id, row_number() OVER"
        " (ORDER BY occurred_at, id) AS n FROM outbox_event) AS r WHERE o.id = r.id"
    )
    op.drop_index(_PENDING, table_name="outbox_event")
    op.create_index(_PENDING, "outbox_event", ["seq"], postgresql_where=_PENDING_WHERE)


def drop_outbox_seq() -> None:
    op.drop_index(_PENDING, table_name="outbox_event")
    op.create_index(_PENDING, "outbox_event", ["occurred_at"], postgresql_where=_PENDING_WHERE)
    op.drop_column("outbox_event", "seq")
