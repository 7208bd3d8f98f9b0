"""Process one email: headers → facts → match; only a logged email has its body decoded.

Invitations (a ``text/calendar`` part with METHOD REQUEST / CANCEL / ADD) update the meeting they describe
instead of becoming an email activity (SPEC §4).

The same email in several mailboxes (same Message-ID) is one item, logged when ANY of its copies would be
logged, whichever copy comes first (SPEC §3, last paragraph): the copies differ — a rep's sent copy lists its
Bcc recipients, a copy that came through a mailing list carries the list's headers. A copy of an item that is
logged only records its source (no decision, no query). A copy of a skipped item is decided on its own: when
it would be logged, the item is logged with that copy's facts and bytes; when it is skipped too, the item keeps
the facts of the copy closest to being logged (``_closer``), so re-matching replays the copy it can lift.

What the body parser could not keep (an attachment over ``CRM_MAX_ATTACHMENT_BYTES``, an undecodable part) is
returned by ``apply_email``: the item is quarantined with it as partly applied, and stays logged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from crm_store.models import Activity, ItemSource, QuarantineEntry, RawItem, SyncedItem
from sync_service.errors import ParseError
from sync_service.matching.decide import decide
from sync_service.matching.model import (
    SKIP_AUTOMATED,
    SKIP_INTERNAL,
    SKIP_NEVER_LOG,
    SKIP_UNMATCHED,
    ItemFacts,
    LinkExclusions,
    MatchDecision,
)
from sync_service.parsing.ical import parse_calendar
from sync_service.parsing.mime import parse_body, parse_headers
from sync_service.pipeline.advance import activity_synced, pending_synced
from sync_service.pipeline.batch import BatchCache
from sync_service.pipeline.bulk import PendingEmail
from sync_service.pipeline.context import ProcessContext
from sync_service.pipeline.documents import document_of, email_files, store_email_documents
from sync_service.pipeline.email_facts import facts_of
from sync_service.pipeline.events import apply_events
from sync_service.pipeline.items import (
    decision_in,
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
# How far a skipped copy is from being logged (lower: closer). The skips that CRM data can lift come first, so
# that a skipped item keeps the facts of the copy that re-matching may still log (SPEC §3.7).
_SKIP_RANK = {SKIP_UNMATCHED: 0, SKIP_NEVER_LOG: 1, SKIP_AUTOMATED: 2, SKIP_INTERNAL: 3}


@dataclass(frozen=True)
class EmailPlan:
    """What one email will write, decided before anything is written (so a bad email fails cleanly)."""

    raw: RawItem
    headers: MessageHeaders
    key: str
    size: int
    # Another copy of the item is known (stored, or new in this batch and not yet written): this copy is
    # recorded as one more source, and decided only when the item is skipped (``decision``).
    existing: SyncedItem | None = None
    pending: PendingEmail | None = None
    invitations: tuple[ParsedCalendar, ...] = ()  # iTIP updates: they update meetings instead
    facts: ItemFacts | None = None  # of this copy, when it was decided
    decision: MatchDecision | None = None
    # Decoded only when this copy is logged, or when the copy that logged its item is processed again after
    # it was quarantined as partly applied (a retry: the documents that fit now are added).
    body: MessageBody | None = None


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

    def body() -> MessageBody:
        return parsed.body or parse_body(content(), max_attachment_bytes=ctx.settings.max_attachment_bytes)

    pending, existing = _known(ctx, key)
    if (pending is not None and pending.activity is not None) or (existing is not None and not existing.skip_reason):
        # Logged already: this copy only adds its source (the common duplicate: no decision, no query) —
        # unless it is the copy that logged the item, quarantined as partly applied and processed again.
        if existing is not None and existing.sha256 == raw.sha256 and _partly_applied(ctx, raw):
            return EmailPlan(raw, headers, key, size, existing=existing, body=body())
        return EmailPlan(raw, headers, key, size, existing=existing, pending=pending)
    facts = facts_of(headers, ctx.owner_email)
    decision = decide(facts, ctx.index, policy=ctx.settings.auto_create)
    return EmailPlan(
        raw,
        headers,
        key,
        size,
        existing=existing,
        pending=pending,
        facts=facts,
        decision=decision,
        body=None if decision.skipped else body(),
    )


def _known(ctx: ProcessContext, key: str) -> tuple[PendingEmail | None, SyncedItem | None]:
    """The item another copy of this email made: new in this batch (not yet written), or stored. A skipped
    item of this batch that was written already (the process engine ran since) is read back as an object:
    another copy may change it (rare: no query otherwise)."""
    batch = ctx.batch
    pending = batch.pending.get(key) if batch is not None else None
    if pending is None:
        return None, find_item(ctx.session, key, batch)
    if pending.item_id is None or pending.activity is not None:
        return pending, None
    assert batch is not None
    with ctx.session.no_autoflush:
        item = ctx.session.get_one(SyncedItem, pending.item_id)
    del batch.pending[key]
    batch.items[key] = item
    return None, item


def _partly_applied(ctx: ProcessContext, raw: RawItem) -> bool:
    """Whether this raw item has a quarantine entry (from the batch's prefetch; alone: one query)."""
    if ctx.batch is not None:
        return raw.id in ctx.batch.quarantined
    found = ctx.session.scalar(select(QuarantineEntry.id).where(QuarantineEntry.raw_item_id == raw.id))
    return found is not None


def _invitations(
    ctx: ProcessContext, content: Callable[[], bytes], parsed: tuple[ParsedCalendar, ...] | None
) -> tuple[ParsedCalendar, ...]:
    """The calendar parts of an invitation email that update a meeting (METHOD REQUEST / CANCEL / ADD)."""
    if parsed is None:
        body = parse_body(content(), max_attachment_bytes=ctx.settings.max_attachment_bytes)
        limit = ctx.settings.max_occurrences
        parsed = tuple(parse_calendar(part, ctx.window, max_occurrences=limit) for part in body.calendar_parts)
    return tuple(c for c in parsed if (c.method or "").upper() in ITIP_UPDATES)


def apply_email(ctx: ProcessContext, plan: EmailPlan) -> list[str]:
    """Write what ``plan_email`` decided. Returns what could not be kept of a logged email (an attachment over
    the size limit, an undecodable part; ``MessageBody.problems``): the caller quarantines the raw item with
    it, as partly applied, as it does a calendar's problems."""
    raw, headers = plan.raw, plan.headers
    for calendar in plan.invitations:
        apply_events(ctx, raw, calendar.events, full_snapshot=False)
    if plan.invitations:
        return []
    if plan.existing is not None or plan.pending is not None:
        return _another_copy(ctx, plan)
    assert plan.decision is not None and plan.facts is not None
    if ctx.batch is not None:
        _queue_new(ctx, ctx.batch, plan)
    else:
        item = SyncedItem(dedupe_key=plan.key, kind="email", **_columns(plan), facts=facts_to_json(plan.facts))
        ctx.session.add(item)
        link_source(ctx.session, item, raw.id)
        if plan.decision.skipped:
            record_decision(item, plan.decision, ctx.now)
            item.skip_reason = plan.decision.skip_reason
            ctx.stats.skipped[plan.decision.skip_reason or "?"] += 1
        else:
            assert plan.body is not None
            _log(ctx, item, plan.size, headers, plan.body, plan.decision, new_item=True)
    return list(plan.body.problems) if plan.body is not None else []


def _columns(plan: EmailPlan) -> dict[str, Any]:
    """The columns of an email's item that come from the copy it keeps (besides its facts)."""
    headers = plan.headers
    return {
        "message_id": headers.message_id,
        "conversation_id": headers.conversation_id,
        "subject": headers.subject[:1000],
        "sent_at": headers.date,
        "sha256": plan.raw.sha256,
    }


def _queue_new(ctx: ProcessContext, batch: BatchCache, plan: EmailPlan) -> None:
    """A new email in the optimistic pass: the same rows as the ORM path above, as plain rows for ``bulk``."""
    decision, facts = plan.decision, plan.facts
    assert decision is not None and facts is not None
    item: dict[str, Any] = {
        "dedupe_key": plan.key,
        "kind": "email",
        **_columns(plan),
        "skip_reason": decision.skip_reason if decision.skipped else None,
    }
    email = PendingEmail(item, [plan.raw.id])
    batch.pending[plan.key] = email
    batch.bulk.add(email)
    if decision.skipped:
        item["facts"] = with_decision(facts_to_json(facts), decision, ctx.now)
        ctx.stats.skipped[decision.skip_reason or "?"] += 1
        return
    _queue_activity(ctx, email, plan)


def _queue_activity(ctx: ProcessContext, email: PendingEmail, plan: EmailPlan) -> None:
    """The rows that log a pending email (``bulk``): its activity, links, documents and review item."""
    raw, headers, decision, facts = plan.raw, plan.headers, plan.decision, plan.facts
    assert decision is not None and facts is not None and plan.body is not None and raw.sha256 is not None
    written = create_records(ctx, decision, LinkExclusions())  # a new activity: no exclusions, no history
    wanted = wanted_state(LinkState(), written)
    email.item["facts"] = with_decision(facts_to_json(facts), written, ctx.now)
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


def _another_copy(ctx: ProcessContext, plan: EmailPlan) -> list[str]:
    """One more copy of a known email (another mailbox's, or the same object delivered again): its source is
    recorded. A logged item stays as it is, whatever this copy would be. A skipped one is logged when this
    copy would be logged — once: one activity, listing every mailbox that saw it, with this copy's facts and
    bytes, and no longer counted or stored as skipped; else it keeps the closer of the two skipped copies."""
    raw, email, item, decision = plan.raw, plan.pending, plan.existing, plan.decision
    if email is not None:
        if email.item_id is None:
            email.sources.append(raw.id)
        else:  # written already (the process engine ran since): a logged item, see ``_known``
            ctx.session.add(ItemSource(item_id=email.item_id, raw_item_id=raw.id))
    else:
        assert item is not None
        link_source(ctx.session, item, raw.id, ctx.batch)
    if decision is None:  # the item is logged
        if item is not None and plan.body is not None:
            return _documents_again(ctx, item, plan)
        ctx.stats.duplicates += 1
        return []
    if decision.skipped:
        _keep_closer_skip(ctx, plan)
        ctx.stats.duplicates += 1
        return []
    assert plan.body is not None and plan.facts is not None
    if email is not None:  # skipped earlier in this batch
        before, counted_here = email.item["skip_reason"], True
        email.item.update(_columns(plan), skip_reason=None)
        _queue_activity(ctx, email, plan)
    else:
        assert item is not None
        before, counted_here = item.skip_reason, _decided_in_this_run(ctx, item.facts)
        for name, value in _columns(plan).items():
            setattr(item, name, value)
        item.facts = facts_to_json(plan.facts)
        _log(ctx, item, plan.size, plan.headers, plan.body, decision, new_item=False)
    if counted_here:  # the copy counted as skipped in this run is now the duplicate of the logged one
        _uncount_skip(ctx, before)
        ctx.stats.duplicates += 1
    return list(plan.body.problems)


def _keep_closer_skip(ctx: ProcessContext, plan: EmailPlan) -> None:
    """Both copies are skipped: the item keeps the facts (and bytes) of the copy closer to being logged, so
    that the outcome does not depend on which copy came first and re-matching replays the copy that CRM
    data can still lift (a sent copy's Bcc to someone who is no contact yet)."""
    email, item, decision, facts = plan.pending, plan.existing, plan.decision, plan.facts
    assert decision is not None and facts is not None
    mine = facts_to_json(facts)
    if email is not None:
        before, kept = email.item["skip_reason"], email.item.get("facts")
    else:
        assert item is not None
        before, kept = item.skip_reason, item.facts
    if not _closer(decision.skip_reason, mine, before, kept or {}):
        return
    values = {**_columns(plan), "skip_reason": decision.skip_reason, "facts": with_decision(mine, decision, ctx.now)}
    if email is not None:
        email.item.update(values)
        counted_here = True
    else:
        assert item is not None
        counted_here = _decided_in_this_run(ctx, item.facts)
        # Only if it is still skipped as read: a run that logged it meanwhile must not be undone (PostgreSQL
        # re-checks the condition once the other run's row lock is released).
        with ctx.session.no_autoflush:
            result = ctx.session.execute(
                update(SyncedItem)
                .where(SyncedItem.id == item.id, SyncedItem.skip_reason == before)
                .values(values)
                .execution_options(synchronize_session=False)
            )
        if not result.rowcount:  # type: ignore[attr-defined]
            return
        for name, value in values.items():
            set_committed_value(item, name, value)
    if counted_here:
        _uncount_skip(ctx, before)
        ctx.stats.skipped[decision.skip_reason or "?"] += 1


def _closer(reason: str | None, facts: dict[str, Any], than: str | None, their_facts: dict[str, Any]) -> bool:
    """Whether a skipped copy is closer to being logged than the one the item keeps: by skip reason, then by
    the number of participants (a sent copy with Bcc recipients holds more than the received copies)."""

    def rank(skip: str | None, facts: dict[str, Any]) -> tuple[int, int]:
        return _SKIP_RANK.get(skip or "", len(_SKIP_RANK)), -len(facts.get("participants") or ())

    return rank(reason, facts) < rank(than, their_facts)


def _decided_in_this_run(ctx: ProcessContext, facts: dict[str, Any] | None) -> bool:
    """Whether the item's stored decision was taken by this processing run (every batch of a run decides at
    the run's ``now``): its skip was counted in this run's statistics."""
    stored = decision_in(facts)
    return stored is not None and stored.get("at") == ctx.now.isoformat()


def _uncount_skip(ctx: ProcessContext, reason: str | None) -> None:
    """Take back a skip this run counted (the item was logged, or kept another copy's skip reason)."""
    ctx.stats.skipped[reason or "?"] -= 1
    if not ctx.stats.skipped[reason or "?"]:
        del ctx.stats.skipped[reason or "?"]


def _documents_again(ctx: ProcessContext, item: SyncedItem, plan: EmailPlan) -> list[str]:
    """The copy that logged its item, quarantined as partly applied, processed again (a retry, perhaps after
    a limit was raised): the documents that fit now are added; what still does not is reported again."""
    body = plan.body
    assert body is not None and item.sha256 is not None
    activity = ctx.session.scalar(select(Activity).where(Activity.item_id == item.id))
    if activity is None:  # a person deleted the activity: nothing to add to
        ctx.stats.duplicates += 1
        return list(body.problems)
    have = {(document.sha256, document.filename) for document in activity.documents}
    added = False
    for file in email_files(ctx, activity.subject, item.sha256, plan.size, body):
        if (file.sha256, file.filename) not in have:
            activity.documents.append(document_of(file, activity))
            added = True
    if added:
        ctx.stats.updated += 1
    else:
        ctx.stats.duplicates += 1
    return list(body.problems)


def process_email(ctx: ProcessContext, raw: RawItem, data: bytes, headers: MessageHeaders | None = None) -> list[str]:
    return apply_email(ctx, plan_email(ctx, raw, data, headers))


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
