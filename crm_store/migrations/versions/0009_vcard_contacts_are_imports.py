"""Contacts imported from a vCard file are imports like those from a CSV file: their ``source`` becomes
``import`` (SPEC §5: ``source (import|sync|…)``). The downgrade leaves them so: which imports came from a vCard
file is not recorded anywhere else.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE contacts SET source = 'import' WHERE source = 'vcard'")


def downgrade() -> None:
    pass
