"""The database records changes to what the candidate index is read from (``crm_store.index_changes``), so a
process can keep its index between processing runs and rebuild it only after such a change.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

from crm_store.index_changes import install_sql, uninstall_sql
from sync_service.errors import ConfigError

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect
    version = dialect.server_version_info or ()
    if dialect.name == "postgresql" and tuple(version) < (13,):
        found = ".".join(str(part) for part in version)
        raise ConfigError(f"crm-sync needs PostgreSQL 13 or newer (this server is {found}): see docs/deployment.md")
    for statement in install_sql(dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in uninstall_sql(op.get_bind().dialect.name):
        op.execute(statement)
