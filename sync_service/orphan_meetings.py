"""The meetings and calls a removed mailbox alone carried (SPEC §4; audit 17b F4).

When ``mailbox remove`` forgets a mailbox, its copies of the items go with it. A meeting that no other mailbox
carries can no longer be known to happen: nothing will tell its move, its cancellation or that it took place.
Left ``planned``, it would be marked completed once its end passed and could complete a sales-process step by
itself. So, in the transaction that removes the mailbox:

- a meeting or call still ahead (its end not passed, status ``planned``) that no other mailbox carries becomes
  ``cancelled``, as when it is deleted at the source, and its item is marked ``deleted_at_source``: a copy that
  comes back (the mailbox added again, a colleague's calendar, an invitation) revives it
  (``pipeline.events.upsert_event``), and re-matching does not bring back such an item that was skipped;
- it is unlinked from the process step it was planned for (``process_step``), without running the process
  engine: the step's own planned activity stays, for the rep to do, and the stage does not end early — a
  meeting deleted at the source does end it, but a mailbox that was removed says nothing about the meeting.
  A copy that comes back is linked to the step again by the engine, as any planned meeting is;
- meetings that have ended, and all mail, stay as they are. An ended meeting still ``planned`` (the
  periodic completion had not reached it yet) is left planned: ``runner.due_activities`` completes only
  meetings some mailbox carries. Those are counted so that ``mailbox remove`` can say so.

Run it before the mailbox is deleted: it reads which items the mailbox's raw items carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, exists, select, update
from sqlalchemy.orm import Session, aliased

from crm_store.models import Activity, ItemSource, RawItem, SyncedItem
from crm_store.models.sync import DELETED

MEETING_TYPES = ("meeting", "call")


@dataclass(frozen=True)
class Orphaned:
    cancelled: int  # meetings and calls ahead, cancelled
    ended_planned: int  # ended but still planned: left so, no longer completed by themselves


def only_carried_by(mailbox_id: int) -> Select[int]:
    """The calendar items that this mailbox carries and no other mailbox does."""
    own, other = aliased(ItemSource), aliased(ItemSource)
    own_raw, other_raw = aliased(RawItem), aliased(RawItem)
    carried_here = (
        select(own.id)
        .join(own_raw, own_raw.id == own.raw_item_id)
        .where(own.item_id == SyncedItem.id, own_raw.mailbox_id == mailbox_id)
    )
    carried_elsewhere = (
        select(other.id)
        .join(other_raw, other_raw.id == other.raw_item_id)
        .where(other.item_id == SyncedItem.id, other_raw.mailbox_id != mailbox_id, other_raw.state != DELETED)
    )
    return select(SyncedItem.id).where(SyncedItem.kind == "event", exists(carried_here), ~exists(carried_elsewhere))


def cancel_orphaned_meetings(session: Session, mailbox_id: int, now: datetime) -> Orphaned:
    """Cancel the planned meetings and calls ahead that only this mailbox carries (see the module docstring)."""
    items = only_carried_by(mailbox_id)
    planned = session.execute(
        select(Activity.id, Activity.item_id, Activity.end_at).where(
            Activity.item_id.in_(items),
            Activity.status == "planned",
            Activity.origin == "sync",
            Activity.type.in_(MEETING_TYPES),
        )
    ).all()
    ahead = [(aid, item) for aid, item, end in planned if end is None or _utc(end) > now]
    # Items with no activity (a meeting skipped as unmatched) that lie ahead: marked too, so that re-matching
    # does not make a planned meeting of them that nothing carries.
    outer = aliased(SyncedItem)  # not correlated with the subquery's own synced_items
    skipped = session.execute(
        select(outer.id, outer.sent_at).where(
            outer.id.in_(items), ~exists(select(Activity.id).where(Activity.item_id == outer.id))
        )
    ).all()
    marked = [item for _aid, item in ahead if item is not None]
    marked += [item for item, start in skipped if start is not None and _utc(start) > now]
    for chunk in _chunks([aid for aid, _item in ahead]):
        session.execute(update(Activity).where(Activity.id.in_(chunk)).values(status="cancelled", process_step=None))
    for chunk in _chunks(marked):
        session.execute(update(SyncedItem).where(SyncedItem.id.in_(chunk)).values(deleted_at_source=True))
    return Orphaned(len(ahead), len(planned) - len(ahead))


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _utc(when: datetime) -> datetime:
    """Times read back from SQLite carry no zone; they are UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when
