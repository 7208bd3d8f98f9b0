"""Outlook conversation ids get their own indexed column (``synced_items.conversation_id``).

Processing looks up the threads a batch's replies continue (rule a) by message id and conversation id,
instead of loading every stored thread key at the start of each run. The column is filled from the facts
every email item already keeps.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("synced_items") as batch:
        batch.add_column(sa.Column("conversation_id", sa.String(length=200), nullable=True))
        batch.create_index("ix_synced_items_conversation_id", ["conversation_id"])
    items = sa.table("synced_items", sa.column("conversation_id", sa.String()), sa.column("facts", sa.JSON()))
    from_facts = items.c.facts["conversation_id"].as_string()
    op.execute(items.update().where(from_facts.is_not(None)).values(conversation_id=sa.func.substr(from_facts, 1, 200)))


def downgrade() -> None:
    with op.batch_alter_table("synced_items") as batch:
        batch.drop_index("ix_synced_items_conversation_id")
        batch.drop_column("conversation_id")
