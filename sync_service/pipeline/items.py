"""Canonical synced items: one per Message-ID (or content hash) / per iCalendar UID + recurrence id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import ItemSource, SyncedItem
from sync_service.matching.model import ItemFacts
from sync_service.values import Address


def email_key(message_id: str | None, sha256: str) -> str:
    return f"msg:{message_id.lower()}" if message_id else f"msg-sha:{sha256}"


def event_key(uid: str, recurrence_id: str | None) -> str:
    return f"evt:{uid}|{recurrence_id or ''}"


def get_or_create(session: Session, key: str, kind: str) -> tuple[SyncedItem, bool]:
    item = session.scalar(select(SyncedItem).where(SyncedItem.dedupe_key == key))
    if item is not None:
        return item, False
    item = SyncedItem(dedupe_key=key, kind=kind, facts={})
    session.add(item)
    session.flush()
    return item, True


def link_source(session: Session, item: SyncedItem, raw_item_id: int) -> bool:
    """Record that a mailbox object carries the item; True when the link is new."""
    exists = session.scalar(
        select(ItemSource.id).where(ItemSource.item_id == item.id, ItemSource.raw_item_id == raw_item_id)
    )
    if exists is not None:
        return False
    session.add(ItemSource(item_id=item.id, raw_item_id=raw_item_id))
    return True


def _addr(a: Address | None) -> list[str] | None:
    return [a.email, a.name] if a else None


def facts_to_json(f: ItemFacts) -> dict[str, Any]:
    return {
        "kind": f.kind,
        "sender": _addr(f.sender),
        "participants": [_addr(a) for a in f.participants],
        "subject": f.subject,
        "message_id": f.message_id,
        "in_reply_to": list(f.in_reply_to),
        "references": list(f.references),
        "conversation_id": f.conversation_id,
        "automated_reason": f.automated_reason,
        "phones": list(f.phones),
        "mailbox_owner": f.mailbox_owner,
    }


def facts_from_json(d: dict[str, Any]) -> ItemFacts:
    def addr(v: list[str] | None) -> Address | None:
        return Address(v[0], v[1]) if v else None

    return ItemFacts(
        kind=d["kind"],
        sender=addr(d.get("sender")),
        participants=tuple(a for a in (addr(p) for p in d.get("participants", [])) if a),
        subject=d.get("subject", ""),
        message_id=d.get("message_id"),
        in_reply_to=tuple(d.get("in_reply_to", ())),
        references=tuple(d.get("references", ())),
        conversation_id=d.get("conversation_id"),
        automated_reason=d.get("automated_reason"),
        phones=tuple(d.get("phones", ())),
        mailbox_owner=d.get("mailbox_owner"),
    )
