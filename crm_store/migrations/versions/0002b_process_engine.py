"""process engine: lead processes and history, opportunity↔lead link, progress time, shipped-definition hash

Revision ID: 0002b
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_store.models.base

revision = "0002b"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=100), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=True),
        sa.Column("result", sa.String(length=200), nullable=True),
        sa.Column("activity_id", sa.Integer(), nullable=True),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("at", crm_store.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_id"], ["activities.id"], name=op.f("fk_lead_history_activity_id_activities"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_history_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_history")),
    )
    with op.batch_alter_table("lead_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lead_history_lead_id"), ["lead_id"], unique=False)

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("process_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("process_stage", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("current_step", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("advanced_at", crm_store.models.base.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_leads_process_id_process_definitions"), "process_definitions", ["process_id"], ["id"]
        )

    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("advanced_at", crm_store.models.base.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("lead_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_opportunities_lead_id"), ["lead_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_opportunities_lead_id_leads"), "leads", ["lead_id"], ["id"], ondelete="SET NULL"
        )

    with op.batch_alter_table("process_definitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shipped_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("process_definitions", schema=None) as batch_op:
        batch_op.drop_column("shipped_sha256")

    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_opportunities_lead_id_leads"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_opportunities_lead_id"))
        batch_op.drop_column("lead_id")
        batch_op.drop_column("advanced_at")

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_leads_process_id_process_definitions"), type_="foreignkey")
        batch_op.drop_column("advanced_at")
        batch_op.drop_column("current_step")
        batch_op.drop_column("process_stage")
        batch_op.drop_column("process_id")

    with op.batch_alter_table("lead_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_history_lead_id"))

    op.drop_table("lead_history")
