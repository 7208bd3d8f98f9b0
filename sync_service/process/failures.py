"""Automatic advancements that failed: kept in the quarantine, where admins look, until they go through.

A process that cannot run for a synced activity (an admin's edit broke its definition, say) must neither stop
the sync (SPEC §6) nor fail silently. The activity stays logged and the other processes still advance (each
runs in its own savepoint, ``service.activity_synced``); the failure becomes a quarantine entry, listed by
``crm-sync export quarantine``, counted by ``crm-sync status`` and shown on the dashboard:

- ``mailbox``, ``folder``: where the activity's item was seen first (none for an activity a person made);
- ``external_id``: ``activity:<id>`` — the entry names the activity, not a raw item: the item itself was
  used, there is nothing to fetch or parse again (so the dashboard offers no Retry button for it);
- ``reason``: ``process not advanced by <type> '<subject>': <opportunity or lead>: <error>``.

One entry per activity: a later failure of the same activity rewrites its reason and counts a retry. The
engine tries the activity again by itself (``service.retry_failed_advancements``, run with every
``complete_due``: at the end of each sync run and on the scheduler's round); once it goes through (the
definition was fixed) the missed advancement is applied and the entry is removed.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Activity, ItemSource, QuarantineEntry, RawItem
from sync_service.pipeline.reasons import one_line

PREFIX = "activity:"
REASON = "process not advanced"


def key(activity_id: int) -> str:
    return f"{PREFIX}{activity_id}"


def activity_id(entry: QuarantineEntry) -> int | None:
    """The activity an entry of this module is about; None for any other quarantine entry."""
    if entry.raw_item_id is not None or not entry.external_id.startswith(PREFIX):
        return None
    tail = entry.external_id[len(PREFIX) :]
    return int(tail) if tail.isdigit() else None


def entry_of(session: Session, activity_id: int) -> QuarantineEntry | None:
    return session.scalar(
        select(QuarantineEntry).where(
            QuarantineEntry.raw_item_id.is_(None), QuarantineEntry.external_id == key(activity_id)
        )
    )


def reason(activity: Activity, failures: list[str]) -> str:
    subject = (activity.subject or "").replace("\n", " ")[:120]
    return f"{REASON} by {activity.type} {subject!r}: " + "; ".join(failures)


def record(session: Session, activity: Activity, failures: list[str]) -> QuarantineEntry:
    """Create the activity's entry, or update it (a retry that failed again)."""
    text = one_line(reason(activity, failures))
    entry = entry_of(session, activity.id)
    if entry is not None:
        entry.reason, entry.retries = text, entry.retries + 1
        return entry
    seen = None
    if activity.item_id is not None:
        seen = session.execute(
            select(RawItem.mailbox_id, RawItem.folder)
            .join(ItemSource, ItemSource.raw_item_id == RawItem.id)
            .where(ItemSource.item_id == activity.item_id)
            .order_by(RawItem.id)
            .limit(1)
        ).first()
    entry = QuarantineEntry(
        raw_item_id=None,
        mailbox_id=seen[0] if seen else None,
        folder=seen[1] if seen else "",
        external_id=key(activity.id),
        reason=text,
    )
    session.add(entry)
    return entry
