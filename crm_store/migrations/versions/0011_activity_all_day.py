"""All-day calendar events keep their nature: ``activities.all_day`` is true for a meeting or call made from an event
that has dates rather than times (iCalendar ``VALUE=DATE``). Its ``start_at`` / ``end_at`` stay the UTC
midnights that bound the days; the flag says they are dates, and the export carries it (SPEC §5).

Activities stored before this revision get false here; revision 0013 marks the all-day events among them
from their stored bounds. (Processing sets the flag only when an item changes at the source, with new bytes:
neither ``crm-sync mailbox resync`` nor ``crm-sync match rematch`` nor the daily expansion of series would.)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no table copy on SQLite): a constant default fills the existing rows.
    op.add_column("activities", sa.Column("all_day", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    # Not a batch (table copy) on SQLite: dropping the activities' table would cascade to their links.
    op.execute("ALTER TABLE activities DROP COLUMN all_day")
