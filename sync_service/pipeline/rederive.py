"""After a person changed an activity's links (`review assign`, `activity link|unlink`, the dashboard).

What no person decided follows the change — the item is matched again, so e.g. the primary account or the
review queue is derived anew — and the process engine hears of the activity. An activity without a synced
item (made by a person or a process) is not matched; the process engine still hears of it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, cast, or_, select
from sqlalchemy.orm import Session

from crm_store.db import transaction
from crm_store.models import Activity, SyncedItem
from sync_service.bootstrap import App
from sync_service.matching.load import build_index
from sync_service.pipeline.advance import activity_synced
from sync_service.pipeline.context import ProcessContext, ProcessStats
from sync_service.pipeline.rematch import rematch


def rederive(app: App, activity_id: int, item_id: int | None, now: datetime) -> int:
    """Returns how many activities re-matching linked differently (the item's own, then its thread's later
    items: a reply follows the opportunity a person gave the message it answers, by rule a)."""
    if item_id is not None:
        relinked = rematch(app, now=now, item_ids=[item_id], notify_all=True).relinked
        with app.sessions() as session:
            later = thread_followers(session, item_id)
        if later:
            relinked += rematch(app, now=now, item_ids=later).relinked
        return relinked
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


def thread_followers(session: Session, item_id: int) -> list[int]:
    """The items sent after ``item_id`` that reply to or reference it, or share its Outlook conversation.

    References live only in the stored facts, so this scans them: it runs after a person's change, not per
    synced item."""
    item = session.get_one(SyncedItem, item_id)
    same_thread = []
    if item.message_id:
        same_thread.append(cast(SyncedItem.facts, Text).contains(item.message_id, autoescape=True))
    if item.conversation_id:
        same_thread.append(SyncedItem.conversation_id == item.conversation_id)
    if not same_thread or item.kind != "email":
        return []
    stmt = select(SyncedItem.id).where(SyncedItem.id != item_id, SyncedItem.kind == "email", or_(*same_thread))
    if item.sent_at is not None:
        stmt = stmt.where(or_(SyncedItem.sent_at.is_(None), SyncedItem.sent_at >= item.sent_at))
    return list(session.scalars(stmt))
