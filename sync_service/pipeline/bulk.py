"""A batch's new emails written with bulk INSERTs instead of one ORM object per row.

New emails are most of what a sync writes: per email a canonical item and its source, and when it is logged an
activity, its account and contact links, its documents and perhaps a review item. The optimistic pass of a
batch collects them as plain rows (``PendingEmail``) and ``BulkEmails.write`` inserts them table by table,
one multi-row statement each; the items and the activities with their new ids known in order
(``_insert_returning``).

Rows are written at the batch's end, and before the process engine runs (it reads activities back from the
database). Nothing else in the batch reads them: a second copy of a pending email is recognised through the
batch cache. The item-by-item fallback and re-matching keep using the ORM objects; the bulk rows go in as Core
INSERTs on the tables (no per-row ORM bookkeeping).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from crm_store.models import Activity, ActivityAccount, ActivityContact, Document, ItemSource, ReviewItem, SyncedItem


@dataclass
class PendingEmail:
    item: dict[str, Any]  # the synced_items row
    sources: list[int]  # raw item ids carrying it
    activity: dict[str, Any] | None = None  # None: skipped, kept as metadata only
    accounts: list[int] = field(default_factory=list)
    contacts: list[int] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    review: list[int] | None = None  # candidate opportunities of a new review item
    review_reason: str = ""
    item_id: int | None = None  # set once written
    activity_id: int | None = None


@dataclass
class BulkEmails:
    pending: list[PendingEmail] = field(default_factory=list)

    def add(self, email: PendingEmail) -> None:
        self.pending.append(email)

    def write(self, session: Session) -> None:
        """Insert every pending email (and clear the list); the ids are set on the ``PendingEmail``s."""
        emails, self.pending = self.pending, []
        if not emails:
            return
        item_ids = _insert_returning(session, SyncedItem, [e.item for e in emails])
        for email, item_id in zip(emails, item_ids, strict=True):
            email.item_id = item_id
        logged = [e for e in emails if e.activity is not None]
        activity_rows = [{**e.activity, "item_id": e.item_id} for e in logged if e.activity is not None]
        for email, activity_id in zip(logged, _insert_returning(session, Activity, activity_rows), strict=True):
            email.activity_id = activity_id
        _insert(session, ItemSource, [{"item_id": e.item_id, "raw_item_id": r} for e in emails for r in e.sources])
        _insert(
            session,
            ActivityAccount,
            [{"activity_id": e.activity_id, "account_id": a, "manual": False} for e in logged for a in e.accounts],
        )
        _insert(
            session,
            ActivityContact,
            [{"activity_id": e.activity_id, "contact_id": c, "manual": False} for e in logged for c in e.contacts],
        )
        _insert(session, Document, [{**d, "activity_id": e.activity_id} for e in logged for d in e.documents])
        _insert(
            session,
            ReviewItem,
            [
                {"activity_id": e.activity_id, "reason": e.review_reason, "candidates": e.review}
                for e in logged
                if e.review
            ],
        )


def _insert_returning(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` and return their new ids in the same order.

    PostgreSQL returns them from multi-row INSERTs. SQLite cannot say which returned id belongs to which row,
    so SQLAlchemy would insert one row per statement; instead the first row is inserted alone, which takes
    SQLite's single write lock and allocates the next id N, and the others get N+1, N+2 … explicitly: with
    the lock held no other writer can take them, and both of SQLite's id schemes (max(rowid)+1 and the
    AUTOINCREMENT sequence) allocate above N next."""
    if not rows:
        return []
    table = model.__table__
    if session.get_bind().dialect.name != "sqlite":
        return list(session.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows))
    first = int(session.scalars(insert(table).returning(table.c.id), rows[0]).one())
    ids = list(range(first, first + len(rows)))
    _insert(session, model, [{**row, "id": new_id} for row, new_id in zip(rows[1:], ids[1:], strict=True)])
    return ids


def _insert(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """One multi-row INSERT into the model's table, as a Core statement: the rows are plain column values
    (every row of a call has the same keys), so the ORM's per-row bookkeeping of a bulk insert is not needed.
    Column defaults (``created_at`` …) are filled in per row as the ORM would."""
    if rows:
        session.execute(insert(model.__table__), rows)
