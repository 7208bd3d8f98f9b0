"""``crm-sync purge skipped``: purge the skipped mail older than the retention (``sync_service.retention`` decides
what goes), then compact the blob store (``crm_store.compact``).

Items are read and purged in chunks of ``CRM_BATCH_SIZE``, one short transaction each, so that syncs go on. Each
write re-checks what it was decided on: an item is purged only while it is still skipped as it was read and has
no activity, a raw item only while it is still processed and not quarantined — a sync that logged the email
meanwhile (a new copy qualified) wins. A dry run reads the same candidates and plans the compaction as if they
were purged (``_preview``); it writes nothing, so it holds no lock a sync would wait for.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from crm_store import compact
from crm_store.db import transaction
from crm_store.models import Activity, ItemSource, QuarantineEntry, RawItem, SyncedItem
from crm_store.models.sync import DELETED, DONE
from sync_service.bootstrap import App
from sync_service.retention import PURGED, RELEASED_STATES, Candidate, Copy, Verdict, judge, purged_facts

_ITEMS = cast(Table, SyncedItem.__table__)
_RAWS = cast(Table, RawItem.__table__)


@dataclass
class PurgeReport:
    days: int
    cutoff: datetime
    dry_run: bool = False
    purged: int = 0  # skipped emails whose facts and bytes were purged
    copies: int = 0  # their raw items (mailbox folder copies) whose bytes were released
    kept: Counter[str] = field(default_factory=Counter)  # old enough, but kept: why
    blobs: compact.CompactReport = field(default_factory=compact.CompactReport)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "older_than_days": self.days,
            "cutoff": self.cutoff.isoformat(),
            "items_purged": self.purged,
            "copies_purged": self.copies,
            "kept": dict(sorted(self.kept.items())),
            "blobs": self.blobs.as_dict(),
        }


def purge_skipped(
    app: App,
    days: int,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    min_age: float = compact.DEFAULT_MIN_AGE,
    rewrite_below: float = compact.REWRITE_BELOW,
    on_items: Callable[[int, int], None] | None = None,
    on_packs: Callable[[int, int], None] | None = None,
) -> PurgeReport:
    """Purge the skipped emails synced more than ``days`` days before ``now``, then compact the blob store
    (``min_age`` seconds, ``rewrite_below``: ``crm_store.compact``). ``on_items(done, total)`` after each chunk of
    items, ``on_packs(done, total)`` after each pack compacted."""
    now = now or datetime.now(UTC)
    report = PurgeReport(days, now - timedelta(days=days), dry_run)
    if dry_run:
        _preview(app, report, min_age, rewrite_below, on_items)
        return report
    for verdicts in _chunks(app, report, on_items):
        with transaction(app.sessions) as session:
            _write(session, verdicts, report, now)
    if app.blobs.packs:
        with app.sessions() as session:
            loose = _loose(app, session, min_age)
        report.blobs = compact.compact(
            app.blobs,
            app.sessions,
            released_states=RELEASED_STATES,
            loose=loose,
            min_age=min_age,
            rewrite_below=rewrite_below,
            on_progress=on_packs,
        )
    return report


def _preview(
    app: App,
    report: PurgeReport,
    min_age: float,
    rewrite_below: float,
    on_items: Callable[[int, int], None] | None,
) -> None:
    """A dry run reads only. What the purge would release counts as referenced by nothing while the compaction
    is planned, so the preview is what a run would do now (a run re-checks each row as it writes it)."""
    raw_ids: set[int] = set()
    item_ids: set[int] = set()
    digests: set[str] = set()
    for verdicts in _chunks(app, report, on_items):
        for candidate, verdict in verdicts:
            if verdict.purge_item:
                item_ids.add(candidate.item_id)
                digests.update([candidate.sha256] if candidate.sha256 else [])
            if verdict.purge_item or candidate.skip_reason == PURGED:
                raw_ids.update(verdict.raw_ids)
                digests.update(c.sha256 for c in candidate.copies if c.raw_id in verdict.raw_ids and c.sha256)
    report.purged, report.copies = len(item_ids), len(raw_ids)
    if not app.blobs.packs:
        return
    with app.sessions() as session:
        live = compact.referenced(session, digests, RELEASED_STATES, ignore_raw_items=raw_ids, ignore_items=item_ids)
        plan = compact.plan(
            app.blobs,
            session,
            released_states=RELEASED_STATES,
            loose=_loose(app, session, min_age),
            min_age=min_age,
            rewrite_below=rewrite_below,
            unreferenced=digests - live,
        )
    report.blobs = plan.preview()


def _chunks(
    app: App, report: PurgeReport, on_items: Callable[[int, int], None] | None
) -> Iterator[list[tuple[Candidate, Verdict]]]:
    """The candidates with their verdicts, ``CRM_BATCH_SIZE`` at a time, each chunk read in a session of its own."""
    with app.sessions() as session:
        total = int(session.scalar(select(func.count()).select_from(SyncedItem).where(_candidates(report.cutoff))) or 0)
    done, after = 0, 0
    while True:
        with app.sessions() as session:
            candidates = list(_load(session, report.cutoff, after, app.settings.batch_size))
        if not candidates:
            return
        after = candidates[-1].item_id
        verdicts = [(candidate, judge(candidate, report.cutoff)) for candidate in candidates]
        for candidate, verdict in verdicts:
            if verdict.kept and candidate.skip_reason != PURGED:
                report.kept[verdict.kept] += 1
        yield verdicts
        done += len(candidates)
        if on_items is not None:
            on_items(done, max(done, total))


def _candidates(cutoff: datetime) -> ColumnElement[bool]:
    """Skipped emails with no activity: synced before ``cutoff``; or purged ones with a copy not purged yet (the
    age is checked again by ``judge``, which is what decides)."""
    copies = select(ItemSource.id).join(RawItem, RawItem.id == ItemSource.raw_item_id)
    newer_copy = exists(copies.where(ItemSource.item_id == SyncedItem.id, RawItem.received_at >= cutoff))
    unpurged_copy = exists(copies.where(ItemSource.item_id == SyncedItem.id, RawItem.state != PURGED))
    return and_(
        SyncedItem.kind == "email",
        SyncedItem.skip_reason.is_not(None),
        ~exists().where(Activity.item_id == SyncedItem.id),
        or_(
            and_(SyncedItem.skip_reason != PURGED, SyncedItem.created_at < cutoff, ~newer_copy),
            and_(SyncedItem.skip_reason == PURGED, unpurged_copy),
        ),
    )


def _load(session: Session, cutoff: datetime, after: int, limit: int) -> Iterator[Candidate]:
    """The next ``limit`` candidates after item id ``after``, with their copies (three queries)."""
    items = session.execute(
        select(SyncedItem.id, SyncedItem.skip_reason, SyncedItem.created_at, SyncedItem.sha256)
        .where(_candidates(cutoff), SyncedItem.id > after)
        .order_by(SyncedItem.id)
        .limit(limit)
    ).all()
    if not items:
        return
    ids = [row.id for row in items]
    copies = session.execute(
        select(
            ItemSource.item_id,
            RawItem.id,
            RawItem.sha256,
            RawItem.state,
            RawItem.processed_at,
            RawItem.received_at,
            QuarantineEntry.id,
        )
        .join(RawItem, RawItem.id == ItemSource.raw_item_id)
        .outerjoin(QuarantineEntry, QuarantineEntry.raw_item_id == RawItem.id)
        .where(ItemSource.item_id.in_(ids))
    ).all()
    raw_ids = list({row[1] for row in copies})
    carried: dict[int, int] = {}
    for start in range(0, len(raw_ids), 500):
        part = raw_ids[start : start + 500]
        counts = session.execute(
            select(ItemSource.raw_item_id, func.count())
            .where(ItemSource.raw_item_id.in_(part))
            .group_by(ItemSource.raw_item_id)
        )
        carried.update((raw_id, int(n)) for raw_id, n in counts)
    by_item: dict[int, list[Copy]] = defaultdict(list)
    for item_id, raw_id, sha, state, processed_at, received_at, entry in copies:
        shared = carried.get(raw_id, 1) > 1
        by_item[item_id].append(
            Copy(raw_id, sha, state, processed_at is not None, received_at, entry is not None, shared)
        )
    for row in items:
        yield Candidate(row.id, row.skip_reason, row.created_at, row.sha256, tuple(by_item.get(row.id, ())))


def _write(session: Session, verdicts: list[tuple[Candidate, Verdict]], report: PurgeReport, now: datetime) -> None:
    """Purge what was decided, each row only if it is still as it was read. Writes first: on SQLite the
    transaction then holds the write lock from its first statement."""
    by_reason: dict[str, list[int]] = defaultdict(list)
    for candidate, verdict in verdicts:
        if verdict.purge_item:
            by_reason[candidate.skip_reason].append(candidate.item_id)
    purged: set[int] = set()
    for reason, ids in by_reason.items():
        stmt = (
            update(_ITEMS)
            .where(
                _ITEMS.c.id.in_(ids),
                _ITEMS.c.skip_reason == reason,
                ~exists().where(Activity.item_id == _ITEMS.c.id),
            )
            .values(
                skip_reason=PURGED,
                subject="",
                conversation_id=None,
                sha256=None,
                facts=purged_facts(reason, now),
                updated_at=now,
            )
            .returning(_ITEMS.c.id)
        )
        purged.update(session.scalars(stmt))
    report.purged += len(purged)
    raw_ids = [
        raw_id
        for candidate, verdict in verdicts
        if candidate.item_id in purged or candidate.skip_reason == PURGED
        for raw_id in verdict.raw_ids
    ]
    for start in range(0, len(raw_ids), 500):
        part = raw_ids[start : start + 500]
        result = session.execute(
            update(_RAWS)
            .where(
                _RAWS.c.id.in_(part),
                or_(_RAWS.c.state == DONE, and_(_RAWS.c.state == DELETED, _RAWS.c.processed_at.is_not(None))),
                ~exists().where(QuarantineEntry.raw_item_id == _RAWS.c.id),
            )
            .values(state=PURGED, processed_at=now)
        )
        report.copies += int(result.rowcount or 0)  # type: ignore[attr-defined]


def _loose(app: App, session: Session, min_age: float) -> list[str]:
    """The loose files the compaction releases (those among them no row refers to by then): the purged raw
    items' (at any age), and every other file no row refers to that is older than ``min_age`` — among them the
    fetched messages of a mailbox that was removed (``crm-sync mailbox remove`` deletes its raw items; what a
    logged email's documents or another mailbox's copy name stays)."""
    released = _released_digests(session)
    return [*released, *compact.unreferenced_loose(app.blobs, session, RELEASED_STATES, min_age=min_age)]


def _released_digests(session: Session) -> list[str]:
    """The hashes of purged raw items: the loose files among them are the compaction's to release."""
    return [d for d in session.scalars(select(RawItem.sha256).where(RawItem.state == PURGED).distinct()) if d]
