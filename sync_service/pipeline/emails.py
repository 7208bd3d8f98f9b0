"""Process one email: headers → facts → match; only a logged email has its body decoded.

Invitations (a ``text/calendar`` part with METHOD REQUEST / CANCEL / ADD) update the meeting they describe
instead of becoming an email activity (SPEC §4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crm_store.models import Activity, ItemSource, RawItem, SyncedItem
from sync_service.errors import ParseError
from sync_service.matching.decide import decide
from sync_service.matching.model import LinkExclusions, MatchDecision
from sync_service.parsing.ical import parse_calendar
from sync_service.parsing.mime import parse_body, parse_headers
from sync_service.pipeline.advance import activity_synced, pending_synced
from sync_service.pipeline.batch import BatchCache
from sync_service.pipeline.bulk import PendingEmail
from sync_service.pipeline.context import ProcessContext
from sync_service.pipeline.documents import email_files, store_email_documents
from sync_service.pipeline.email_facts import facts_of
from sync_service.pipeline.events import apply_events
from sync_service.pipeline.items import (
    email_key,
    facts_to_json,
    find_item,
    link_source,
    record_decision,
    with_decision,
)
from sync_service.pipeline.link_state import LinkState, wanted_state
from sync_service.pipeline.links import REVIEW_REASON, apply_decision, create_records
from sync_service.pipeline.preparse import Parsed
from sync_service.values import MessageBody, MessageHeaders, ParsedCalendar

ITIP_UPDATES = {"REQUEST", "CANCEL", "ADD"}


@dataclass(frozen=True)
class EmailPlan:
    """What one email will write, decided before anything is written (so a bad email fails cleanly)."""

    raw: RawItem
    headers: MessageHeaders
    key: str
    size: int
    existing: SyncedItem | None = None  # already known: only the new source is recorded
    pending: PendingEmail | None = None  # new in this batch, not yet written: the same
    invitations: tuple[ParsedCalendar, ...] = ()  # iTIP updates: they update meetings instead
    decision: MatchDecision | None = None
    body: MessageBody | None = None  # decoded only when the email is logged


def plan_email(
    ctx: ProcessContext,
    raw: RawItem,
    stored: bytes | Callable[[], bytes],
    headers: MessageHeaders | None = None,
    parsed: Parsed | None = None,
) -> EmailPlan:
    """Parse and decide without writing: every ``ParseError`` of an email is raised here. ``parsed``: what a
    helper process parsed of these bytes already (``preparse``); what it lacks is parsed here. ``stored``:
    the bytes, or how to read them for an email parsed ahead whole (``preparse.parsed_whole``), which needs
    them only when it is logged although the helper left its body out."""
    parsed = parsed or Parsed()
    content: Callable[[], bytes]
    if isinstance(stored, bytes):
        data = stored
        size, invitation, content = len(data), b"text/calendar" in data, (lambda: data)
    else:
        size, invitation, content = parsed.size, parsed.invitation, stored
    headers = headers or parsed.headers or parse_headers(content())
    if headers.sender_address is None and not headers.recipients:
        # Nothing to match on: a damaged message, not private mail. Quarantine it so an admin sees it.
        raise ParseError("no sender and no recipient could be read from the headers (damaged message?)")
    assert raw.sha256 is not None
    key = email_key(headers.message_id, raw.sha256)
    if invitation:
        invitations = _invitations(ctx, content, parsed.calendars)
        if invitations:
            return EmailPlan(raw, headers, key, size, invitations=invitations)
    pending = ctx.batch.pending.get(key) if ctx.batch is not None else None
    if pending is not None:
        return EmailPlan(raw, headers, key, size, pending=pending)
    existing = find_item(ctx.session, key, ctx.batch)
    if existing is not None:
        return EmailPlan(raw, headers, key, size, existing=existing)
    decision = decide(facts_of(headers, ctx.owner_email), ctx.index, policy=ctx.settings.auto_create)
    body = None
    if not decision.skipped:
        body = parsed.body or parse_body(content(), max_attachment_bytes=ctx.settings.max_attachment_bytes)
    return EmailPlan(raw, headers, key, size, decision=decision, body=body)


def _invitations(
    ctx: ProcessContext, content: Callable[[], bytes], parsed: tuple[ParsedCalendar, ...] | None
) -> tuple[ParsedCalendar, ...]:
    """The calendar parts of an invitation email that update a meeting (METHOD REQUEST / CANCEL / ADD)."""
    if parsed is None:
        body = parse_body(content(), max_attachment_bytes=ctx.settings.max_attachment_bytes)
        limit = ctx.settings.max_occurrences
        parsed = tuple(parse_calendar(part, ctx.window, max_occurrences=limit) for part in body.calendar_parts)
    return tuple(c for c in parsed if (c.method or "").upper() in ITIP_UPDATES)


def apply_email(ctx: ProcessContext, plan: EmailPlan) -> None:
    """Write what ``plan_email`` decided."""
    raw, headers = plan.raw, plan.headers
    for calendar in plan.invitations:
        apply_events(ctx, raw, calendar.events, full_snapshot=False)
    if plan.invitations:
        return
    if plan.existing is not None:
        link_source(ctx.session, plan.existing, raw.id, ctx.batch)
        ctx.stats.duplicates += 1
        return
    if plan.pending is not None:
        if plan.pending.item_id is None:
            plan.pending.sources.append(raw.id)
        else:  # written already (the process engine ran since)
            ctx.session.add(ItemSource(item_id=plan.pending.item_id, raw_item_id=raw.id))
        ctx.stats.duplicates += 1
        return
    assert plan.decision is not None
    if ctx.batch is not None:
        _queue_new(ctx, ctx.batch, plan)
        return
    facts = facts_of(headers, ctx.owner_email)
    item = SyncedItem(
        dedupe_key=plan.key,
        kind="email",
        message_id=headers.message_id,
        conversation_id=headers.conversation_id,
        subject=headers.subject[:1000],
        sent_at=headers.date,
        sha256=raw.sha256,
        facts=facts_to_json(facts),
    )
    ctx.session.add(item)
    if ctx.batch is not None:
        ctx.batch.items[plan.key] = item
    link_source(ctx.session, item, raw.id, ctx.batch)
    if plan.decision.skipped:
        record_decision(item, plan.decision, ctx.now)
        item.skip_reason = plan.decision.skip_reason
        ctx.stats.skipped[plan.decision.skip_reason or "?"] += 1
        return
    assert plan.body is not None
    _log(ctx, item, plan.size, headers, plan.body, plan.decision, new_item=True)


def _queue_new(ctx: ProcessContext, batch: BatchCache, plan: EmailPlan) -> None:
    """A new email in the optimistic pass: the same rows as the ORM path below, as plain rows for ``bulk``."""
    raw, headers, decision = plan.raw, plan.headers, plan.decision
    assert decision is not None
    item: dict[str, Any] = {
        "dedupe_key": plan.key,
        "kind": "email",
        "message_id": headers.message_id,
        "conversation_id": headers.conversation_id,
        "subject": headers.subject[:1000],
        "sent_at": headers.date,
        "sha256": raw.sha256,
        "skip_reason": decision.skip_reason if decision.skipped else None,
    }
    facts = facts_to_json(facts_of(headers, ctx.owner_email))
    email = PendingEmail(item, [raw.id])
    batch.pending[plan.key] = email
    batch.bulk.add(email)
    if decision.skipped:
        item["facts"] = with_decision(facts, decision, ctx.now)
        ctx.stats.skipped[decision.skip_reason or "?"] += 1
        return
    assert plan.body is not None and raw.sha256 is not None
    written = create_records(ctx, decision, LinkExclusions())  # a new activity: no exclusions, no history
    wanted = wanted_state(LinkState(), written)
    item["facts"] = with_decision(facts, written, ctx.now)
    when = headers.date or ctx.now
    email.activity = {
        "type": "email",
        "subject": headers.subject[:1000],
        "status": "completed",
        "direction": decision.direction,
        "start_at": when,
        "end_at": when,
        "owner_id": email_owner(headers, ctx.index.user_emails, ctx.owner_id or None),
        "account_id": wanted.primary_account,
        "lead_id": wanted.lead,
        "opportunity_id": wanted.opportunity,
        "body": plan.body.text[:100_000],
    }
    email.accounts = [a for a in dict.fromkeys(written.account_ids) if a in wanted.auto_accounts]
    email.contacts = [c for c in dict.fromkeys(written.contact_ids) if c in wanted.auto_contacts]
    email.documents = [
        {
            "sha256": f.sha256,
            "filename": f.filename,
            "media_type": f.media_type,
            "size": f.size,
            "kind": f.kind,
            "account_id": wanted.primary_account,
            "opportunity_id": wanted.opportunity,
        }
        for f in email_files(ctx, headers.subject[:1000], raw.sha256, plan.size, plan.body)
    ]
    if wanted.review:
        email.review, email.review_reason = list(wanted.review), REVIEW_REASON
    ctx.index.remember_thread(headers.message_id, wanted.opportunity)
    ctx.index.remember_thread(headers.conversation_id, wanted.opportunity)
    ctx.stats.logged += 1
    pending_synced(ctx, email)


def process_email(ctx: ProcessContext, raw: RawItem, data: bytes, headers: MessageHeaders | None = None) -> None:
    apply_email(ctx, plan_email(ctx, raw, data, headers))


def log_email(
    ctx: ProcessContext, item: SyncedItem, data: bytes, headers: MessageHeaders, decision: MatchDecision
) -> Activity:
    """A matched email becomes an activity with its documents: re-matching an item that was skipped as
    unmatched before. Only when an email is logged is its body decoded."""
    body = parse_body(data, max_attachment_bytes=ctx.settings.max_attachment_bytes)
    return _log(ctx, item, len(data), headers, body, decision, new_item=False)


def _log(
    ctx: ProcessContext,
    item: SyncedItem,
    size: int,
    headers: MessageHeaders,
    body: MessageBody,
    decision: MatchDecision,
    *,
    new_item: bool,
) -> Activity:
    assert item.sha256 is not None
    activity = _new_email_activity(ctx, item, headers, body, decision.direction)
    applied = apply_decision(ctx, activity, decision, LinkExclusions(), new=True)  # a new activity: no exclusions
    record_decision(item, applied, ctx.now)
    item.skip_reason = None
    store_email_documents(ctx, activity, item.sha256, size, body)
    ctx.index.remember_thread(headers.message_id, activity.opportunity_id)
    ctx.index.remember_thread(headers.conversation_id, activity.opportunity_id)
    ctx.stats.logged += 1
    activity_synced(ctx, activity, deferrable=True)
    return activity


def email_owner(headers: MessageHeaders, reps: Mapping[str, int], mailbox_owner: int | None) -> int | None:
    """The rep who owns an email activity, whichever mailbox copy is processed first (deterministic):
    the sending rep for outbound mail, else the first rep in To, then Cc; else the mailbox's owner."""
    sender = headers.sender_address
    if sender is not None and sender.email in reps:
        return reps[sender.email]
    for address in headers.to + headers.cc:
        if address.email in reps:
            return reps[address.email]
    return mailbox_owner


def _new_email_activity(
    ctx: ProcessContext, item: SyncedItem, headers: MessageHeaders, body: MessageBody, direction: str | None
) -> Activity:
    """A new activity, not flushed: its links and documents go in with it at the next flush. Its collections
    start empty (known, so reading them never queries)."""
    when = headers.date or ctx.now
    activity = Activity(
        type="email",
        subject=headers.subject[:1000],
        status="completed",
        direction=direction,
        start_at=when,
        end_at=when,
        owner_id=email_owner(headers, ctx.index.user_emails, ctx.owner_id or None),
        item=item,
        body=body.text[:100_000],
        account_links=[],
        contact_links=[],
        documents=[],
    )
    ctx.session.add(activity)
    return activity
