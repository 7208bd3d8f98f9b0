"""Processing stage: pending raw items → canonical items → matching → activities and documents.

A batch is one transaction. It first runs optimistically inside ONE savepoint: the rows it needs are read
up front (``BatchCache``), each item is parsed and decided before it writes anything (a parse error then
quarantines it in place), and the writes of all its items are flushed together. If an item fails while
writing, the savepoint is rolled back and the batch is redone in halves, each a batch of its own (and split
again if it fails), down to parts of ``ALONE_AT_MOST`` items, which run item by item, each in its own
transaction, so that only the failing item is quarantined (with a one-line reason). Emails of a batch are
processed in date order so that a reply finds the message it answers (opportunity rule a).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from crm_store.db import lock_names, transaction
from crm_store.models import Activity, Mailbox, QuarantineEntry, RawItem, User
from crm_store.models.sync import DELETED, DONE
from crm_store.schema_version import schema_mismatch
from sync_service.bootstrap import App
from sync_service.errors import ParseError
from sync_service.matching.decide import thread_refs
from sync_service.matching.load import build_index, thread_keys
from sync_service.matching.model import CandidateIndex
from sync_service.parsing.ical import parse_calendar
from sync_service.parsing.mime import parse_headers
from sync_service.parsing.vcard import parse_vcards
from sync_service.pipeline.advance import AdvanceScope, advance_deferred, advance_scope
from sync_service.pipeline.awaited import note_replies, resolved_replies
from sync_service.pipeline.batch import BatchCache
from sync_service.pipeline.bulk import PendingEmail
from sync_service.pipeline.contacts import apply_card, card_lock_names
from sync_service.pipeline.context import ProcessContext, ProcessStats
from sync_service.pipeline.emails import apply_email, plan_email
from sync_service.pipeline.events import apply_events, cancel_missing
from sync_service.pipeline.follow import FetchProgress
from sync_service.pipeline.handover import Handover
from sync_service.pipeline.index_cache import run_index
from sync_service.pipeline.items import email_key, event_key
from sync_service.pipeline.new_contacts import Collision, IdPool, LeadCollision, NewContacts
from sync_service.pipeline.pending import count_pending, pending_items, refresh_statistics, still_waiting
from sync_service.pipeline.preparse import Key, Parsed, ParseOptions, parse_item, parsed_whole
from sync_service.pipeline.quarantine import quarantine
from sync_service.pipeline.reasons import error_reason
from sync_service.pipeline.series import note_expanded, refresh_series
from sync_service.values import CalendarEvent, MessageHeaders

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SLICE_PER_INDEX = 10  # a time-sliced run lasts at least this many times its candidate index's build time
# A failed batch of more items than this is redone in two halves, each a batch of its own; one of at most this
# many items is redone item by item. Halving finds one bad item of 500 in a few batches instead of 500
# transactions, and a batch that collided twice with another run (a shared meeting) is usually done in two.
ALONE_AT_MOST = 32
# A batch locks the meetings it will write before it reads them (one advisory lock per UID, ``_event_locks``),
# unless it holds more than this many: PostgreSQL's lock table has room for about 64 locks per connection.
EVENT_LOCKS_AT_MOST = 256
FOLLOW_WAIT = 1.0  # seconds a run following a fetch waits for its next page before it looks again


Step = Callable[[], list[str]]  # an item's writes; returns the parts that were skipped


MISSING = "the stored bytes of this item are missing"


def _reader(ctx: ProcessContext, raw: RawItem) -> Callable[[], bytes]:
    """Reads a raw item's stored bytes when the processing needs them after all (items parsed ahead whole)."""

    def read() -> bytes:
        digest = raw.sha256 or ""
        found = ctx.blobs.get_many([digest]).get(digest) if digest else None
        if found is None:
            raise ParseError(MISSING)
        return found

    return read


