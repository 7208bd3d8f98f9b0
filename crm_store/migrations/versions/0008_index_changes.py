"""The database records changes to what the candidate index is read from (``crm_store.index_changes``), so a
process can keep its index between processing runs and rebuild it only after such a change.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

from crm_store.index_changes import install_sql, uninstall_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in install_sql(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in uninstall_sql(op.get_bind().dialect.name):
        op.execute(statement)
