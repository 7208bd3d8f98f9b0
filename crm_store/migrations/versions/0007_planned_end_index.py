"""Due meetings and calls are found by a partial index on the planned activities' end time, instead of an
index on every activity's end time (which the search for due ones walked through the emails of).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PLANNED = sa.text("status = 'planned'")


def upgrade() -> None:
    op.drop_index("ix_activities_end_at", table_name="activities")
    op.create_index(
        "ix_activities_planned_end_at",
        "activities",
        ["end_at"],
        unique=False,
        sqlite_where=PLANNED,
        postgresql_where=PLANNED,
    )


def downgrade() -> None:
    op.drop_index("ix_activities_planned_end_at", table_name="activities")
    op.create_index("ix_activities_end_at", "activities", ["end_at"], unique=False)
