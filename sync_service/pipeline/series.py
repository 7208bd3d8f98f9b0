"""Recurring series slide with the sync window (SPEC §4: each occurrence inside the window is an activity).

A series is expanded when its calendar object is processed, inside the window of that moment. The bytes of
an ``.ics`` file, a CalDAV resource, a feed or an invitation email do not change as days pass, so the sync
stage never stores them again — yet every day occurrences enter the window ahead. (Exchange and Microsoft
Graph are different: their connectors list each occurrence over a window anchored on the day and deliver
new bytes when the day changes, ``connectors/ews.py``, ``connectors/graph.py``.)

So every raw item that holds a recurring series records how far it was expanded: the end of the window it
was processed in (``RawItem.expanded_to``, written with the item, ``note_expanded``). Once a UTC day — when
the window as of the start of today reaches beyond that (``due_before``) — the processing expands it again
from its stored bytes (``refresh_series``): the occurrences that entered the window (moved and cancelled
occurrences and EXDATEs as the series says) become activities exactly as if the object had been processed
today; the occurrences it already carries are left as they are, and so are those that fell out of the
window behind (completed history). Nothing is cancelled here: the bytes did not change, so nothing was
deleted at the source — an occurrence the series no longer holds is cancelled when its new bytes are
processed, as before.

Cost: one indexed query per processing run; each series object is read and parsed again at most once a day.
A run over one mailbox refreshes that mailbox's items; the scheduler queues a processing run for each mailbox
with items due (``mailboxes_due``), so this also happens in the workers' mode when nothing new was fetched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from crm_store.db import lock_names, transaction
from crm_store.models import ItemSource, RawItem, SyncedItem
from crm_store.models.sync import DELETED, DONE
from sync_service.bootstrap import App
from sync_service.config import Settings
from sync_service.errors import ParseError
from sync_service.matching.load import build_index
from sync_service.matching.model import CandidateIndex
from sync_service.parsing.ical import parse_calendar
from sync_service.parsing.mime import parse_body
from sync_service.pipeline.advance import advance_scope
from sync_service.pipeline.context import ProcessContext, ProcessStats
from sync_service.pipeline.emails import ITIP_UPDATES
from sync_service.pipeline.events import upsert_event
from sync_service.pipeline.items import event_key
from sync_service.values import CalendarEvent, ParsedCalendar, SyncWindow

log = logging.getLogger(__name__)

CHUNK = 100  # due raw items read per query
LOCKS_AT_MOST = 256  # as ``process.EVENT_LOCKS_AT_MOST``: more series than this in one object run unlocked


def note_expanded(ctx: ProcessContext, raw: RawItem, calendars: Iterable[ParsedCalendar]) -> None:
    """After a calendar object was applied: record how far its series were expanded (``None``: it holds none).
    Only a change is written (an email item that is not an invitation never gets here)."""
    value = ctx.window.end if any(calendar.series for calendar in calendars) else None
    if raw.expanded_to != value:
        raw.expanded_to = value


def due_before(now: datetime, settings: Settings) -> datetime:
    """Items expanded up to a time before this are due: the end of the window as of the start of today (UTC).
    So each item is expanded again once a UTC day, on the first run of the day, and at once when the window
    was made longer (``CRM_SYNC_WINDOW_FUTURE_DAYS``)."""
    today = datetime.combine(now.astimezone(UTC).date(), clock(), UTC)
    return today + timedelta(days=settings.window_days_ahead)


def _due(before: datetime) -> Select[Any]:
    return select(RawItem.id).where(RawItem.expanded_to < before, RawItem.state == DONE)


def mailboxes_due(session: Session, now: datetime, settings: Settings) -> set[int]:
    """The mailboxes that have series to expand again (for the scheduler)."""
    due = _due(due_before(now, settings)).with_only_columns(RawItem.mailbox_id).distinct()
    return set(session.scalars(due))


@dataclass
class Refresh:
    """What ``refresh_series`` did: the counters are merged into the run's; ``done`` is False when it stopped at
    the deadline with items left."""

    stats: ProcessStats = field(default_factory=ProcessStats)
    items: int = 0  # raw items expanded again
    done: bool = True


def refresh_series(
    app: App,
    now: datetime,
    index: CandidateIndex,
    owners: dict[int, tuple[str, int]],
    *,
    mailbox_id: int | None = None,
    deadline: float | None = None,
) -> tuple[Refresh, CandidateIndex]:
    """Expand the due series again (of one mailbox, or all) inside today's window; each raw item in its own
    transaction. ``deadline`` (``time.monotonic()``): stop there with ``done`` False, after one item at least.
    Returns what was done and the candidate index (rebuilt after an item failed)."""
    result = Refresh()
    before, window = due_before(now, app.settings), app.window(now)
    after = 0
    while True:
        query = _due(before).where(RawItem.id > after).order_by(RawItem.id).limit(CHUNK)
        if mailbox_id is not None:
            query = query.where(RawItem.mailbox_id == mailbox_id)
        with app.sessions() as session:
            rows = session.execute(query.with_only_columns(RawItem.id, RawItem.kind, RawItem.sha256)).all()
        if not rows:
            return result, index
        stored = app.blobs.get_many(sha for _id, _kind, sha in rows if sha)
        for raw_id, kind, sha in rows:
            if after and deadline is not None and time.monotonic() >= deadline:  # at least one item per run
                result.done = False
                return result, index
            after = raw_id
            calendars = _parse(app, window, kind, stored.get(sha or ""), raw_id)
            index = _expand_item(app, now, window, index, owners, raw_id, sha, before, calendars, result)


def _parse(app: App, window: SyncWindow, kind: str, data: bytes | None, raw_id: int) -> list[ParsedCalendar]:
    """The calendars of a stored object as the processing reads them: a calendar item whole, an email's
    calendar parts that update meetings. An object that can no longer be read holds nothing (logged)."""
    settings = app.settings
    try:
        if data is None:
            raise ParseError("the stored bytes of this item are missing")
        if kind == "calendar":
            return [parse_calendar(data, window, max_occurrences=settings.max_occurrences)]
        if kind != "message":
            return []
        parts = parse_body(data, max_attachment_bytes=settings.max_attachment_bytes).calendar_parts
        found = (parse_calendar(part, window, max_occurrences=settings.max_occurrences) for part in parts)
        return [c for c in found if (c.method or "").upper() in ITIP_UPDATES]
    except Exception as error:  # the same bytes parsed before: only a missing file or a new parser's verdict
        log.warning("recurring series of raw item %s not expanded again: %s", raw_id, error)
        return []


def _expand_item(
    app: App,
    now: datetime,
    window: SyncWindow,
    index: CandidateIndex,
    owners: dict[int, tuple[str, int]],
    raw_id: int,
    sha: str | None,
    before: datetime,
    calendars: list[ParsedCalendar],
    result: Refresh,
) -> CandidateIndex:
    """One due raw item: its series' occurrences that it does not carry yet are applied, and it records the
    new window end (``None`` when it holds no series). A conflict with another run (a shared meeting) is tried
    once more; any other failure is logged, and the item waits for the next day (it is then read again)."""
    events = [event for calendar in calendars for event in calendar.events if event.uid in calendar.series]
    uids = sorted({uid for calendar in calendars for uid in calendar.series})
    settings = app.settings
    for attempt in (1, 2):
        counters, applied = ProcessStats(), False
        with transaction(app.sessions) as session:
            raw = session.get(RawItem, raw_id, with_for_update=True, populate_existing=True)
            if raw is None or raw.state != DONE or raw.sha256 != sha or raw.expanded_to is None:
                return index  # changed since it was read: its new bytes are processed as usual
            if raw.expanded_to >= before:
                return index  # another run did it meanwhile
            if uids:
                if len(uids) <= LOCKS_AT_MOST:  # the names the processing batches lock (``process._event_locks``)
                    lock_names(session, [f"event:{uid}" for uid in uids])
                owner_email, owner_id = owners.get(raw.mailbox_id, ("", 0))
                ctx = ProcessContext(
                    session, settings, app.blobs, index, now, window, counters, owner_email, owner_id,
                    advancing=advance_scope(session),
                )  # fmt: skip
                try:
                    with session.begin_nested():
                        _apply(ctx, raw, events, uids)
                    applied = True
                except (IntegrityError, OperationalError) as error:
                    log.info("series of raw item %s collided with another run (attempt %d): %s", raw_id, attempt, error)
                    # The savepoint rolled back: the index must not name what was made inside it.
                    index = build_index(session, settings.internal_domains, settings.phone_region, threads=False)
                    if attempt == 1:
                        continue
                except Exception:
                    log.exception("recurring series of raw item %s not expanded again", raw_id)
                    index = build_index(session, settings.internal_domains, settings.phone_region, threads=False)
            raw.expanded_to = window.end if uids else None
        if applied:
            result.stats.merge(counters)
            result.items += 1
        return index
    return index


def _apply(ctx: ProcessContext, raw: RawItem, events: Sequence[CalendarEvent], uids: list[str]) -> None:
    """Apply the series' occurrences this raw item does not carry yet. An invitation email
    whose meeting has a later invitation in the same mailbox is superseded: the later one expands it."""
    if raw.kind == "message":
        superseded = _superseded(ctx.session, raw, uids)
        events = [event for event in events if event.uid not in superseded]
    carried = set(
        ctx.session.scalars(
            select(SyncedItem.dedupe_key)
            .join(ItemSource, ItemSource.item_id == SyncedItem.id)
            .where(ItemSource.raw_item_id == raw.id, SyncedItem.kind == "event")
        )
    )
    for event in events:
        if event_key(event.uid, event.recurrence_id) not in carried:
            upsert_event(ctx, raw, event)


def _superseded(session: Session, raw: RawItem, uids: list[str]) -> set[str]:
    """The series of ``uids`` that a later invitation email of the same mailbox also holds (an email that
    carries occurrences of it and holds a series itself, not deleted)."""
    if not uids:
        return set()
    later = session.scalars(
        select(SyncedItem.ical_uid)
        .join(ItemSource, ItemSource.item_id == SyncedItem.id)
        .join(RawItem, RawItem.id == ItemSource.raw_item_id)
        .where(
            SyncedItem.ical_uid.in_(uids),
            RawItem.mailbox_id == raw.mailbox_id,
            RawItem.id > raw.id,
            RawItem.kind == "message",
            RawItem.state != DELETED,
            RawItem.expanded_to.is_not(None),
        )
        .distinct()
    )
    return {uid for uid in later if uid is not None}
