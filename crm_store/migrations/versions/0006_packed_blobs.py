"""Blob packs: the sync stage stores a fetched page's messages as one file (``blobs/packs/<name>.pack``)
instead of one file each; ``packed_blobs`` says where each blob is.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "packed_blobs",
        sa.Column("sha256", sa.String(length=64), primary_key=True),
        sa.Column("pack", sa.String(length=64), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("packed_blobs")