def _prepare(
    ctx: ProcessContext,
    raw: RawItem,
    data: bytes | None,
    headers: MessageHeaders | None,
    ahead: Mapping[Key, Parsed],
) -> Step:
    """Parse (and, for an email, decide) one raw item WITHOUT writing; returns the step that writes it.
    ``ahead``: what a helper process parsed already (``preparse``); a part it lacks is parsed here.

    A ``ParseError`` raised here leaves the session untouched, so the item is quarantined in place and the
    batch goes on. Calendars and address books are applied from what was parsed here."""
    if raw.state == DELETED:

        def cancel() -> list[str]:
            if raw.kind == "calendar":
                cancel_missing(ctx, raw, keep=set())
            return []

        return cancel
    parsed = ahead.get((raw.kind, raw.sha256 or ""))
    if data is None and not parsed_whole(raw.kind, parsed):
        raise ParseError(MISSING)
    if raw.kind == "message":
        plan = plan_email(ctx, raw, data if data is not None else _reader(ctx, raw), headers, parsed)

        def write_email() -> list[str]:
            if plan.invitations:  # a recurring invitation is expanded again as the window slides (``series``)
                note_expanded(ctx, raw, plan.invitations)
            return apply_email(ctx, plan)  # what could not be kept of a logged email (``MessageBody.problems``)

        return write_email
    if raw.kind == "calendar":
        if parsed is not None and parsed.calendar is not None:
            calendar = parsed.calendar
        else:
            assert data is not None  # not parsed whole: read
            calendar = parse_calendar(data, ctx.window, max_occurrences=ctx.settings.max_occurrences)

        def apply_calendar() -> list[str]:
            # A series that failed to parse or was capped is missing from the snapshot: never cancel by absence.
            apply_events(ctx, raw, calendar.events, full_snapshot=not calendar.problems)
            note_expanded(ctx, raw, (calendar,))  # its series are expanded again as the window slides
            return [*calendar.problems, *calendar.notes]

        return apply_calendar
    if raw.kind == "contacts":
        if parsed is not None and parsed.cards is not None:
            cards, problems = parsed.cards
        else:
            assert data is not None  # not parsed whole: read
            cards, problems = parse_vcards(data)

        def apply_cards() -> list[str]:
            # The address book's address locks all at once, in key order (``card_lock_names``): taken card by
            # card, two runs over books sharing people in opposite orders would deadlock.
            lock_names(ctx.session, card_lock_names(ctx, cards))
            for card in cards:
                if apply_card(ctx, card, locked=True) in ("created", "updated"):
                    ctx.stats.contacts_from_cards += 1  # CRM data changed: earlier items are matched again
            return problems

        return apply_cards
    raise ParseError(f"unknown item kind {raw.kind!r}")


def _order(
    raws: list[RawItem], blobs: dict[int, bytes], ahead: Mapping[Key, Parsed]
) -> tuple[list[RawItem], dict[int, MessageHeaders]]:
    """The batch in processing order (emails by date, so a reply finds what it answers) and the headers of
    its messages, parsed once here (or ahead). A message whose headers do not parse is left out of the
    headers: its own processing raises the error."""
    headers: dict[int, MessageHeaders] = {}

    def when(raw: RawItem) -> tuple[int, datetime, int]:
        early = ahead.get((raw.kind, raw.sha256 or "")) if raw.kind == "message" else None
        found = early.headers if early is not None else None
        if raw.kind != "message" or raw.state == DELETED or (found is None and raw.id not in blobs):
            return (0, _EPOCH, raw.id)
        try:
            parsed = headers[raw.id] = found or parse_headers(blobs[raw.id])
        except ParseError:
            return (1, _EPOCH, raw.id)
        return (1, parsed.date or _EPOCH, raw.id)

    return sorted(raws, key=when), headers


def _events(raws: list[RawItem], ahead: Mapping[Key, Parsed]) -> Iterator[CalendarEvent]:
    """The events that the batch's calendars and invitations, as parsed ahead, hold."""
    for raw in raws:
        parsed = ahead.get((raw.kind, raw.sha256 or ""))
        if parsed is not None:
            calendars = parsed.calendars or ((parsed.calendar,) if parsed.calendar is not None else ())
            for calendar in calendars:
                yield from calendar.events


def _event_keys(raws: list[RawItem], ahead: Mapping[Key, Parsed]) -> set[str]:
    """The dedupe keys of the events that the batch's calendars and invitations, as parsed ahead, name."""
    return {event_key(e.uid, e.recurrence_id) for e in _events(raws, ahead)}


