"""Process one email: headers → facts → match; only a logged email has its body decoded.

Invitations (a ``text/calendar`` part with METHOD REQUEST / CANCEL / ADD) update the meeting they describe
instead of becoming an email activity (SPEC §4).
"""

from __future__ import annotations

from collections.abc import Mapping

from crm_store.models import Activity, RawItem, SyncedItem
from sync_service.errors import ParseError
from sync_service.matching.decide import decide
from sync_service.matching.model import ItemFacts, LinkExclusions, MatchDecision
from sync_service.parsing.ical import parse_calendar
from sync_service.parsing.mime import parse_body, parse_headers
from sync_service.pipeline.advance import activity_synced
from sync_service.pipeline.context import ProcessContext
from sync_service.pipeline.documents import relink_documents, store_email_documents
from sync_service.pipeline.events import apply_events
from sync_service.pipeline.items import email_key, facts_to_json, get_or_create, link_source, record_decision
from sync_service.pipeline.links import apply_decision
from sync_service.values import MessageBody, MessageHeaders

ITIP_UPDATES = {"REQUEST", "CANCEL", "ADD"}


def facts_of(headers: MessageHeaders, owner_email: str) -> ItemFacts:
    sender = headers.sender_address
    seen = {sender.email} if sender else set()
    participants = []
    for address in headers.recipients:
        if address.email not in seen:
            seen.add(address.email)
            participants.append(address)
    reply_to = tuple(a for a in headers.reply_to if sender is None or a.email != sender.email)
    return ItemFacts(
        kind="email",
        sender=sender,
        participants=tuple(participants),
        reply_to=reply_to,
        subject=headers.subject,
        message_id=headers.message_id,
        in_reply_to=headers.in_reply_to,
        references=headers.references,
        conversation_id=headers.conversation_id,
        automated_reason=headers.automated_reason,
        mailbox_owner=owner_email,
    )


def _invitation(ctx: ProcessContext, raw: RawItem, data: bytes) -> bool:
    """Apply calendar parts of an invitation email; True when the email was an iTIP update."""
    body = parse_body(data, max_attachment_bytes=ctx.settings.max_attachment_bytes)
    handled = False
    for part in body.calendar_parts:
        calendar = parse_calendar(part, ctx.window, max_occurrences=ctx.settings.max_occurrences)
        if (calendar.method or "").upper() in ITIP_UPDATES:
            apply_events(ctx, raw, calendar.events, full_snapshot=False)
            handled = True
    return handled


def process_email(ctx: ProcessContext, raw: RawItem, data: bytes) -> None:
    headers = parse_headers(data)
    if headers.sender_address is None and not headers.recipients:
        # Nothing to match on: a damaged message, not private mail. Quarantine it so an admin sees it.
        raise ParseError("no sender and no recipient could be read from the headers (damaged message?)")
    if b"text/calendar" in data and _invitation(ctx, raw, data):
        return
    assert raw.sha256 is not None
    item, created = get_or_create(ctx.session, email_key(headers.message_id, raw.sha256), "email")
    link_source(ctx.session, item, raw.id)
    if not created:
        ctx.stats.duplicates += 1
        return
    facts = facts_of(headers, ctx.owner_email)
    item.message_id, item.subject, item.sent_at = headers.message_id, headers.subject[:1000], headers.date
    item.sha256, item.facts = raw.sha256, facts_to_json(facts)
    decision = decide(facts, ctx.index, policy=ctx.settings.auto_create)
    if decision.skipped:
        record_decision(item, decision, ctx.now)
        item.skip_reason = decision.skip_reason
        ctx.stats.skipped[decision.skip_reason or "?"] += 1
        return
    log_email(ctx, item, data, headers, decision)


def log_email(
    ctx: ProcessContext, item: SyncedItem, data: bytes, headers: MessageHeaders, decision: MatchDecision
) -> Activity:
    """A matched email becomes an activity with its documents: at sync, or when re-matching an item that was
    skipped as unmatched before. Only here is the body decoded."""
    assert item.sha256 is not None
    body = parse_body(data, max_attachment_bytes=ctx.settings.max_attachment_bytes)
    activity = _new_email_activity(ctx, item, headers, body, decision.direction)
    applied = apply_decision(ctx, activity, decision, LinkExclusions())  # a new activity has no exclusions
    record_decision(item, applied, ctx.now)
    item.skip_reason = None
    store_email_documents(ctx, activity, item.sha256, len(data), body)
    relink_documents(activity)
    ctx.index.remember_thread(headers.message_id, activity.opportunity_id)
    ctx.index.remember_thread(headers.conversation_id, activity.opportunity_id)
    ctx.stats.logged += 1
    activity_synced(ctx, activity)
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
    when = headers.date or ctx.now
    activity = Activity(
        type="email",
        subject=headers.subject[:1000],
        status="completed",
        direction=direction,
        start_at=when,
        end_at=when,
        owner_id=email_owner(headers, ctx.index.user_emails, ctx.owner_id or None),
        item_id=item.id,
        body=body.text[:100_000],
    )
    ctx.session.add(activity)
    ctx.session.flush()
    return activity
