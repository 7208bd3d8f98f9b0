"""Which opportunity participants the opportunities CSV put there: ``opportunity_participants.imported``.

The opportunities file is the master list of the participants it manages: a contact its Contacts cell no longer
lists is taken off the opportunity (``sync_service.importers.opportunities``). Imports are not the only source
of participants, though: an opportunity made from a lead (``Awaiting sale``) gets the lead's person as its
participant, and a file that happens to have a row for that opportunity must not take it away. So every row
says whether an import added it; the importer removes only those.

Rows stored before this revision: a participant of an opportunity made from a lead whose contact is the lead's
person — a contact made from the lead (``source = 'lead'``) or one with an address of the lead — was put there
by the conversion (``imported`` stays false); every other participant was put there by an import, the only other
way participants were ever added.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_participants = sa.table(
    "opportunity_participants",
    sa.column("opportunity_id", sa.Integer),
    sa.column("contact_id", sa.Integer),
    sa.column("imported", sa.Boolean),
)
_opportunities = sa.table("opportunities", sa.column("id", sa.Integer), sa.column("lead_id", sa.Integer))
_contacts = sa.table("contacts", sa.column("id", sa.Integer), sa.column("source", sa.String))
_contact_emails = sa.table("contact_emails", sa.column("contact_id", sa.Integer), sa.column("email", sa.String))
_lead_emails = sa.table("lead_emails", sa.column("lead_id", sa.Integer), sa.column("email", sa.String))


def upgrade() -> None:
    # A plain ADD COLUMN (no table copy on SQLite): a constant default fills the existing rows.
    op.add_column(
        "opportunity_participants", sa.Column("imported", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    lead_address = (
        sa.select(_contact_emails.c.contact_id)
        .join(_lead_emails, _lead_emails.c.email == _contact_emails.c.email)
        .where(_contact_emails.c.contact_id == _contacts.c.id, _lead_emails.c.lead_id == _opportunities.c.lead_id)
        .exists()
    )
    from_conversion = (
        sa.select(_opportunities.c.id)
        .where(
            _opportunities.c.id == _participants.c.opportunity_id,
            _contacts.c.id == _participants.c.contact_id,
            _opportunities.c.lead_id.is_not(None),
            sa.or_(_contacts.c.source == "lead", lead_address),
        )
        .exists()
    )
    op.execute(_participants.update().where(~from_conversion).values(imported=sa.true()))


def downgrade() -> None:
    # Not a batch (table copy) on SQLite: a plain DROP COLUMN, as 0011 and 0016 do.
    op.execute("ALTER TABLE opportunity_participants DROP COLUMN imported")
