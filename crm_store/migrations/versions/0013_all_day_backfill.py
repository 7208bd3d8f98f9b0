"""Mark the all-day events stored before revision 0011 (``activities.all_day``).

An all-day event has always been stored with ``start_at`` / ``end_at`` at the UTC midnights that bound its days
(``sync_service.parsing.ical``), so a synced meeting or call whose start and end are both UTC midnights, a
whole number of days apart, is one. Only a timed event in UTC running exactly from one midnight to another
would be taken for one, and that is an all-day event in all but name. Later processing of an event's calendar
item sets the flag from the event itself, as for every event since 0011.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import sqlalchemy as sa
from alembic import op

import crm_store.models.base

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_CHUNK = 500


def whole_days(start: datetime | None, end: datetime | None) -> bool:
    """Do ``start`` and ``end`` (UTC) bound whole days: both midnights, the end after the start?"""
    if start is None or end is None or end <= start:
        return False
    midnight = time(0, 0)
    return (
        start.timetz().replace(tzinfo=None) == midnight
        and end.timetz().replace(tzinfo=None) == midnight
        and ((end - start) % timedelta(days=1) == timedelta(0))
    )


def upgrade() -> None:
    activities = sa.table(
        "activities",
        sa.column("id", sa.Integer()),
        sa.column("type", sa.String()),
        sa.column("item_id", sa.Integer()),
        sa.column("start_at", crm_store.models.base.UtcDateTime(timezone=True)),
        sa.column("end_at", crm_store.models.base.UtcDateTime(timezone=True)),
        sa.column("all_day", sa.Boolean()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(activities.c.id, activities.c.start_at, activities.c.end_at).where(
            activities.c.type.in_(("meeting", "call")),
            activities.c.item_id.is_not(None),
            activities.c.all_day.is_(sa.false()),
        )
    )
    ids = [activity_id for activity_id, start, end in rows if whole_days(start, end)]
    for first in range(0, len(ids), _CHUNK):
        chunk = ids[first : first + _CHUNK]
        connection.execute(activities.update().where(activities.c.id.in_(chunk)).values(all_day=True))


def downgrade() -> None:
    pass  # the flags stay: revision 0011's column holds them, and they are true
