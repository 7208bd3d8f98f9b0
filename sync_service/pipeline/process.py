"""Processing stage: pending raw items → canonical items → matching → activities and documents.

Each raw item runs inside its own savepoint: a parser error (or any unexpected error) quarantines that item
with a one-line reason and the batch goes on. A batch is one transaction. Emails of a batch are processed in
date order so that a reply finds the message it answers (opportunity rule a).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from crm_store.db import transaction
from crm_store.models import Mailbox, QuarantineEntry, RawItem, User
from crm_store.models.sync import DELETED, DONE, PENDING
from sync_service.bootstrap import App
from sync_service.errors import ParseError
from sync_service.matching.load import build_index
from sync_service.matching.model import CandidateIndex
from sync_service.parsing.ical import parse_calendar
from sync_service.parsing.mime import parse_headers
from sync_service.parsing.vcard import parse_vcards
from sync_service.pipeline.contacts import apply_card
from sync_service.pipeline.context import ProcessContext, ProcessStats
from sync_service.pipeline.emails import process_email
from sync_service.pipeline.events import apply_events, cancel_missing
from sync_service.pipeline.quarantine import quarantine

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _pending(mailbox_id: int | None, after: int, limit: int) -> object:
    stmt = (
        select(RawItem)
        .where(or_(RawItem.state == PENDING, and_(RawItem.state == DELETED, RawItem.processed_at.is_(None))))
        .where(RawItem.id > after)
        .order_by(RawItem.id)
        .limit(limit)
    )
    return stmt.where(RawItem.mailbox_id == mailbox_id) if mailbox_id is not None else stmt


def _handle(ctx: ProcessContext, raw: RawItem, data: bytes | None) -> list[str]:
    """Apply one raw item; returns the parts that were skipped (a calendar's broken events…)."""
    if raw.state == DELETED:
        if raw.kind == "calendar":
            cancel_missing(ctx, raw, keep=set())
        return []
    if data is None:
        raise ParseError("the stored bytes of this item are missing")
    if raw.kind == "message":
        process_email(ctx, raw, data)
        return []
    if raw.kind == "calendar":
        calendar = parse_calendar(data, ctx.window, max_occurrences=ctx.settings.max_occurrences)
        # A series that failed to parse or was capped is missing from the snapshot: never cancel by absence then.
        apply_events(ctx, raw, calendar.events, full_snapshot=not calendar.problems)
        return list(calendar.problems)
    if raw.kind == "contacts":
        cards, problems = parse_vcards(data)
        for card in cards:
            apply_card(ctx, card)
        return problems
    raise ParseError(f"unknown item kind {raw.kind!r}")


def _order(raws: list[RawItem], blobs: dict[int, bytes]) -> list[RawItem]:
    def when(raw: RawItem) -> tuple[int, datetime, int]:
        if raw.kind != "message" or raw.id not in blobs:
            return (0, _EPOCH, raw.id)
        try:
            date = parse_headers(blobs[raw.id]).date or _EPOCH
        except ParseError:
            date = _EPOCH
        return (1, date, raw.id)

    return sorted(raws, key=when)


def count_pending(session: Session, mailbox_id: int | None = None) -> int:
    stmt = (
        select(func.count())
        .select_from(RawItem)
        .where(or_(RawItem.state == PENDING, and_(RawItem.state == DELETED, RawItem.processed_at.is_(None))))
    )
    if mailbox_id is not None:
        stmt = stmt.where(RawItem.mailbox_id == mailbox_id)
    return int(session.scalar(stmt) or 0)


def process_pending(
    app: App,
    *,
    mailbox_id: int | None = None,
    now: datetime | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ProcessStats:
    """Process every pending raw item; ``on_progress(done, total)`` after each batch."""
    now = now or datetime.now(UTC)
    stats = ProcessStats()
    settings = app.settings
    with app.sessions() as session:
        index = build_index(session, settings.internal_domains, settings.phone_region)
        owners = {
            m: (e, u)
            for m, e, u in session.execute(
                select(Mailbox.id, User.email, User.id).join(User, User.id == Mailbox.owner_id)
            )
        }
        total = count_pending(session, mailbox_id)
    after, done = 0, 0
    while True:
        with transaction(app.sessions) as session:
            raws = list(session.scalars(_pending(mailbox_id, after, settings.batch_size)))  # type: ignore[call-overload]
            if not raws:
                return stats
            after = raws[-1].id
            blobs = _read_blobs(app, raws)
            for raw in _order(raws, blobs):
                owner_email, owner_id = owners.get(raw.mailbox_id, ("", 0))
                ctx = ProcessContext(
                    session, settings, app.blobs, index, now, app.window(now), stats, owner_email, owner_id
                )
                index = _process_one(ctx, raw, blobs.get(raw.id), now)
        done += len(raws)
        if on_progress is not None:
            on_progress(done, max(total, done))


def _read_blobs(app: App, raws: list[RawItem]) -> dict[int, bytes]:
    """The stored bytes of a batch. A missing file is left out: ``_handle`` quarantines that item alone."""
    found: dict[int, bytes] = {}
    for raw in raws:
        if raw.state == DELETED or not raw.sha256:
            continue
        try:
            found[raw.id] = app.blobs.get(raw.sha256)
        except OSError:
            log.warning("stored bytes of raw item %s (%s) are missing", raw.id, raw.sha256)
    return found


def _process_one(ctx: ProcessContext, raw: RawItem, data: bytes | None, now: datetime) -> CandidateIndex:
    session = ctx.session
    try:
        with session.begin_nested():
            problems = _handle(ctx, raw, data)
            raw.processed_at = now
            if raw.state != DELETED:
                raw.state = DONE
            stale = session.scalar(select(QuarantineEntry).where(QuarantineEntry.raw_item_id == raw.id))
            if stale is not None:
                session.delete(stale)
        if problems:  # applied, but parts of it were skipped: keep them visible and retryable
            quarantine(session, raw, "partly applied; skipped: " + "; ".join(problems))
            raw.state = DONE
            ctx.stats.quarantined += 1
        return ctx.index
    except ParseError as error:
        reason = str(error) or "unparsable item"
    except Exception as error:  # never crash a sync on one bad item
        log.exception("unexpected error processing raw item %s", raw.id)
        reason = f"internal error: {type(error).__name__}: {error}"
    quarantine(session, raw, reason)
    raw.processed_at = now
    ctx.stats.quarantined += 1
    # The savepoint rolled back: rebuild the index so it holds nothing created inside it.
    return build_index(session, ctx.settings.internal_domains, ctx.settings.phone_region)
