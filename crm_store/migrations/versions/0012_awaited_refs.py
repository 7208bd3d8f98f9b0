"""Replies that arrived before the message they answer: ``awaited_refs`` lists, for each logged email whose
opportunity no person chose, the Message-IDs it replies to or references that were not stored yet. Once such
a message is stored, the reply is matched again (``sync_service.pipeline.awaited``), so it can follow that
message's opportunity by rule a.

Emails stored before this revision are not listed: the next full re-matching (after any import) replays every
thread in order and links them.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "awaited_refs",
        sa.Column("ref", sa.String(length=1000), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"], ["synced_items.id"], name=op.f("fk_awaited_refs_item_id_synced_items"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ref", "item_id", name=op.f("pk_awaited_refs")),
    )
    op.create_index(op.f("ix_awaited_refs_item_id"), "awaited_refs", ["item_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_awaited_refs_item_id"), table_name="awaited_refs")
    op.drop_table("awaited_refs")