def _event_locks(raws: list[RawItem], ahead: Mapping[Key, Parsed]) -> list[str]:
    """The lock names of the meetings the batch will write: one per UID (a series and its occurrences share
    it), none when there are more than ``EVENT_LOCKS_AT_MOST`` (a large calendar feed: its batch then runs
    optimistically, guarded by the unique dedupe key, rather than fill PostgreSQL's shared lock table)."""
    uids = {e.uid for e in _events(raws, ahead)}
    return [f"event:{uid}" for uid in uids] if len(uids) <= EVENT_LOCKS_AT_MOST else []


def _thread_refs(headers: dict[int, MessageHeaders]) -> set[str]:
    """Every thread key the batch's emails may look up (rule a)."""
    return {key for h in headers.values() for key in thread_refs(h.in_reply_to, h.references, h.conversation_id)}


def load_threads(session: Session, index: CandidateIndex, refs: set[str]) -> None:
    """Add the stored threads among ``refs`` to the index's thread map. A key this run already linked keeps
    its in-memory value (it is the newer one), as when the whole map was loaded at the start of the run."""
    missing = refs - index.thread_opportunity.keys()
    if missing:
        for key, opportunity in thread_keys(session, keys=missing).items():
            index.thread_opportunity.setdefault(key, opportunity)


def _index(
    source: App | ProcessContext, session: Session, refs: Collection[str] = (), *, kept: bool = False
) -> CandidateIndex:
    """A fresh candidate index. Its thread map holds only ``refs``: each batch adds the threads its emails
    refer to (``load_threads``) instead of every run loading the thread keys of every stored item.

    ``kept``: the process's kept index when the CRM has not changed since it was read (``index_cache``). Only
    for a run's first index, read in a fresh session: one rebuilt inside a failed batch's transaction could
    hold that transaction's own writes."""
    settings = source.settings
    if kept:
        index = run_index(session, settings.internal_domains, settings.phone_region)
    else:
        index = build_index(session, settings.internal_domains, settings.phone_region, threads=False)
    load_threads(session, index, set(refs))
    return index


