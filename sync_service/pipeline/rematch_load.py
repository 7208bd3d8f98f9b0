"""What re-matching reads for one batch, in a fixed number of queries (never one per item or per contact).

- ``load_batch``: the items as plain rows, and their activities' current links as plain ``LinkState`` values
  (items, activity rows, account and contact links, open review items, exclusions — one query each);
- ``owners_of``: the rep whose mailbox carries each item (the owner of activities created from it);
- ``find_events``: the calendar events of event items, read again from the calendar objects (or invitation
  emails) that carry them, each object parsed once per batch.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from crm_store.models import (
    Activity,
    ActivityAccount,
    ActivityContact,
    ItemSource,
    Mailbox,
    RawItem,
    ReviewItem,
    SyncedItem,
    User,
)
from crm_store.models.sync import DELETED
from sync_service.bootstrap import App
from sync_service.errors import ParseError
from sync_service.matching.model import LinkExclusions
from sync_service.parsing.ical import parse_calendar
from sync_service.parsing.mime import parse_body
from sync_service.pipeline.items import event_key
from sync_service.pipeline.link_state import LinkState
from sync_service.pipeline.links import load_exclusions
from sync_service.values import CalendarEvent, SyncWindow

Owner = tuple[str, int | None]  # the rep's email and user id


class ItemRow(NamedTuple):
    """A synced item as plain data: most items are only read (their links do not change)."""

    id: int
    kind: str
    dedupe_key: str
    message_id: str | None
    sha256: str | None
    skip_reason: str | None
    sent_at: datetime | None
    facts: dict[str, Any]


@dataclass
class BatchRows:
    items: dict[int, ItemRow] = field(default_factory=dict)
    activity_of: dict[int, int] = field(default_factory=dict)  # item id → activity id
    states: dict[int, LinkState] = field(default_factory=dict)  # activity id → its current links
    exclusions: dict[int, LinkExclusions] = field(default_factory=dict)  # activity id → removed by a person
    activity_owner: dict[int, int | None] = field(default_factory=dict)  # activity id → owner user id


def load_batch(session: Session, ids: list[int]) -> BatchRows:
    columns = select(*(getattr(SyncedItem, name) for name in ItemRow._fields)).where(SyncedItem.id.in_(ids))
    rows = BatchRows(items={row.id: ItemRow(*row) for row in session.execute(columns)})
    activities = session.execute(
        select(
            Activity.id,
            Activity.item_id,
            Activity.account_id,
            Activity.lead_id,
            Activity.opportunity_id,
            Activity.opportunity_manual,
            Activity.lead_manual,
            Activity.owner_id,
        ).where(Activity.item_id.in_(ids))
    ).all()
    activity_ids = [a.id for a in activities]
    auto_accounts, manual_accounts = _links(session, ActivityAccount, ActivityAccount.account_id, activity_ids)
    auto_contacts, manual_contacts = _links(session, ActivityContact, ActivityContact.contact_id, activity_ids)
    reviews = {
        activity_id: tuple(candidates)
        for activity_id, candidates in session.execute(
            select(ReviewItem.activity_id, ReviewItem.candidates).where(
                ReviewItem.activity_id.in_(activity_ids), ReviewItem.resolved_at.is_(None)
            )
        )
    }
    for a in activities:
        rows.activity_of[a.item_id] = a.id
        rows.activity_owner[a.id] = a.owner_id
        rows.states[a.id] = LinkState(
            auto_accounts=frozenset(auto_accounts[a.id]),
            auto_contacts=frozenset(auto_contacts[a.id]),
            manual_accounts=tuple(manual_accounts[a.id]),
            manual_contacts=frozenset(manual_contacts[a.id]),
            primary_account=a.account_id,
            lead=a.lead_id,
            opportunity=a.opportunity_id,
            opportunity_manual=a.opportunity_manual,
            lead_manual=a.lead_manual,
            review=reviews.get(a.id),
        )
    rows.exclusions = load_exclusions(session, activity_ids)
    return rows


def _links(
    session: Session,
    model: type[ActivityAccount] | type[ActivityContact],
    target: InstrumentedAttribute[int],
    activity_ids: list[int],
) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """activity id → automatic targets, and → manual targets (in the order they were added)."""
    auto: dict[int, list[int]] = defaultdict(list)
    manual: dict[int, list[int]] = defaultdict(list)
    if activity_ids:
        stmt = select(model.activity_id, target, model.manual).where(model.activity_id.in_(activity_ids))
        for activity_id, target_id, is_manual in session.execute(stmt.order_by(model.id)):
            (manual if is_manual else auto)[activity_id].append(target_id)
    return auto, manual


def owners_of(session: Session, item_ids: list[int]) -> dict[int, Owner]:
    """item id → the owner of the first mailbox that carries it."""
    if not item_ids:
        return {}
    rows = session.execute(
        select(ItemSource.item_id, User.email, User.id)
        .join(RawItem, RawItem.id == ItemSource.raw_item_id)
        .join(Mailbox, Mailbox.id == RawItem.mailbox_id)
        .join(User, User.id == Mailbox.owner_id)
        .where(ItemSource.item_id.in_(item_ids))
        .order_by(ItemSource.id)
    )
    owners: dict[int, Owner] = {}
    for item_id, email, user_id in rows:
        owners.setdefault(item_id, (email, user_id))
    return owners


def find_events(app: App, session: Session, items: list[ItemRow]) -> dict[int, CalendarEvent]:
    """item id → its event, read again from the live objects that carry it. Missing ones are left out."""
    if not items:
        return {}
    wanted = {item.dedupe_key: item for item in items}
    sources = session.execute(
        select(ItemSource.item_id, RawItem.kind, RawItem.sha256)
        .join(RawItem, RawItem.id == ItemSource.raw_item_id)
        .where(ItemSource.item_id.in_([i.id for i in items]), RawItem.state != DELETED, RawItem.sha256.is_not(None))
    ).all()
    by_blob: dict[tuple[str, str], list[ItemRow]] = defaultdict(list)
    by_id = {i.id: i for i in items}
    for item_id, kind, sha in sources:
        if sha:
            by_blob[(kind, sha)].append(by_id[item_id])
    found: dict[int, CalendarEvent] = {}
    for (kind, sha), carried in by_blob.items():
        if all(i.id in found for i in carried):
            continue
        for event in _events_in(app, kind, sha, _window(carried)):
            item = wanted.get(event_key(event.uid, event.recurrence_id))
            if item is not None:
                found.setdefault(item.id, event)
    return found


def _window(items: list[ItemRow]) -> SyncWindow:
    """A window just around the occurrences wanted, so a long series is not expanded for nothing."""
    starts = [i.sent_at for i in items if i.sent_at is not None]
    if not starts:
        raise ParseError("an event item without a start time")
    return SyncWindow(min(starts) - timedelta(days=1), max(starts) + timedelta(days=1))


def _events_in(app: App, kind: str, sha: str, window: SyncWindow) -> list[CalendarEvent]:
    try:
        data = app.blobs.get(sha)
    except (OSError, KeyError):
        return []
    settings = app.settings
    parts = [data]
    if kind == "message":  # an invitation email: its calendar parts
        parts = list(parse_body(data, max_attachment_bytes=settings.max_attachment_bytes).calendar_parts)
    events: list[CalendarEvent] = []
    for part in parts:
        events += parse_calendar(part, window, max_occurrences=settings.max_occurrences).events
    return events


def owner_from_facts(item: ItemRow, user_emails: dict[str, int]) -> Owner | None:
    email = (item.facts or {}).get("mailbox_owner")
    return (email, user_emails.get(email)) if email else None
