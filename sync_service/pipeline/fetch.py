"""Sync stage: list a folder's changes, fetch the bytes, store raw items and the cursor together.

State machine of one folder (persisted in ``FolderState``):

    initial ──page stored──▶ initial … ──last page──▶ incremental ──source invalidated──▶ resync ─▶ …

Network calls happen with no database session open; each page is written in ONE transaction together with
the cursor that covers it. A crash between pages resumes from the last stored cursor; re-stored items are
recognised by (mailbox, folder, external id, version) so nothing doubles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_store.db import transaction
from crm_store.models import FolderState, QuarantineEntry, RawItem
from crm_store.models.sync import DELETED, PENDING, QUARANTINED
from sync_service.bootstrap import App
from sync_service.connectors.base import ChangePage, Connector, ItemRef


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


def load_cursor(session: Session, mailbox_id: int, folder: str) -> str | None:
    state = session.scalar(
        select(FolderState).where(FolderState.mailbox_id == mailbox_id, FolderState.folder == folder)
    )
    return state.cursor if state else None


def _save_cursor(session: Session, mailbox_id: int, folder: str, cursor: str, final: bool) -> None:
    state = session.scalar(
        select(FolderState).where(FolderState.mailbox_id == mailbox_id, FolderState.folder == folder)
    )
    if state is None:
        state = FolderState(mailbox_id=mailbox_id, folder=folder)
        session.add(state)
    state.cursor = cursor
    state.stage = "incremental" if final else state.stage


def _store_items(session: Session, mailbox_id: int, folder: str, items: list[Fetched], limit: int) -> int:
    ids = [f.ref.external_id for f in items]
    existing = {
        r.external_id: r
        for r in session.scalars(
            select(RawItem).where(
                RawItem.mailbox_id == mailbox_id, RawItem.folder == folder, RawItem.external_id.in_(ids)
            )
        )
    }
    stored = 0
    for fetched in items:
        row = existing.get(fetched.ref.external_id)
        if row is not None and row.sha256 == fetched.sha256 and row.state != DELETED:
            continue  # the same bytes again (a replayed page): nothing to do
        if row is None:
            row = RawItem(mailbox_id=mailbox_id, folder=folder, external_id=fetched.ref.external_id)
            session.add(row)
        row.kind, row.version, row.sha256, row.size = (
            fetched.ref.kind,
            fetched.ref.version,
            fetched.sha256,
            fetched.size,
        )
        row.processed_at = None
        row.state = PENDING
        if fetched.sha256 is None:
            row.state = QUARANTINED
            session.flush()
            _quarantine_oversize(session, row, limit)
        stored += 1
    return stored


def _quarantine_oversize(session: Session, row: RawItem, limit: int) -> None:
    reason = f"item is {row.size} bytes, over the limit of {limit} bytes (CRM_MAX_MESSAGE_BYTES)"
    entry = session.scalar(select(QuarantineEntry).where(QuarantineEntry.raw_item_id == row.id))
    if entry is None:
        session.add(
            QuarantineEntry(
                raw_item_id=row.id,
                mailbox_id=row.mailbox_id,
                folder=row.folder,
                external_id=row.external_id,
                reason=reason,
            )
        )
    else:
        entry.reason = reason


def _mark_deleted(session: Session, mailbox_id: int, folder: str, external_ids: list[str] | None) -> int:
    """Deleted at the source: kept, flagged for processing (calendar items get cancelled)."""
    stmt = (
        update(RawItem)
        .where(RawItem.mailbox_id == mailbox_id, RawItem.folder == folder, RawItem.state != DELETED)
        .values(state=DELETED, processed_at=None)
    )
    if external_ids is not None:
        stmt = stmt.where(RawItem.external_id.in_(external_ids))
    return session.execute(stmt).rowcount or 0  # type: ignore[attr-defined]


def store_page(
    session: Session, mailbox_id: int, folder: str, page: ChangePage, items: list[Fetched], limit: int
) -> tuple[int, int]:
    deleted = 0
    if page.full_resync:
        deleted += _mark_deleted(session, mailbox_id, folder, None)
    if page.deletes:
        deleted += _mark_deleted(session, mailbox_id, folder, list(page.deletes))
    stored = _store_items(session, mailbox_id, folder, items, limit)
    _save_cursor(session, mailbox_id, folder, page.next_cursor, final=not page.more)
    return stored, deleted


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
        for raw in connector.fetch(folder, page.upserts):
            size = len(raw.data)
            sha = app.blobs.put(raw.data) if size <= limit else None
            items.append(Fetched(raw.ref, sha, size))
        with transaction(app.sessions) as session:
            stored, deleted = store_page(session, mailbox_id, folder, page, items, limit)
        result.stored += stored
        result.deleted += deleted
        result.pages += 1
        if on_page is not None:
            on_page(len(items))
        cursor = page.next_cursor
        if not page.more:
            return result
