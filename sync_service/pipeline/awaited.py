"""Replies that arrive before the message they answer (SPEC §3 rule a).

Mailboxes sync in any order: Bob's reply can be stored before Alice's message that it answers — the message
that carries the ``[OPP-id]`` token, say. Matched alone, the reply gets no opportunity (perhaps a review entry),
or another one by a later rule; had the message been there, rule a would have linked the reply to its
opportunity.

1. ``note_replies`` — at the end of each processing batch: a logged email of the batch whose opportunity no
   person chose is listed (``awaited_refs``) with the Message-IDs it replies to or references that are not
   stored yet.
2. ``resolved_replies`` — at the end of a processing run: the listed replies whose message is stored now. The
   workers then queue re-matching for them (``workers.tasks.rematch``), which follows rule a as it stands now.
3. ``forget_resolved`` — after re-matching: the entries whose message is stored are dropped. Until then the
   list stays in the database, so a re-matching lost with a worker is found again by the next run.

A message referenced but never synced keeps its entry; each is a short row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import Delete, delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crm_store.db import one_of
from crm_store.models import Activity, AwaitedRef, ItemSource, SyncedItem
from sync_service.values import MessageHeaders

MAX_REFS = 20  # per reply: its In-Reply-To and the nearest References (a long thread lists every ancestor)
_REF_LENGTH = 1000  # awaited_refs.ref
_CHUNK = 500


def message_refs(headers: MessageHeaders) -> list[str]:
    """The Message-IDs an email replies to or references, nearest first, without its own."""
    refs = dict.fromkeys((*headers.in_reply_to, *reversed(headers.references)))
    refs.pop(headers.message_id or "", None)
    return [ref for ref in refs if ref and len(ref) <= _REF_LENGTH][:MAX_REFS]


def note_replies(session: Session, headers: Mapping[int, MessageHeaders]) -> None:
    """List the logged emails among ``headers`` (raw item id → headers, a batch's) whose opportunity no person
    chose, with the messages they refer to that are not stored. Runs once the batch's rows are written."""
    refs_of = {raw_id: refs for raw_id, h in headers.items() if (refs := message_refs(h))}
    if not refs_of:
        return
    dialect = session.get_bind().dialect.name
    waiting: set[tuple[str, int]] = set()
    raw_ids = sorted(refs_of)
    for start in range(0, len(raw_ids), _CHUNK):
        rows = session.execute(
            select(ItemSource.raw_item_id, ItemSource.item_id)
            .join(Activity, Activity.item_id == ItemSource.item_id)
            .where(one_of(ItemSource.raw_item_id, raw_ids[start : start + _CHUNK], dialect))
            .where(Activity.opportunity_manual.is_(False))
        )
        waiting.update((ref, item_id) for raw_id, item_id in rows for ref in refs_of[raw_id])
    if not waiting:
        return
    refs = sorted({ref for ref, _ in waiting})
    stored: set[str] = set()
    for start in range(0, len(refs), _CHUNK):
        chunk = refs[start : start + _CHUNK]
        found = select(SyncedItem.message_id).where(one_of(SyncedItem.message_id, chunk, dialect))
        stored.update(ref for ref in session.scalars(found) if ref is not None)
    new = [{"ref": ref, "item_id": item_id} for ref, item_id in sorted(waiting) if ref not in stored]
    if new:
        # Another copy of the same reply, processed by another run, may list it too: once is enough.
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(insert(AwaitedRef).on_conflict_do_nothing(), new)


def resolved_replies(session: Session) -> list[int]:
    """The listed replies whose awaited message is stored now, oldest listed first."""
    stmt = select(AwaitedRef.item_id).where(exists().where(SyncedItem.message_id == AwaitedRef.ref)).distinct()
    return sorted(session.scalars(stmt))


def forget_resolved(session: Session, item_ids: Collection[int] | None = None) -> int:
    """Drop the entries whose message is stored now (of ``item_ids``; None: all): those replies were matched
    again since. Returns how many were dropped."""
    stmt = delete(AwaitedRef).where(exists().where(SyncedItem.message_id == AwaitedRef.ref))
    if item_ids is None:
        return _deleted(session, stmt)
    ids = sorted(item_ids)
    return sum(
        _deleted(session, stmt.where(AwaitedRef.item_id.in_(ids[start : start + _CHUNK])))
        for start in range(0, len(ids), _CHUNK)
    )


def _deleted(session: Session, stmt: Delete) -> int:
    result = session.execute(stmt.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
