"""A batch's new emails written in bulk (multi-row INSERTs, COPY on PostgreSQL) instead of one ORM object per row.

New emails are most of what a sync writes: per email a canonical item and its source, and when it is logged an
activity, its account and contact links, its documents and perhaps a review item. The optimistic pass of a
batch collects them as plain rows (``PendingEmail``) and ``BulkEmails.write`` inserts them table by table,
with ``crm_store.bulkload`` (COPY on PostgreSQL, a multi-row INSERT elsewhere); the items and the
activities with their new ids known in order.

Rows are written at the batch's end, and before the process engine runs (it reads activities back from the
database). Nothing else in the batch reads them: a second copy of a pending email is recognised through the
batch cache. The item-by-item fallback and re-matching keep using the ORM objects; the bulk rows go in without
the ORM (no per-row bookkeeping).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from crm_store.bulkload import insert_rows, insert_rows_returning_ids
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
        item_ids = insert_rows_returning_ids(session, SyncedItem, [e.item for e in emails])
        for email, item_id in zip(emails, item_ids, strict=True):
            email.item_id = item_id
        logged = [e for e in emails if e.activity is not None]
        activity_rows = [{**e.activity, "item_id": e.item_id} for e in logged if e.activity is not None]
        for email, activity_id in zip(logged, insert_rows_returning_ids(session, Activity, activity_rows), strict=True):
            email.activity_id = activity_id
        insert_rows(session, ItemSource, [{"item_id": e.item_id, "raw_item_id": r} for e in emails for r in e.sources])
        insert_rows(
            session,
            ActivityAccount,
            [{"activity_id": e.activity_id, "account_id": a, "manual": False} for e in logged for a in e.accounts],
        )
        insert_rows(
            session,
            ActivityContact,
            [{"activity_id": e.activity_id, "contact_id": c, "manual": False} for e in logged for c in e.contacts],
        )
        insert_rows(session, Document, [{**d, "activity_id": e.activity_id} for e in logged for d in e.documents])
        insert_rows(
            session,
            ReviewItem,
            [
                {"activity_id": e.activity_id, "reason": e.review_reason, "candidates": e.review}
                for e in logged
                if e.review
            ],
        )
