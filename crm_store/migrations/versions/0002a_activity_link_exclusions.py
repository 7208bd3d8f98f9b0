"""activity link exclusions: links a person removed from an activity (SPEC §3.7)

Revision ID: 0002a
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_store.models.base

revision = "0002a"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity_link_exclusions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("created_at", crm_store.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
            name=op.f("fk_activity_link_exclusions_activity_id_activities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_link_exclusions")),
        sa.UniqueConstraint(
            "activity_id", "kind", "target_id", name=op.f("uq_activity_link_exclusions_activity_id_kind_target_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("activity_link_exclusions")
