"""Sync stage: list a folder's changes, fetch the bytes, store raw items and the cursor together.

State machine of one folder (persisted in ``FolderState``):

    initial ──page stored──▶ initial … ──last page──▶ incremental ──source invalidated──▶ resync ─▶ …

A full resync round (the source invalidated its state: UIDVALIDITY changed, a sync token expired) re-lists
everything. Items it lists are stamped ``seen_at``; only when the round's LAST page is stored are the items it
did not list marked deleted. Deciding at the first page would cancel meetings for the length of the round
(and end process stages early) whenever processing runs between pages.

Network calls happen with no database session open; each page is written in ONE transaction together with
the cursor that covers it. A crash between pages resumes from the last stored cursor; re-stored items are
recognised by (mailbox, folder, external id, version) so nothing doubles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from crm_store.bulkload import insert_rows
from crm_store.db import one_of, transaction
from crm_store.models import FolderState, Mailbox, RawItem
from crm_store.models.sync import DELETED, PENDING
from sync_service.bootstrap import App
from sync_service.connectors.base import ChangePage, Connector, ItemRef
from sync_service.pipeline.quarantine import quarantine


@dataclass(frozen=True, slots=True)
class Fetched:
    ref: ItemRef
    sha256: str | None  # None: not stored (too large)
    size: int


@dataclass
class FolderResult:
    folder: str
    stored: int = 0
    deleted: int = 0
    pages: int = 0
    quarantined: int = 0  # items over CRM_MAX_MESSAGE_BYTES, quarantined as they were listed


def load_cursor(session: Session, mailbox_id: int, folder: str) -> str | None:
    state = session.scalar(
        select(FolderState).where(FolderState.mailbox_id == mailbox_id, FolderState.folder == folder)
    )
    return state.cursor if state else None


def _folder_state(session: Session, mailbox_id: int, folder: str) -> FolderState:
    state = session.scalar(
        select(FolderState).where(FolderState.mailbox_id == mailbox_id, FolderState.folder == folder)
    )
    if state is None:
        state = FolderState(mailbox_id=mailbox_id, folder=folder)
        session.add(state)
    return state


def _store_items(
    session: Session, mailbox_id: int, folder: str, items: list[Fetched], limit: int, now: datetime
) -> tuple[int, int]:
    """Store a page's items as raw items; returns how many were new or changed, and how many of those were
    quarantined for their size."""
    ids = [f.ref.external_id for f in items]
    existing = {
        r.external_id: r
        for r in session.scalars(
            select(RawItem).where(
                RawItem.mailbox_id == mailbox_id,
                RawItem.folder == folder,
                one_of(RawItem.external_id, ids, session.get_bind().dialect.name),
            )
        )
    }
    stored = quarantined = 0
    fresh: list[dict[str, object]] = []  # new items: one multi-row INSERT for the page (no ids needed back)
    for fetched in items:
        row = existing.get(fetched.ref.external_id)
        if row is not None and row.sha256 == fetched.sha256 and row.state != DELETED:
            row.seen_at = now
            continue  # the same bytes again (a replayed page): nothing to do
        if row is None and fetched.sha256 is not None:
            fresh.append(
                {
                    "mailbox_id": mailbox_id,
                    "folder": folder,
                    "external_id": fetched.ref.external_id,
                    "kind": fetched.ref.kind,
                    "version": fetched.ref.version,
                    "sha256": fetched.sha256,
                    "size": fetched.size,
                    "state": PENDING,
                    "processed_at": None,
                    "seen_at": now,
                }
            )
            stored += 1
            continue
        if row is None:
            row = RawItem(mailbox_id=mailbox_id, folder=folder, external_id=fetched.ref.external_id)
            session.add(row)
        row.kind, row.version, row.sha256, row.size = (
            fetched.ref.kind,
            fetched.ref.version,
            fetched.sha256,
            fetched.size,
        )
        row.processed_at, row.seen_at = None, now
        row.state = PENDING
        if fetched.sha256 is None:
            session.flush()
            reason = f"item is {row.size} bytes, over the limit of {limit} bytes (CRM_MAX_MESSAGE_BYTES)"
            quarantine(session, row, reason)
            quarantined += 1
        stored += 1
    if fresh:
        insert_rows(session, RawItem, fresh)  # no per-row ORM bookkeeping; COPY on PostgreSQL
    return stored, quarantined


def _mark_deleted(
    session: Session, mailbox_id: int, folder: str, external_ids: list[str] | None, unseen_since: datetime | None = None
) -> int:
    """Deleted at the source: kept, flagged for processing (calendar items get cancelled)."""
    stmt = (
        update(RawItem)
        .where(RawItem.mailbox_id == mailbox_id, RawItem.folder == folder, RawItem.state != DELETED)
        .values(state=DELETED, processed_at=None)
    )
    if external_ids is not None:
        stmt = stmt.where(RawItem.external_id.in_(external_ids))
    if unseen_since is not None:
        stmt = stmt.where(or_(RawItem.seen_at.is_(None), RawItem.seen_at < unseen_since))
    return session.execute(stmt).rowcount or 0  # type: ignore[attr-defined]


def store_page(
    session: Session, mailbox_id: int, folder: str, page: ChangePage, items: list[Fetched], limit: int
) -> tuple[int, int, int]:
    """Store one page with its cursor; returns (new or changed, deleted at the source, quarantined)."""
    now = datetime.now(UTC)
    state = _folder_state(session, mailbox_id, folder)
    if page.full_resync:
        state.stage, state.resync_started_at = "resync", now
    deleted = _mark_deleted(session, mailbox_id, folder, list(page.deletes)) if page.deletes else 0
    stored, quarantined = _store_items(session, mailbox_id, folder, items, limit, now)
    state.cursor = page.next_cursor
    if not page.more:
        if state.stage == "resync" and state.resync_started_at is not None:
            deleted += _mark_deleted(session, mailbox_id, folder, None, unseen_since=state.resync_started_at)
        state.stage, state.resync_started_at = "incremental", None
    if stored:  # counted with the page it covers: exact even when a sync is killed half-way
        session.execute(
            update(Mailbox).where(Mailbox.id == mailbox_id).values(items_synced=Mailbox.items_synced + stored)
        )
    return stored, deleted, quarantined


def sync_folder(
    app: App,
    mailbox_id: int,
    connector: Connector,
    folder: str,
    on_page: Callable[[int], None] | None = None,
) -> FolderResult:
    result = FolderResult(folder)
    limit = app.settings.max_message_bytes
    with app.sessions() as session:
        cursor = load_cursor(session, mailbox_id, folder)
    while True:
        page = connector.list_changes(folder, cursor, limit=app.settings.batch_size)
        items: list[Fetched] = []
        # The page's messages go into one pack file (a file per message costs more than its bytes); the
        # pack is in place before the transaction that records it with the raw items commits.
        pack = app.blobs.pack_writer() if app.blobs.packs else None
        store = pack.add if pack is not None else app.blobs.put
        with pack or contextlib.nullcontext():
            for raw in connector.fetch(folder, page.upserts):
                size = len(raw.data)
                items.append(Fetched(raw.ref, store(raw.data) if size <= limit else None, size))
            packed = pack.close() if pack is not None else []
        with transaction(app.sessions) as session:
            app.blobs.record_packed(session, packed)
            stored, deleted, quarantined = store_page(session, mailbox_id, folder, page, items, limit)
        result.stored += stored
        result.deleted += deleted
        result.quarantined += quarantined
        result.pages += 1
        if on_page is not None:
            on_page(len(items))
        cursor = page.next_cursor
        if not page.more:
            return result
