"""After a person changed an activity's links (`review assign`, `activity link|unlink`, the dashboard).

What no person decided follows the change — the item is matched again, so e.g. the primary account or the
review queue is derived anew — and the process engine hears of the activity. An activity without a synced
item (made by a person or a process) is not matched; the process engine still hears of it.
"""

from __future__ import annotations

from datetime import datetime

from crm_store.db import transaction
from crm_store.models import Activity
from sync_service.bootstrap import App
from sync_service.matching.load import build_index
from sync_service.pipeline.advance import activity_synced
from sync_service.pipeline.context import ProcessContext, ProcessStats
from sync_service.pipeline.rematch import rematch


def rederive(app: App, activity_id: int, item_id: int | None, now: datetime) -> int:
    """Returns how many activities re-matching linked differently."""
    if item_id is not None:
        return rematch(app, now=now, item_ids=[item_id], notify_all=True).relinked
    with transaction(app.sessions) as session:
        activity = session.get_one(Activity, activity_id)
        index = build_index(session, app.settings.internal_domains, app.settings.phone_region, threads=False)
        owner = activity.owner.email if activity.owner else ""
        ctx = ProcessContext(
            session, app.settings, app.blobs, index, now, app.window(now), ProcessStats(), owner,
            activity.owner_id or 0,
        )  # fmt: skip
        activity_synced(ctx, activity)
    return 0