def process_pending(
    app: App,
    *,
    mailbox_id: int | None = None,
    now: datetime | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    time_slice: float | None = None,
    parse_processes: int = 0,
    follow: FetchProgress | None = None,
) -> ProcessStats:
    """Process every pending raw item; ``on_progress(done, total)`` after each batch.

    ``parse_processes``: when more than one batch is pending, that many helper processes parse each next
    batch while this one matches and writes the current one (``preparse``; 0: parse here).

    ``follow``: a fetch running beside this run (``pipeline.follow``). The run processes each page it stores
    and ends once the fetch has ended and nothing is left, instead of when it first finds nothing pending.

    ``time_slice`` (seconds): stop after the batch that ends the slice, with ``stats.more`` set, and leave the
    rest pending for another run (a worker then re-queues the mailbox, and several workers share a large
    mailbox's processing in turns). A slice lasts at least ``SLICE_PER_INDEX`` times what building the
    candidate index took, so that a large CRM's start-up cost stays a small share of each run."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    stats = ProcessStats()
    fetched = follow.items if follow is not None else 0
    with app.sessions() as session:
        run = _Run(app, now, stats, _index(app, session, kept=True))
        if time_slice is not None:
            time_slice = max(time_slice, SLICE_PER_INDEX * (time.monotonic() - started))
        run.owners = {
            m: (e, u)
            for m, e, u in session.execute(
                select(Mailbox.id, User.email, User.id).join(User, User.id == Mailbox.owner_id)
            )
        }
        total = count_pending(session, mailbox_id)
    # Recurring series the window moved past since they were expanded (once a day; ``pipeline.series``).
    deadline = started + time_slice if time_slice is not None else None
    refreshed, run.index = refresh_series(app, now, run.index, run.owners, mailbox_id=mailbox_id, deadline=deadline)
    stats.merge(refreshed.stats)
    if not refreshed.done:  # the slice ended: the rest (and the pending items) in the next run
        stats.more = True
        return stats
    ahead: Handover | None = None
    helpers = parse_processes > 0  # parser processes wanted (started once more than a batch is waiting)
    try:
        after, done = 0, 0
        while True:
            if time_slice is not None and done and time.monotonic() - started >= time_slice:
                with app.sessions() as session:  # is anything left? (else the next run would find nothing)
                    stats.more = session.scalar(pending_items(mailbox_id, after, 1, RawItem.id)) is not None  # type: ignore[call-overload]
                _ended(app, done, stats)
                return stats
            seen = follow.seen() if follow is not None else None  # before the query: see ``pipeline.follow``
            if follow is not None:
                total += follow.items - fetched
                fetched += follow.items - fetched
            if helpers and ahead is None and total - done > app.settings.batch_size:
                helpers = False  # one attempt per run
                ahead = Handover.start(app, now, parse_processes, run.index, mailbox_id, run.owners, follow)
            with transaction(app.sessions) as session:
                raws = list(session.scalars(pending_items(mailbox_id, after, app.settings.batch_size)))  # type: ignore[call-overload]
                alone = None
                if raws:
                    after = raws[-1].id
                    blobs, parsed = ahead.next_batch(session, after) if ahead is not None else ({}, {})
                    alone = run.batch(session, raws, blobs, parsed)
            if not raws:
                if follow is None or seen is None or seen.done:
                    if follow is not None and on_progress is not None and total != done:
                        on_progress(done, done)  # the total followed the fetch: a page may have been counted twice
                    _ended(app, done, stats)
                    return stats
                follow.wait(seen, FOLLOW_WAIT)  # the next page, or the fetch's end
                continue
            if alone is not None:  # the batch failed: in halves, or item by item (``_Run.redo``)
                run.redo(alone)
            done += len(raws)
            if on_progress is not None:
                on_progress(done, max(total, done))
    finally:
        if ahead is not None:
            ahead.close()


def _ended(app: App, done: int, stats: ProcessStats) -> None:
    """What a run does once it has processed ``done`` items: count the replies waiting for a message that is
    stored now (``awaited``: the workers re-match them); refresh the planner's statistics after a large run
    (``pending.refresh_statistics``). Its work is committed by then: a failure here is logged, not raised."""
    try:
        if done:
            with app.sessions() as session:
                stats.replies = len(resolved_replies(session))
    except SQLAlchemyError as error:  # they are found again at the end of the next run
        log.warning("could not look for replies waiting for a message: %s", error)
    try:
        if refresh_statistics(app.engine, app.sessions, done):
            log.info("raw items analysed after %d were processed", done)
    except SQLAlchemyError as error:
        log.warning("could not analyse the raw items after %d were processed: %s", done, error)


def _read_blobs(
    app: App, raws: list[RawItem], known: Mapping[str, bytes], ahead: Mapping[Key, Parsed]
) -> dict[int, bytes]:
    """The stored bytes of a batch (``known``: read already, by sha256), except those of items parsed ahead
    whole, which are read only if the processing turns out to need them (``_prepare``). A missing file is
    left out: ``_prepare`` quarantines that item alone."""
    wanted = [
        raw
        for raw in raws
        if raw.state != DELETED and raw.sha256 and not parsed_whole(raw.kind, ahead.get((raw.kind, raw.sha256)))
    ]
    stored = {sha: known[sha] for raw in wanted if (sha := raw.sha256 or "") in known}
    stored.update(app.blobs.get_many(raw.sha256 for raw in wanted if raw.sha256 and raw.sha256 not in stored))
    found: dict[int, bytes] = {}
    for raw in wanted:
        data = stored.get(raw.sha256 or "")
        if data is None:
            log.warning("stored bytes of raw item %s (%s) are missing", raw.id, raw.sha256)
        else:
            found[raw.id] = data
    return found


def _how(items: int) -> str:
    return "in two halves" if items > ALONE_AT_MOST else "item by item"


@dataclass(frozen=True)
class _Alone:
    """A failed batch, to be redone in halves or item by item, in order, with what its optimistic pass read."""

    ids: list[int]
    blobs: dict[int, bytes]
    headers: dict[int, MessageHeaders]
    refs: set[str]
    scope: AdvanceScope
    ahead: Mapping[Key, Parsed]


@dataclass
class _Run:
    """One processing run: the candidate index carried from batch to batch, the owners, the counters."""

    app: App
    now: datetime
    stats: ProcessStats
    index: CandidateIndex
    owners: dict[int, tuple[str, int]] = field(default_factory=dict)
    contact_ids: IdPool = field(default_factory=IdPool)  # new contacts' ids, on PostgreSQL

    def batch(
        self, session: Session, raws: list[RawItem], known: Mapping[str, bytes], ahead: Mapping[Key, Parsed]
    ) -> _Alone | None:
        """Optimistic pass: the whole batch in ONE savepoint, rows prefetched, writes flushed together. A
        collision with another worker's rows (a unique key it committed first, a deadlock) rolls the batch
        back and runs it optimistically once more: by then the other run has committed. Any other failure
        while writing, or a second collision, returns the batch to be redone (``redo``)."""
        blobs = _read_blobs(self.app, raws, known, ahead)
        ahead = {**ahead, **self._events_first(raws, blobs, ahead)}
        ordered, headers = _order(raws, blobs, ahead)
        # The events the batch will write, locked before it reads them (in key order, one statement): a run
        # sharing a meeting with this one waits until this batch commits, then finds the meeting, instead of
        # colliding with it (``uq_synced_items_dedupe_key``) and redoing its batch. Nothing is written yet, so
        # no run can be waiting for this one (the new contacts' locks come last, ``new_contacts``).
        lock_names(session, _event_locks(ordered, ahead))
        refs = _thread_refs(headers)
        load_threads(session, self.index, refs)
        scope = advance_scope(session)
        for attempt in (1, 2):
            try:
                self._optimistic(session, raws, ordered, blobs, headers, scope, ahead)
                return None
            except (IntegrityError, OperationalError, LeadCollision) as error:
                if schema_mismatch(error):
                    raise  # the database is not at the code's schema: no item's fault (``crm-sync init``)
                log.info(
                    "batch of %d items collided with another run (attempt %d): %s",
                    len(raws),
                    attempt,
                    _one_line(error if isinstance(error, LeadCollision) else error.orig),
                )
                # The savepoint rolled back: rows and index entries made inside it are gone.
                self.index = _index(self.app, session, refs)
                if attempt == 1:
                    continue
                log.info("batch of %d items collided twice: redone %s", len(raws), _how(len(raws)))
            except Exception as error:  # any other failure while writing: redone, below
                if schema_mismatch(error):
                    raise
                log.info(
                    "batch of %d items redone %s after %s: %s",
                    len(raws),
                    _how(len(raws)),
                    type(error).__name__,
                    _one_line(error),
                    exc_info=True,
                )
                self.index = _index(self.app, session, refs)
            break
        return _Alone([raw.id for raw in ordered], blobs, headers, refs, scope, ahead)

    def _events_first(
        self, raws: list[RawItem], blobs: Mapping[int, bytes], ahead: Mapping[Key, Parsed]
    ) -> dict[Key, Parsed]:
        """The batch's invitations and calendars that no parser process parsed, parsed now (the processing then
        uses what was parsed, so nothing is parsed twice): the batch knows each event it will write before it
        writes anything, and looks them all up in one query (``BatchCache``)."""
        wanted = [
            raw
            for raw in raws
            if (raw.kind, raw.sha256 or "") not in ahead
            and raw.id in blobs
            and (raw.kind == "calendar" or (raw.kind == "message" and b"text/calendar" in blobs[raw.id]))
        ]
        if not wanted:
            return {}
        settings = self.app.settings
        options = ParseOptions(self.app.window(self.now), settings.max_occurrences, settings.max_attachment_bytes)
        return {(raw.kind, raw.sha256 or ""): parse_item(raw.kind, blobs[raw.id], options) for raw in wanted}

    def redo(self, failed: _Alone) -> None:
        """A failed batch again: a part of more than ``ALONE_AT_MOST`` items as two halves in order, each a batch
        in its own transaction (redone the same way if it fails too); a smaller part item by item. Each item
        then has its own transaction: the locks an item takes on new contacts' addresses are not held while
        the items after it write (and perhaps wait for another run, which may be waiting for those locks)."""
        if len(failed.ids) <= ALONE_AT_MOST:
            for raw_id in failed.ids:
                with transaction(self.app.sessions) as session:
                    self.alone(session, raw_id, failed)
            return
        middle = len(failed.ids) // 2
        for half in (failed.ids[:middle], failed.ids[middle:]):
            with transaction(self.app.sessions) as session:
                raws = still_waiting(session, half)
                known = {raw.sha256: failed.blobs[raw.id] for raw in raws if raw.sha256 and raw.id in failed.blobs}
                again = self.batch(session, raws, known, failed.ahead) if raws else None
            if again is not None:
                self.redo(again)

    def alone(self, session: Session, raw_id: int, batch: _Alone) -> None:
        """One item of a failed batch, in its own savepoint (``_process_alone``)."""
        found = still_waiting(session, [raw_id])  # another run may have done it since it was read
        if not found:
            return
        raw = found[0]
        ctx = self._context(session, raw, self.stats, None, batch.scope, None)
        data, headers = batch.blobs.get(raw_id), batch.headers.get(raw_id)
        self.index = _process_alone(ctx, raw, data, headers, batch.refs, batch.ahead)

    def _optimistic(
        self,
        session: Session,
        raws: list[RawItem],
        ordered: list[RawItem],
        blobs: dict[int, bytes],
        headers: dict[int, MessageHeaders],
        scope: AdvanceScope,
        ahead: Mapping[Key, Parsed],
    ) -> None:
        keys = [email_key(h.message_id, r.sha256) for r in ordered if (h := headers.get(r.id)) and r.sha256]
        cache = BatchCache.load(session, raws, keys, _event_keys(ordered, ahead))
        cache.pack = self.app.blobs.pack_writer() if self.app.blobs.packs else None
        on_postgresql = session.get_bind().dialect.name == "postgresql"
        cache.contacts = NewContacts(self.contact_ids if on_postgresql else None)
        counters = ProcessStats()
        deferred: list[Activity | PendingEmail] = []
        try:
            with cache.contacts.written_before_flush(session), session.begin_nested():
                for raw in ordered:
                    ctx = self._context(session, raw, counters, cache, scope, deferred)
                    _process_in_batch(ctx, raw, blobs.get(raw.id), headers.get(raw.id), cache, ahead)
                advance_deferred(ctx)  # writes the new contacts and pending emails too
                session.flush()
                note_replies(session, headers)  # replies whose message is not stored yet (``awaited``)
                cache.write_finished(session, self.now)
                if cache.pack is not None:  # the attachments' pack file, recorded with the documents
                    self.app.blobs.record_packed(session, cache.pack.close())
                # Last, once every row of the batch is written: the new contacts' locks and check. A run
                # that holds those locks then waits for no other run's rows, so two runs sharing mail
                # (a meeting, a new person) cannot deadlock on them (``new_contacts``).
                for collision in cache.contacts.check(session):
                    self._use_theirs(session, cache, counters, collision)
        except BaseException:
            if cache.pack is not None:
                cache.pack.discard()  # nothing of the batch stays, not even its pack file
            raise
        cache.mark_finished(self.now)  # the savepoint held: the loaded raw items may say so too
        self.stats.merge(counters)

    def _use_theirs(self, session: Session, cache: BatchCache, counters: ProcessStats, collision: Collision) -> None:
        """Another run committed a contact for a new person this batch made one for: the batch uses theirs."""
        email, theirs = collision.email, collision.theirs
        log.info("another run made a contact for %s (id %d): used instead of the batch's", email, theirs)
        cache.contacts.use_theirs(session, [collision])
        self.index.contacts_by_email[collision.email] = (collision.theirs,)
        self.index.contact_account.pop(collision.ours, None)
        self.index.contact_account[collision.theirs] = collision.account_id
        counters.contacts_created -= 1

    def _context(
        self,
        session: Session,
        raw: RawItem,
        stats: ProcessStats,
        cache: BatchCache | None,
        scope: AdvanceScope,
        deferred: list[Activity | PendingEmail] | None,
    ) -> ProcessContext:
        owner_email, owner_id = self.owners.get(raw.mailbox_id, ("", 0))
        settings = self.app.settings
        return ProcessContext(
            session,
            settings,
            self.app.blobs,
            self.index,
            self.now,
            self.app.window(self.now),
            stats,
            owner_email,
            owner_id,
            batch=cache,
            advancing=scope,
            deferred=deferred,
        )


def _one_line(error: object) -> str:
    return " ".join(str(error).split())[:300]


def _process_in_batch(
    ctx: ProcessContext,
    raw: RawItem,
    data: bytes | None,
    headers: MessageHeaders | None,
    cache: BatchCache,
    ahead: Mapping[Key, Parsed],
) -> None:
    """One item inside the batch's savepoint. A parse error (raised before any write) quarantines it here;
    an error while writing propagates and sends the whole batch to the item-by-item fallback."""
    entry = cache.quarantined.get(raw.id)
    try:
        step = _prepare(ctx, raw, data, headers, ahead)
    except ParseError as error:
        _quarantined(ctx, raw, str(error) or "unparsable item", entry, known=True)
        return
    _finish(ctx, raw, step(), entry, known=True)


def _process_alone(
    ctx: ProcessContext,
    raw: RawItem,
    data: bytes | None,
    headers: MessageHeaders | None,
    refs: set[str],
    ahead: Mapping[Key, Parsed],
) -> CandidateIndex:
    """One item in its own savepoint: whatever fails is quarantined with a one-line reason. A database
    conflict (another worker committed the same email or contact first; a deadlock) is tried once more: by
    then the other run's row is committed and is found and used."""
    session = ctx.session
    for attempt in (1, 2):
        try:
            with session.begin_nested():
                problems = _prepare(ctx, raw, data, headers, ahead)()
                entry = session.scalar(select(QuarantineEntry).where(QuarantineEntry.raw_item_id == raw.id))
                _finish(ctx, raw, problems, entry, known=True)
                if headers is not None:
                    note_replies(session, {raw.id: headers})
            return ctx.index
        except ParseError as error:
            reason = str(error) or "unparsable item"
        except (IntegrityError, OperationalError) as error:
            if schema_mismatch(error):
                raise
            log.info("database conflict on raw item %s (attempt %d): %s", raw.id, attempt, error.orig)
            reason = error_reason(error)
            ctx.index = _index(ctx, session, refs)
            if attempt == 1:
                continue
        except Exception as error:  # never crash a sync on one bad item (but a schema mismatch is no item's)
            if schema_mismatch(error):
                raise
            log.exception("unexpected error processing raw item %s", raw.id)
            reason = error_reason(error)
        break
    _quarantined(ctx, raw, reason, None, known=False)
    # The savepoint rolled back: rebuild the index so it holds nothing created inside it.
    return _index(ctx, session, refs)


def _finish(ctx: ProcessContext, raw: RawItem, problems: list[str], entry: QuarantineEntry | None, known: bool) -> None:
    """Applied: the item is done. Parts that were skipped stay visible (and retryable) in the quarantine;
    without any, an earlier quarantine of the item is over. In a batch, a cleanly applied item's new state is
    written with the others' at the batch's end (``BatchCache.finish``)."""
    if ctx.batch is not None and not problems:
        ctx.batch.finished.append(raw)
        if entry is not None:
            ctx.session.delete(entry)
        return
    raw.processed_at = ctx.now
    if problems:
        quarantine(ctx.session, raw, "partly applied; skipped: " + "; ".join(problems), entry=entry, known=known)
        ctx.stats.quarantined += 1
    elif entry is not None:
        ctx.session.delete(entry)
    if raw.state != DELETED:
        raw.state = DONE


def _quarantined(ctx: ProcessContext, raw: RawItem, reason: str, entry: QuarantineEntry | None, known: bool) -> None:
    quarantine(ctx.session, raw, reason, entry=entry, known=known)
    raw.processed_at = ctx.now
    ctx.stats.quarantined += 1
