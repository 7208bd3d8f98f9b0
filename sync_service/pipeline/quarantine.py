"""Quarantine: a raw item that cannot be used is kept with a one-line reason and can be retried."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import QuarantineEntry, RawItem
from crm_store.models.sync import QUARANTINED
from sync_service.pipeline.reasons import one_line


def quarantine(
    session: Session, raw: RawItem, reason: str, *, entry: QuarantineEntry | None = None, known: bool = False
) -> None:
    """Mark ``raw`` quarantined with ``reason`` (created once per raw item; later failures count retries).
    ``known``: the caller passes the item's existing entry (or None: it has none), so nothing is looked up."""
    raw.state = QUARANTINED
    text = one_line(reason)  # whatever the caller passes: one line, capped
    if not known:
        entry = session.scalar(select(QuarantineEntry).where(QuarantineEntry.raw_item_id == raw.id))
    if entry is None:
        session.add(
            QuarantineEntry(
                raw_item_id=raw.id,
                mailbox_id=raw.mailbox_id,
                folder=raw.folder,
                external_id=raw.external_id,
                reason=text,
            )
        )
    else:
        entry.reason, entry.retries = text, entry.retries + 1
