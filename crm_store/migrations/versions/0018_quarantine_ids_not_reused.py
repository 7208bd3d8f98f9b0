"""Quarantine entry ids are never reused on SQLite: ``quarantine`` becomes an ``AUTOINCREMENT`` table.

An entry leaves the quarantine (its row is deleted) when a retry or a later sync gets its item through. SQLite
gives a new row the highest rowid + 1, so once the newest entry had left, the next one took its id, and
``crm-sync quarantine retry 7`` typed from an earlier listing (or a dashboard page left open) acted on another
item. With ``AUTOINCREMENT`` SQLite never hands out an id again (``sqlite_sequence``). PostgreSQL sequences never
did: nothing changes there.

SQLite cannot add ``AUTOINCREMENT`` to a table: the table is copied (batch mode). Nothing refers to quarantine
rows, so the copy cascades nowhere; ids already reused before this revision stay as they are, and the copy
starts the sequence after the highest id stored.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("quarantine", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("quarantine", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
