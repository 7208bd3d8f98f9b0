"""Full resync rounds: decide deletions at the end of the round, not at its first page.

Merges the 0002a (link exclusions) and 0002b (process engine) branches.

Revision ID: 0003
Revises: 0002a, 0002b
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_store.models.base

revision = "0003"
down_revision = ("0002a", "0002b")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("folder_states") as batch:
        batch.add_column(
            sa.Column("resync_started_at", crm_store.models.base.UtcDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("raw_items") as batch:
        batch.add_column(sa.Column("seen_at", crm_store.models.base.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("raw_items") as batch:
        batch.drop_column("seen_at")
    with op.batch_alter_table("folder_states") as batch:
        batch.drop_column("resync_started_at")
