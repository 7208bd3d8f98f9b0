"""Process again the copies of skipped emails seen in several mailboxes.

Before this version an email that one mailbox's copy had skipped was never logged by another copy that should
have logged it: Bob's received copy looks all-internal without the Bcc that Alice's sent copy lists, or came
through a list (``List-Id``); Alice's copy then only counted as "already known". The processing now decides each
copy of a skipped email on its own (``sync_service.pipeline.emails``). This revision sets the copies of every
email that is skipped and was seen more than once back to pending, so the next processing run decides them
again: such an email is logged if any of its copies qualifies, and stays skipped otherwise. Nothing is fetched
again; only what was stored is read.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    raw = sa.table(
        "raw_items",
        sa.column("id", sa.Integer()),
        sa.column("state", sa.String()),
        sa.column("processed_at", sa.DateTime()),
    )
    sources = sa.table("item_sources", sa.column("item_id", sa.Integer()), sa.column("raw_item_id", sa.Integer()))
    items = sa.table(
        "synced_items",
        sa.column("id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("skip_reason", sa.String()),
    )
    seen_twice = sa.select(sources.c.item_id).group_by(sources.c.item_id).having(sa.func.count() > 1)
    copies = (
        sa.select(sources.c.raw_item_id)
        .join(items, items.c.id == sources.c.item_id)
        .where(items.c.kind == "email", items.c.skip_reason.is_not(None), items.c.id.in_(seen_twice))
    )
    again = raw.update().where(raw.c.state == "done", raw.c.id.in_(copies))
    op.execute(again.values(state="pending", processed_at=None))


def downgrade() -> None:
    pass  # processing again changes nothing that a downgrade would have to undo
