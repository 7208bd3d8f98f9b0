"""What a processing batch knows up front, read in three queries instead of several per item.

Before the batch runs: the canonical emails its messages name (by dedupe key), which of those each raw item
already carries, and the quarantine entries of its raw items. Emails created while the batch runs are added,
so a second copy of a message in the same batch is recognised without a query (and without a flush).

Only the optimistic pass (the whole batch in one savepoint) uses it. The item-by-item fallback runs without
it: after a per-item rollback the cache could name rows that no longer exist.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from crm_store.blobs import PackWriter
from crm_store.db import one_of
from crm_store.models import Activity, ItemSource, QuarantineEntry, RawItem, ReviewItem, SyncedItem
from crm_store.models.sync import DELETED, DONE
from sync_service.matching.model import LinkExclusions
from sync_service.pipeline.bulk import BulkEmails, PendingEmail
from sync_service.pipeline.links import load_exclusions
from sync_service.pipeline.new_contacts import NewContacts

CHUNK = 500  # ids per IN (...) list


class Unknown(enum.Enum):
    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN  # ``BatchCache.activity_of``: the batch does not know


@dataclass
class KnownLinks:
    """What ``links.apply_decision`` reads of an activity besides the activity itself."""

    exclusions: LinkExclusions  # the links a person removed
    review: ReviewItem | None  # its review item, open or resolved (None: it has none)


@dataclass
class BatchCache:
    items: dict[str, SyncedItem] = field(default_factory=dict)  # email dedupe key → item (stored or new)
    made: dict[str, SyncedItem] = field(default_factory=dict)  # events made in this batch, maybe not flushed
    # Events the batch's calendars and invitations name, when they were parsed ahead (``preparse``): looked up
    # in one query, ``None`` for an event not stored yet. Others are looked up one by one.
    events: dict[str, SyncedItem | None] = field(default_factory=dict)
    sources: set[tuple[int, int]] = field(default_factory=set)  # (item id, raw item id) already stored
    added: set[tuple[int, int]] = field(default_factory=set)  # (id() of the item object, raw item id) added
    # The activities of the events in ``events`` (None: none yet) and of those made in this batch; the stored
    # ones with their links loaded.
    event_activities: dict[str, Activity | None] = field(default_factory=dict)
    # … and what else applying a decision to them reads, kept up to date by ``links.apply_decision``: an
    # updated meeting is applied without a query, so without flushing the batch's other rows.
    known: dict[Activity, KnownLinks] = field(default_factory=dict)
    quarantined: dict[int, QuarantineEntry] = field(default_factory=dict)  # raw item id → its entry
    pending: dict[str, PendingEmail] = field(default_factory=dict)  # new emails of the batch, by dedupe key
    bulk: BulkEmails = field(default_factory=BulkEmails)  # … and their rows, until written
    # Raw items applied cleanly. Their new state is written by one UPDATE per state at the batch's end, not by
    # dirtying each ORM object: every query of the batch autoflushes, and each flush would write the raw
    # items finished since the one before (a third of the processing stage's flushing, measured).
    finished: list[RawItem] = field(default_factory=list)
    contacts: NewContacts = field(default_factory=NewContacts)  # made without a lookup, checked at the end
    # The batch's attachments go into one pack file (``crm_store.blobs``), recorded at the batch's end.
    pack: PackWriter | None = None

    @classmethod
    def load(
        cls, session: Session, raws: Sequence[RawItem], email_keys: Iterable[str], event_keys: Iterable[str] = ()
    ) -> BatchCache:
        raw_ids = [raw.id for raw in raws]
        dialect = session.get_bind().dialect.name
        cache = cls()
        cache.events = dict.fromkeys(event_keys)
        for chunk in _chunks(sorted(set(email_keys) | cache.events.keys())):
            for item in session.scalars(select(SyncedItem).where(one_of(SyncedItem.dedupe_key, chunk, dialect))):
                if item.dedupe_key in cache.events:
                    cache.events[item.dedupe_key] = item
                else:
                    cache.items[item.dedupe_key] = item
        stored_events = {item.id: key for key, item in cache.events.items() if item is not None}
        cache.event_activities = dict.fromkeys(stored_events.values())
        for chunk in _chunks(sorted(stored_events)):
            query = select(Activity).where(one_of(Activity.item_id, chunk, dialect))
            links = (selectinload(Activity.account_links), selectinload(Activity.contact_links))
            for activity in session.scalars(query.options(*links)):
                if activity.item_id is not None:
                    cache.event_activities[stored_events[activity.item_id]] = activity
        cache._load_known(session, [a for a in cache.event_activities.values() if a is not None])
        for chunk in _chunks(raw_ids):
            rows = session.execute(
                select(ItemSource.item_id, ItemSource.raw_item_id).where(one_of(ItemSource.raw_item_id, chunk, dialect))
            )
            cache.sources.update((item_id, raw_id) for item_id, raw_id in rows)
            for entry in session.scalars(
                select(QuarantineEntry).where(one_of(QuarantineEntry.raw_item_id, chunk, dialect))
            ):
                if entry.raw_item_id is not None:
                    cache.quarantined[entry.raw_item_id] = entry
        return cache

    def _load_known(self, session: Session, activities: list[Activity]) -> None:
        dialect = session.get_bind().dialect.name
        exclusions: dict[int, LinkExclusions] = {}
        reviews: dict[int, ReviewItem] = {}
        ids = sorted(activity.id for activity in activities)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            exclusions.update(load_exclusions(session, chunk))
            for review in session.scalars(select(ReviewItem).where(one_of(ReviewItem.activity_id, chunk, dialect))):
                reviews[review.activity_id] = review
        for activity in activities:
            self.known[activity] = KnownLinks(exclusions.get(activity.id, LinkExclusions()), reviews.get(activity.id))

    def write_finished(self, session: Session, now: datetime) -> None:
        """Record the finished raw items in the database: ``done``, or still ``deleted`` for a deletion."""
        done = [raw.id for raw in self.finished if raw.state != DELETED]
        deleted = [raw.id for raw in self.finished if raw.state == DELETED]
        changes: list[tuple[list[int], dict[str, object]]] = [
            (done, {"state": DONE, "processed_at": now}),
            (deleted, {"processed_at": now}),
        ]
        dialect = session.get_bind().dialect.name
        for ids, values in changes:
            for chunk in _chunks(ids):
                session.execute(
                    update(RawItem).where(one_of(RawItem.id, chunk, dialect)).values(values),
                    execution_options={"synchronize_session": False},
                )

    def mark_finished(self, now: datetime) -> None:
        """Once the batch is committed to its savepoint: the loaded objects show what the database holds
        (without marking them changed, so nothing is written twice)."""
        for raw in self.finished:
            set_committed_value(raw, "processed_at", now)
            if raw.state != DELETED:
                set_committed_value(raw, "state", DONE)

    def remember(self, activity: Activity, exclusions: LinkExclusions, review: ReviewItem | None) -> None:
        """What the batch now knows of an activity whose links it applied."""
        self.known[activity] = KnownLinks(exclusions, review)

    def carries(self, item: SyncedItem, raw_id: int) -> bool:
        """True when this raw item is already recorded as a source of ``item``: stored before the batch, or
        added in it (``linked``)."""
        return (item.id is not None and (item.id, raw_id) in self.sources) or (id(item), raw_id) in self.added

    def linked(self, item: SyncedItem, raw_id: int) -> None:
        """This raw item was made a source of ``item`` in the batch (the item may have no id yet: the batch
        holds it, so its ``id()`` stays its own until the batch ends)."""
        self.added.add((id(item), raw_id))

    def activity_of(self, item: SyncedItem) -> Activity | Unknown | None:
        """The activity of an event the batch knows (``UNKNOWN``: look it up)."""
        key = item.dedupe_key
        if key in self.event_activities:
            return self.event_activities[key]
        return None if self.made.get(key) is item else UNKNOWN


def _chunks(values: list[str] | list[int]) -> Iterable[list[str] | list[int]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]
