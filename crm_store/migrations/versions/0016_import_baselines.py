"""What the CSV imports last set: ``opportunities.imported_stage`` and ``leads.imported_status``.

The opportunities and leads CSV files are master lists that sales ops import again and again, while the
process engine moves the same records on (a synced meeting completes a step: the next stage; a Lead management
stage sets the lead's status). Importing the unchanged file must change nothing (SPEC §5), and a stage or status
changed in the file must still be applied: the file's value wins only when it differs from what the file
last set for the record, which these columns remember (``sync_service.importers.last_import``).

Rows stored before this revision get NULL: no import has been recorded for them. The importer then infers what
the file last set: a stage the opportunity's history shows it at before (it has moved on since) and, for a lead
whose process runs or that an opportunity was made from, the stored status stands; see ``last_import``.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain nullable ADD COLUMNs (no table copy on SQLite).
    op.add_column("opportunities", sa.Column("imported_stage", sa.String(length=100), nullable=True))
    op.add_column("leads", sa.Column("imported_status", sa.String(length=100), nullable=True))


def downgrade() -> None:
    # Not a batch (table copy) on SQLite: copying these tables would cascade to the rows that refer to them.
    op.execute("ALTER TABLE leads DROP COLUMN imported_status")
    op.execute("ALTER TABLE opportunities DROP COLUMN imported_stage")
