"""Calendar items → meeting / call activities (SPEC §4).

An ``.ics`` object from a mailbox is a full snapshot of what it holds: an event (or occurrence inside the
sync window) that it no longer contains was deleted at the source and its activity is cancelled — unless
another live source still carries it. Invitations by email are partial updates (never cancel by absence).
Occurrences that slid out of the window behind are left as they are; those that enter it ahead while the
object's bytes stay the same are added once a day by ``pipeline.series``.

The same meeting in several calendars (UID + recurrence id) is one item and one activity. A copy with a lower
SEQUENCE than the version the activity shows is older and changes nothing; with the same SEQUENCE, a copy
from another mailbox whose modification stamp is older (``pipeline.staleness``) is stale and changes nothing
either. Either way the mailbox is recorded as carrying the meeting.

Counters: ``updated`` counts an existing activity only when what it shows changed (times, status, type,
subject, body, owner, links); a known meeting seen in one more calendar object, unchanged, is ``duplicates``;
``cancelled`` counts an activity that becomes cancelled (not one that already was).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from crm_store.models import Activity, ItemSource, RawItem, SyncedItem
from crm_store.models.sync import DELETED
from sync_service.matching.decide import decide
from sync_service.matching.model import ItemFacts, LinkExclusions, MatchDecision
from sync_service.parsing.classify import event_activity_type, event_phone_numbers
from sync_service.pipeline.advance import activity_cancelled, activity_synced
from sync_service.pipeline.batch import UNKNOWN
from sync_service.pipeline.context import ProcessContext
from sync_service.pipeline.items import event_key, facts_to_json, get_or_create, link_source, record_decision
from sync_service.pipeline.links import apply_decision
from sync_service.pipeline.staleness import KEY as VERSION_KEY
from sync_service.pipeline.staleness import Version, from_json, is_stale, to_json, version_of
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
    carried_before = False
    if created:  # a new item has no sources and no activity yet: nothing to look up (nor flush)
        ctx.session.add(ItemSource(item=item, raw_item_id=raw.id))
        if ctx.batch is not None:
            ctx.batch.linked(item, raw.id)
    else:
        # In a batch: from what it knows, no query. An item made earlier in the batch has no id yet, and
        # needs none: the batch knows its activity and that activity's links (``BatchCache.known``).
        carried_before = not link_source(ctx.session, item, raw.id, ctx.batch)
    version = version_of(event, raw.mailbox_id)
    if not created and _older(event, version, item):
        if not carried_before:
            ctx.stats.duplicates += 1
        return item  # an older version of the event (e.g. a stale copy in another calendar)
    facts = _facts(ctx, event)
    item.ical_uid, item.recurrence_id, item.sequence = event.uid, event.recurrence_id, event.sequence
    item.subject, item.sent_at = event.summary[:1000], event.start
    item.facts = {**facts_to_json(facts), VERSION_KEY: to_json(version)}
    item.deleted_at_source = False
    activity = None if created else _activity_of(ctx, item)
    decision = decide(facts, ctx.index, policy=ctx.settings.auto_create)
    if decision.skipped and activity is None:
        record_decision(item, decision, ctx.now)
        item.skip_reason = decision.skip_reason
        ctx.stats.skipped[decision.skip_reason or "?"] += 1
        return item
    if not _write_activity(ctx, item, event, decision, activity).changed and not carried_before:
        ctx.stats.duplicates += 1  # a known meeting in one more calendar object, as it was
    return item


def _older(event: CalendarEvent, version: Version, item: SyncedItem) -> bool:
    """Is this copy older than the version the item holds: a lower SEQUENCE, or the same with an older stamp
    from another mailbox (``staleness``)?"""
    if event.sequence != item.sequence:
        return event.sequence < item.sequence
    stored = from_json((item.facts or {}).get(VERSION_KEY))
    return is_stale(version, stored, deleted_at_source=item.deleted_at_source)


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
    return _write_activity(ctx, item, event, decision, activity).activity


Shown = tuple[object, ...]


def shown(activity: Activity, *, links: bool) -> Shown:
    """What a synced meeting / call activity shows, as a value to compare: its fields, and its links."""
    fields = (
        activity.type,
        activity.subject,
        activity.start_at,
        activity.end_at,
        activity.all_day,
        activity.status,
        activity.owner_id,
        activity.body,
        activity.account_id,
        activity.lead_id,
        activity.opportunity_id,
    )
    if not links:
        return fields
    accounts = frozenset(link.account_id for link in activity.account_links)
    return (*fields, accounts, frozenset(link.contact_id for link in activity.contact_links))


@dataclass(frozen=True, slots=True)
class Written:
    activity: Activity
    changed: bool  # a new activity, or what an existing one shows changed


def _write_activity(
    ctx: ProcessContext,
    item: SyncedItem,
    event: CalendarEvent,
    decision: MatchDecision,
    activity: Activity | None,
) -> Written:
    item.skip_reason = None
    new, relink = activity is None, not decision.skipped
    if activity is None:
        activity = Activity(item=item, origin="sync")  # the item may not be flushed yet
        ctx.session.add(activity)
        if ctx.batch is not None:
            ctx.batch.event_activities[item.dedupe_key] = activity
        ctx.stats.logged += 1
        before: Shown | None = None
    else:  # its links are compared only when the decision rewrites them (they are loaded for it anyway)
        before = shown(activity, links=relink)
    was_cancelled = before is not None and activity.status == CANCELLED
    organizer = event.organizer or Address(ctx.owner_email)
    organizer_user = ctx.index.user_emails.get(organizer.email)
    activity.type, activity.subject = event_activity_type(event), event.summary[:1000]
    activity.start_at, activity.end_at, activity.all_day = event.start, event.end, event.all_day
    activity.status = event_status(event, ctx.now)
    activity.owner_id = organizer_user or activity.owner_id or ctx.owner_id
    activity.body = event.description[:100_000]
    if relink:
        # A new activity has no links, exclusions or review item to read: they are saved with it.
        decision = apply_decision(ctx, activity, decision, LinkExclusions() if new else None, new=new)
    record_decision(item, decision, ctx.now)
    changed = before is None or shown(activity, links=relink) != before
    if before is not None and changed:
        ctx.stats.updated += 1
    if activity.status == CANCELLED and not was_cancelled:
        ctx.stats.cancelled += 1
        if before is not None:  # a known meeting: it may have completed a step
            activity_cancelled(ctx, activity)
    activity_synced(ctx, activity)
    return Written(activity, changed)


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
            ctx.stats.updated += 1  # a status change, as when the calendar says the event is cancelled
            ctx.stats.cancelled += 1
            activity_cancelled(ctx, activity)
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
