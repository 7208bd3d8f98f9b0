"""Recurring series slide with the sync window: each raw item that holds a recurring series records the end of
the window it was last expanded in (``raw_items.expanded_to``), and the processing expands it again once the
window has moved on (``sync_service.pipeline.series``).

Items stored before this revision did not record it. Every live calendar item, and every email that carries
a meeting (an invitation), is marked as expanded long ago, so the first processing run after the upgrade
reads each of them once more: those that hold a series get the occurrences that entered the window since
they were processed, the others are unmarked.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import crm_store.models.base

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

NOT_NULL = sa.text("expanded_to IS NOT NULL")
LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


def upgrade() -> None:
    # A plain ADD COLUMN (no table copy on SQLite: the raw items are the largest table).
    op.add_column(
        "raw_items", sa.Column("expanded_to", crm_store.models.base.UtcDateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_raw_items_expanded_to",
        "raw_items",
        ["expanded_to"],
        unique=False,
        sqlite_where=NOT_NULL,
        postgresql_where=NOT_NULL,
    )
    raw = sa.table(
        "raw_items",
        sa.column("id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("state", sa.String()),
        sa.column("expanded_to", crm_store.models.base.UtcDateTime(timezone=True)),
    )
    sources = sa.table("item_sources", sa.column("item_id", sa.Integer()), sa.column("raw_item_id", sa.Integer()))
    items = sa.table("synced_items", sa.column("id", sa.Integer()), sa.column("kind", sa.String()))
    invitations = (
        sa.select(sources.c.raw_item_id).join(items, items.c.id == sources.c.item_id).where(items.c.kind == "event")
    )
    op.execute(
        raw.update()
        .where(raw.c.state == "done", sa.or_(raw.c.kind == "calendar", raw.c.id.in_(invitations)))
        .values(expanded_to=LONG_AGO)
    )


def downgrade() -> None:
    op.drop_index("ix_raw_items_expanded_to", table_name="raw_items")
    # Not a batch (table copy) on SQLite: dropping the raw items' table would cascade to their item sources.
    op.execute("ALTER TABLE raw_items DROP COLUMN expanded_to")
