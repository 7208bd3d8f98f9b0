"""Calendar items → meeting / call activities (SPEC §4).

An ``.ics`` object from a mailbox is a full snapshot of what it holds: an event (or occurrence inside the
sync window) that it no longer contains was deleted at the source and its activity is cancelled — unless
another live source still carries it. Invitations by email are partial updates (never cancel by absence).
Occurrences that slid out of the window behind are left as they are; those that enter it ahead while the
object's bytes stay the same are added once a day by ``pipeline.series``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from crm_store.models import Activity, ItemSource, RawItem, SyncedItem
from crm_store.models.sync import DELETED
from sync_service.matching.decide import decide
from sync_service.matching.model import ItemFacts, LinkExclusions, MatchDecision
from sync_service.parsing.classify import event_activity_type, event_phone_numbers
from sync_service.pipeline.advance import activity_synced
from sync_service.pipeline.batch import UNKNOWN
from sync_service.pipeline.context import ProcessContext
from sync_service.pipeline.items import event_key, facts_to_json, get_or_create, link_source, record_decision
from sync_service.pipeline.links import apply_decision
from sync_service.values import Address, CalendarEvent

CANCELLED, COMPLETED, PLANNED = "cancelled", "completed", "planned"


def event_status(event: CalendarEvent, now: datetime) -> str:
    if event.cancelled:
        return CANCELLED
    return COMPLETED if event.end <= now else PLANNED


def _facts(ctx: ProcessContext, event: CalendarEvent) -> ItemFacts:
    sender = event.organizer or Address(ctx.owner_email)
    participants = tuple(a for a in dict.fromkeys(event.attendees) if a.email != sender.email)
    return ItemFacts(
        kind=event_activity_type(event),
        sender=sender,
        participants=participants,
        subject=event.summary,
        phones=event_phone_numbers(event),
        mailbox_owner=ctx.owner_email,
    )


def upsert_event(ctx: ProcessContext, raw: RawItem, event: CalendarEvent) -> SyncedItem:
    """Create or update the canonical item of an event carried by ``raw``, and its activity (unless skipped)."""
    item, created = get_or_create(ctx.session, event_key(event.uid, event.recurrence_id), "event", ctx.batch)
    if created:  # a new item has no sources and no activity yet: nothing to look up (nor flush)
        ctx.session.add(ItemSource(item=item, raw_item_id=raw.id))
        if ctx.batch is not None:
            ctx.batch.linked(item, raw.id)
    else:
        # In a batch: from what it knows, no query. An item made earlier in the batch has no id yet, and
        # needs none: the batch knows its activity and that activity's links (``BatchCache.known``).
        link_source(ctx.session, item, raw.id, ctx.batch)
    if not created and event.sequence < item.sequence:
        return item  # an older version of the event (e.g. a stale copy in another calendar)
    facts = _facts(ctx, event)
    item.ical_uid, item.recurrence_id, item.sequence = event.uid, event.recurrence_id, event.sequence
    item.subject, item.sent_at, item.facts = event.summary[:1000], event.start, facts_to_json(facts)
    item.deleted_at_source = False
    activity = None if created else _activity_of(ctx, item)
    decision = decide(facts, ctx.index, policy=ctx.settings.auto_create)
    if decision.skipped and activity is None:
        record_decision(item, decision, ctx.now)
        item.skip_reason = decision.skip_reason
        ctx.stats.skipped[decision.skip_reason or "?"] += 1
        return item
    write_event_activity(ctx, item, event, decision, activity)
    return item


def _activity_of(ctx: ProcessContext, item: SyncedItem) -> Activity | None:
    known = ctx.batch.activity_of(item) if ctx.batch is not None else UNKNOWN
    if known is not UNKNOWN:
        return known
    return ctx.session.scalar(select(Activity).where(Activity.item_id == item.id))


def write_event_activity(
    ctx: ProcessContext,
    item: SyncedItem,
    event: CalendarEvent,
    decision: MatchDecision,
    activity: Activity | None = None,
) -> Activity:
    """Create or update the meeting / call activity of an event and apply the decision: at sync, or when
    re-matching an event that was skipped as unmatched before. A skipped decision leaves the links of an
    existing activity as they are."""
    item.skip_reason = None
    new = activity is None
    if activity is None:
        activity = Activity(item=item, origin="sync")  # the item may not be flushed yet
        ctx.session.add(activity)
        if ctx.batch is not None:
            ctx.batch.event_activities[item.dedupe_key] = activity
        ctx.stats.logged += 1
    else:
        ctx.stats.updated += 1
    organizer = event.organizer or Address(ctx.owner_email)
    organizer_user = ctx.index.user_emails.get(organizer.email)
    activity.type, activity.subject = event_activity_type(event), event.summary[:1000]
    activity.start_at, activity.end_at, activity.all_day = event.start, event.end, event.all_day
    activity.status = event_status(event, ctx.now)
    activity.owner_id = organizer_user or activity.owner_id or ctx.owner_id
    activity.body = event.description[:100_000]
    if not decision.skipped:
        # A new activity has no links, exclusions or review item to read: they are saved with it.
        decision = apply_decision(ctx, activity, decision, LinkExclusions() if new else None, new=new)
    record_decision(item, decision, ctx.now)
    if activity.status == CANCELLED:
        ctx.stats.cancelled += 1
    activity_synced(ctx, activity)
    return activity


def apply_events(ctx: ProcessContext, raw: RawItem, events: Iterable[CalendarEvent], *, full_snapshot: bool) -> None:
    items = [upsert_event(ctx, raw, event) for event in events]
    if full_snapshot:
        ctx.session.flush()  # new items get their ids
        cancel_missing(ctx, raw, keep={item.id for item in items})


def cancel_missing(ctx: ProcessContext, raw: RawItem, keep: set[int]) -> None:
    """Cancel events this source carried before but not any more (deleted at the source)."""
    rows = ctx.session.execute(
        select(ItemSource, SyncedItem)
        .join(SyncedItem, SyncedItem.id == ItemSource.item_id)
        .where(ItemSource.raw_item_id == raw.id, SyncedItem.kind == "event")
    ).all()
    for source, item in rows:
        if item.id in keep:
            continue
        if item.sent_at is not None and item.sent_at < ctx.window.start:
            continue  # fell out of the sync window: not deleted, just no longer expanded
        ctx.session.delete(source)
        ctx.session.flush()
        if _still_carried(ctx, item.id):
            continue
        item.deleted_at_source = True
        activity = ctx.session.scalar(select(Activity).where(Activity.item_id == item.id))
        if activity is not None and activity.status != CANCELLED:
            activity.status = CANCELLED
            ctx.stats.cancelled += 1
            activity_synced(ctx, activity)


def _still_carried(ctx: ProcessContext, item_id: int) -> bool:
    return (
        ctx.session.scalar(
            select(ItemSource.id)
            .join(RawItem, RawItem.id == ItemSource.raw_item_id)
            .where(ItemSource.item_id == item_id, RawItem.state != DELETED)
            .limit(1)
        )
        is not None
    )
