"""Canonical synced items: one per Message-ID (or content hash) / per iCalendar UID + recurrence id.

``SyncedItem.facts`` keeps the matching facts of every item (skipped ones too, so they can be matched again)
and, under ``"decision"``, the last decision taken for it: its rule and explanation (``match explain``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import ItemSource, SyncedItem
from sync_service.matching.model import ItemFacts, MatchDecision
from sync_service.pipeline.batch import BatchCache
from sync_service.values import Address


def email_key(message_id: str | None, sha256: str) -> str:
    return f"msg:{message_id.lower()}" if message_id else f"msg-sha:{sha256}"


def event_key(uid: str, recurrence_id: str | None) -> str:
    return f"evt:{uid}|{recurrence_id or ''}"


def get_or_create(
    session: Session, key: str, kind: str, cache: BatchCache | None = None
) -> tuple[SyncedItem, bool]:
    """The canonical item with this key, made when there is none (``True``). In a batch the lookup does not
    flush the batch's other rows and a new item is not flushed either (it has no id yet): the batch's cache
    knows the items it made."""
    if cache is None:
        item = session.scalar(select(SyncedItem).where(SyncedItem.dedupe_key == key))
    else:
        item = cache.made.get(key)
        if item is None and key in cache.events:
            item = cache.events[key]  # looked up with the batch's other events
        elif item is None:
            with session.no_autoflush:  # an item made earlier in this batch is in ``made``
                item = session.scalar(select(SyncedItem).where(SyncedItem.dedupe_key == key))
    if item is not None:
        return item, False
    item = SyncedItem(dedupe_key=key, kind=kind, facts={})
    session.add(item)
    if cache is None:
        session.flush()
    else:
        cache.made[key] = item
    return item, True


def find_item(session: Session, key: str, cache: BatchCache | None = None) -> SyncedItem | None:
    """The canonical item with this dedupe key: from the batch's cache when there is one, else the database."""
    if cache is not None:
        return cache.items.get(key)
    return session.scalar(select(SyncedItem).where(SyncedItem.dedupe_key == key))


def link_source(session: Session, item: SyncedItem, raw_item_id: int, cache: BatchCache | None = None) -> bool:
    """Record that a mailbox object carries the item; True when the link is new."""
    if cache is not None:
        if cache.carries(item, raw_item_id):
            return False
        session.add(ItemSource(item=item, raw_item_id=raw_item_id))  # no flush: the item may be new
        cache.linked(item, raw_item_id)
        return True
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
        "reply_to": [_addr(a) for a in f.reply_to],
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
        reply_to=tuple(a for a in (addr(p) for p in d.get("reply_to", [])) if a),
        subject=d.get("subject", ""),
        message_id=d.get("message_id"),
        in_reply_to=tuple(d.get("in_reply_to", ())),
        references=tuple(d.get("references", ())),
        conversation_id=d.get("conversation_id"),
        automated_reason=d.get("automated_reason"),
        phones=tuple(d.get("phones", ())),
        mailbox_owner=d.get("mailbox_owner"),
    )


DECISION_KEY = "decision"


def decision_to_json(decision: MatchDecision, at: datetime) -> dict[str, Any]:
    return {
        "at": at.isoformat(),
        "skip_reason": decision.skip_reason,
        "primary_account_id": decision.primary_account_id,
        "account_ids": list(decision.account_ids),
        "contact_ids": list(decision.contact_ids),
        "lead_id": decision.lead_id,
        "opportunity_id": decision.opportunity_id,
        "rule": decision.opportunity_rule,
        "review_candidates": list(decision.review_candidates),
        "explanation": list(decision.explanation),
    }


_SCALARS = ("skip_reason", "primary_account_id", "lead_id", "opportunity_id", "rule")
_SETS = ("account_ids", "contact_ids", "review_candidates")


def decision_outcome(stored: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """What a (stored) decision concluded, not how it was worded: equal outcomes link the same way."""
    if stored is None:
        return None
    return (
        *(stored.get(k) for k in _SCALARS),
        *(tuple(sorted(stored.get(k) or ())) for k in _SETS),
    )


def with_decision(facts: dict[str, Any] | None, decision: MatchDecision, at: datetime) -> dict[str, Any]:
    """The item's facts with this decision kept under ``"decision"`` (a new dict)."""
    return {**(facts or {}), DECISION_KEY: decision_to_json(decision, at)}


def record_decision(item: SyncedItem, decision: MatchDecision, at: datetime) -> None:
    """Keep the decision with the item's facts (a new dict, so the ORM sees the JSON change)."""
    item.facts = with_decision(item.facts, decision, at)


def stored_decision(item: SyncedItem) -> dict[str, Any] | None:
    return decision_in(item.facts)


def decision_in(facts: dict[str, Any] | None) -> dict[str, Any] | None:
    value = (facts or {}).get(DECISION_KEY)
    return value if isinstance(value, dict) else None
