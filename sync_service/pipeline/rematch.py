"""Re-matching (SPEC §3.7): when CRM data changes, match the items seen earlier again.

``rematch(app)`` is the one entry point: the CLI runs it after every import, the workers call it after CRM
data changed through the API. It

1. builds the candidate index once, with rule a's thread map holding only the opportunities a person chose;
2. replays ``decide()`` over the stored facts (``SyncedItem.facts``) of every item that has an activity or
   was skipped as ``unmatched`` / ``never-log`` (the skips that CRM data can lift), oldest first, so a
   reply follows the *current* link of the message it answers exactly as during a sync;
3. turns an item that now matches into an activity with its documents (the ``.eml`` is parsed again from
   the blob store; an event is read again from the calendar object that carries it), and updates the links
   of an existing activity when the decision changed — links a person made or removed win
   (``links.apply_decision``); the review queue follows.

History stands (``overrides.keep_earlier_opportunity``): an item keeps the opportunity it was linked to when
that has closed since, or when the fresh decision is merely ambiguous and still names it; a definite new
answer moves it. An activity is never deleted by re-matching: when its item would be skipped now, its links
stay as they are.

Items are processed in batches, one transaction per batch. Per batch a fixed number of queries loads the
items and their current links as plain rows; an item whose links stay as they are costs no further query,
and only an item that is written (relinked, or logged now) is loaded as objects, inside its own savepoint:
one broken item is counted and reported, never stops the run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from crm_store.db import transaction
from crm_store.models import Activity, SyncedItem
from sync_service.bootstrap import App
from sync_service.errors import ParseError
from sync_service.matching.decide import decide
from sync_service.matching.load import build_index, thread_keys
from sync_service.matching.model import SKIP_NEVER_LOG, SKIP_UNMATCHED, CandidateIndex, LinkExclusions, MatchDecision
from sync_service.matching.overrides import with_overrides
from sync_service.parsing.mime import parse_headers
from sync_service.pipeline.advance import activity_synced
from sync_service.pipeline.awaited import forget_resolved, resolved_replies
from sync_service.pipeline.context import ProcessContext, ProcessStats
from sync_service.pipeline.documents import relink_documents
from sync_service.pipeline.emails import log_email
from sync_service.pipeline.events import write_event_activity
from sync_service.pipeline.items import (
    decision_in,
    decision_outcome,
    decision_to_json,
    facts_from_json,
    record_decision,
    with_decision,
)
from sync_service.pipeline.link_state import wanted_state
from sync_service.pipeline.links import apply_decision
from sync_service.pipeline.rematch_load import (
    BatchRows,
    ItemRow,
    Owner,
    find_events,
    load_batch,
    owner_from_facts,
    owners_of,
)
from sync_service.values import CalendarEvent

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LIFTABLE_SKIPS = (SKIP_UNMATCHED, SKIP_NEVER_LOG)  # skips that a change of CRM data can lift
_MAX_PROBLEMS = 20


@dataclass
class RematchStats:
    examined: int = 0
    logged: int = 0  # items skipped before that are activities now
    relinked: int = 0  # activities whose links changed
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # items still not logged, by reason
    errors: int = 0
    contacts_created: int = 0
    leads_created: int = 0
    problems: list[str] = field(default_factory=list)  # the first few errors, one line each

    def summary(self) -> str:
        line = (
            f"re-matched {self.examined} items: {self.logged} newly logged, {self.relinked} relinked, "
            f"{self.unchanged} unchanged"
        )
        if self.skipped:
            line += ", still not logged: " + ", ".join(f"{r} {n}" for r, n in sorted(self.skipped.items()))
        if self.contacts_created or self.leads_created:
            line += f"; {self.contacts_created} contacts and {self.leads_created} leads created"
        if self.errors:
            line += f"; {self.errors} errors ({self.problems[0]})"
        return line


def rematch(
    app: App, *, now: datetime | None = None, item_ids: Collection[int] | None = None, notify_all: bool = False
) -> RematchStats:
    """Match every item seen earlier again against the current CRM data (see the module docstring).

    ``item_ids``: only these items (after a person changed one activity's links); rule a then follows the
    stored links of what was sent before them. ``notify_all``: tell the process engine about every activity
    examined, not only the ones whose links changed (a person just changed them).
    """
    now = now or datetime.now(UTC)
    settings = app.settings
    with app.sessions() as session:
        index = _fresh_index(app, session)
        order = _items_oldest_first(session, item_ids)
        index.thread_opportunity.update(_threads_before(session, order if item_ids is not None else None))
    stats = RematchStats()
    process_stats = ProcessStats()
    for batch in _chunks(order, settings.batch_size):
        with transaction(app.sessions) as session:
            run = _BatchRun(app, session, index, now, stats, process_stats)
            run.notify_all = notify_all
            run.process(batch)
            index = run.index
    stats.contacts_created, stats.leads_created = process_stats.contacts_created, process_stats.leads_created
    with transaction(app.sessions) as session:  # the replies that waited for a stored message followed it now
        forget_resolved(session, item_ids)
    return stats


def rematch_waiting_replies(app: App, *, now: datetime | None = None) -> RematchStats:
    """Match again the replies stored before the message they answer, once it is stored (``awaited``)."""
    with app.sessions() as session:
        replies = resolved_replies(session)
    return rematch(app, now=now, item_ids=replies) if replies else RematchStats()


def _threads_before(session: Session, only: list[int] | None) -> dict[str, int]:
    """Rule a's starting point. A full run replays every thread from its start, so only the links a person
    chose are given; a run over a few items starts from the stored links of what was sent before them."""
    if only is None:
        return thread_keys(session, manual_only=True)
    dates = session.scalars(select(SyncedItem.sent_at).where(SyncedItem.id.in_(only))).all()
    latest = max((d for d in dates if d is not None), default=None)
    threads = thread_keys(session, sent_before=latest, exclude_items=only) if latest is not None else {}
    threads.update(thread_keys(session, manual_only=True, exclude_items=only))
    return threads


def _fresh_index(app: App, session: Session) -> CandidateIndex:
    return build_index(session, app.settings.internal_domains, app.settings.phone_region, threads=False)


def _items_oldest_first(session: Session, only: Collection[int] | None = None) -> list[int]:
    """Ids of the items to match again, in the order they were sent (undated ones first)."""
    stmt = (
        select(SyncedItem.id, SyncedItem.sent_at)
        .outerjoin(Activity, Activity.item_id == SyncedItem.id)
        .where(
            or_(
                Activity.id.is_not(None),
                and_(SyncedItem.skip_reason.in_(LIFTABLE_SKIPS), SyncedItem.deleted_at_source.is_(False)),
            )
        )
    )
    if only is not None:
        stmt = stmt.where(SyncedItem.id.in_(list(only)))
    rows = session.execute(stmt).all()
    return [item_id for item_id, _ in sorted(rows, key=lambda r: (r[1] or _EPOCH, r[0]))]


def _chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


class _BatchRun:
    """One batch in one transaction. Items whose links stay as they are cost no write of their own (changed
    stored decisions and skip reasons are written for the whole batch in one statement)."""

    def __init__(
        self,
        app: App,
        session: Session,
        index: CandidateIndex,
        now: datetime,
        stats: RematchStats,
        process_stats: ProcessStats,
    ) -> None:
        self.app, self.session, self.index, self.now = app, session, index, now
        self.stats, self.process_stats = stats, process_stats
        self.rows = BatchRows()
        self.owners: dict[int, Owner] = {}
        self.updates: list[dict[str, Any]] = []  # plain items whose facts / skip reason change
        self.notify_all = False

    def process(self, ids: list[int]) -> None:
        self.rows = rows = load_batch(self.session, ids)
        self.owners = owners_of(self.session, list(rows.items))
        # Events to log need their calendar objects, read once per batch. Events carry no thread ids, so
        # deciding them ahead gives the same answer as in order.
        unlogged_events = [i for i in rows.items.values() if i.kind == "event" and i.id not in rows.activity_of]
        early = {item.id: self._decide(item) for item in unlogged_events}
        events = find_events(self.app, self.session, [i for i in unlogged_events if not early[i.id].skipped])
        for item_id in ids:
            item = rows.items.get(item_id)
            if item is None:  # deleted since the list was read
                continue
            self.stats.examined += 1
            # In date order, after the items before it remembered their threads (rule a).
            decision = early.get(item_id) or self._decide(item)
            created = (self.process_stats.contacts_created, self.process_stats.leads_created)
            try:
                if item_id in rows.activity_of:
                    self._existing(item, rows.activity_of[item_id], decision)
                else:
                    self._skipped_before(item, decision, events)
            except Exception as error:  # one broken item never stops re-matching
                index_changed = created != (self.process_stats.contacts_created, self.process_stats.leads_created)
                self._failed(item, error, index_changed)
        if self.updates:
            self.session.execute(update(SyncedItem), self.updates)

    def _decide(self, item: ItemRow) -> MatchDecision:
        return decide(facts_from_json(item.facts), self.index, policy=self.app.settings.auto_create)

    def _context(self, item: ItemRow, fallback_user: int | None = None) -> ProcessContext:
        """The context the pipeline's functions expect; the owner is the rep whose mailbox carries the item."""
        email, user_id = self.owners.get(item.id) or owner_from_facts(item, self.index.user_emails) or ("", None)
        user_id = user_id or fallback_user
        return ProcessContext(
            self.session,
            self.app.settings,
            self.app.blobs,
            self.index,
            self.now,
            self.app.window(self.now),
            self.process_stats,
            email,
            user_id or 0,
        )

    def _existing(self, item: ItemRow, activity_id: int, decision: MatchDecision) -> None:
        state = self.rows.states[activity_id]
        exclusions = self.rows.exclusions.get(activity_id, LinkExclusions())
        if decision.skipped:  # logged before, skipped now: keep the activity and its links
            self.stats.unchanged += 1
            self._remember(item, state.opportunity)
            if self.notify_all:
                activity_synced(self._context(item), self.session.get_one(Activity, activity_id))
            return
        effective = with_overrides(
            decision,
            exclusions,
            self.index,
            earlier_opportunity=None if state.opportunity_manual else state.opportunity,
            earlier_lead=None if state.lead_manual else state.lead,
        )
        creates = bool(effective.new_contacts or effective.new_leads)
        if not creates and wanted_state(state, effective) == state:
            self.stats.unchanged += 1
            if decision_outcome(decision_in(item.facts)) != decision_outcome(decision_to_json(effective, self.now)):
                self._update(item, effective, item.skip_reason)
            self._remember(item, state.opportunity)
            if self.notify_all:
                activity_synced(self._context(item), self.session.get_one(Activity, activity_id))
            return
        with self.session.begin_nested():
            activity = self.session.get_one(Activity, activity_id)
            ctx = self._context(item, self.rows.activity_owner.get(activity_id))
            applied = apply_decision(ctx, activity, decision, exclusions)
            record_decision(self.session.get_one(SyncedItem, item.id), applied, self.now)
            relink_documents(activity)
            activity_synced(ctx, activity)
        self.stats.relinked += 1
        self._remember(item, activity.opportunity_id)

    def _skipped_before(self, item: ItemRow, decision: MatchDecision, events: dict[int, CalendarEvent]) -> None:
        if decision.skipped:
            if decision.skip_reason != item.skip_reason:
                self._update(item, decision, decision.skip_reason)
            self.stats.skipped[decision.skip_reason or "?"] += 1
            return
        with self.session.begin_nested():
            ctx = self._context(item)
            synced = self.session.get_one(SyncedItem, item.id)
            if item.kind == "email":
                data = self._blob(item)
                activity = log_email(ctx, synced, data, parse_headers(data), decision)
            else:
                event = events.get(item.id)
                if event is None:
                    raise ParseError("the event is no longer in any calendar object that carried it")
                activity = write_event_activity(ctx, synced, event, decision)
        self.stats.logged += 1
        self._remember(item, activity.opportunity_id)

    def _update(self, item: ItemRow, decision: MatchDecision, skip_reason: str | None) -> None:
        facts = with_decision(item.facts, decision, self.now)
        self.updates.append({"id": item.id, "facts": facts, "skip_reason": skip_reason})

    def _blob(self, item: ItemRow) -> bytes:
        if not item.sha256:
            raise ParseError("no stored message bytes for this item")
        try:
            return self.app.blobs.get(item.sha256)
        except (OSError, KeyError) as error:
            raise ParseError(f"the stored message {item.sha256[:12]}… is missing") from error

    def _remember(self, item: ItemRow, opportunity_id: int | None) -> None:
        self.index.remember_thread(item.message_id, opportunity_id)
        self.index.remember_thread(item.facts.get("conversation_id") if item.facts else None, opportunity_id)

    def _failed(self, item: ItemRow, error: Exception, index_changed: bool) -> None:
        if not isinstance(error, ParseError):
            log.exception("re-matching item %s failed", item.id)
        self.stats.errors += 1
        if len(self.stats.problems) < _MAX_PROBLEMS:
            self.stats.problems.append(f"item {item.id}: {type(error).__name__}: {error}".splitlines()[0][:300])
        if index_changed:  # the savepoint rolled back contacts / leads the index already holds: rebuild it
            threads = self.index.thread_opportunity
            self.index = _fresh_index(self.app, self.session)
            self.index.thread_opportunity = threads
