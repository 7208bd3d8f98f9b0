"""What the dashboard's buttons do; each returns the one-line message shown after it.

The same service functions as the CLI (``mailboxes``, ``manual_links``, ``workers.queues``), in short
transactions; in Redis mode the follow-up work (a sync after resume, processing after a retry) is queued for
the workers, in the embedded mode it runs here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from crm_store.db import transaction
from crm_store.models import FolderState, Mailbox, QuarantineEntry, RawItem
from crm_store.models.sync import PENDING
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.errors import ConfigError
from sync_service.pipeline import manual_links
from sync_service.pipeline.process import process_pending
from sync_service.pipeline.rederive import rederive
from workers import QUEUES
from workers.broker import broker_mode, setup_broker
from workers.queues import requeue_dead

MAILBOX_ACTIONS = ("pause", "resume", "resync")


def _redis_mode(app: App) -> bool:
    return broker_mode(app.settings) == "redis"


def _queue(app: App, actor: str, *args: object) -> bool:
    """Send ``actor(*args)`` to the Redis workers; False in the embedded mode or when Redis cannot be reached
    (the scheduler re-drives the work from the database later, as after any lost message)."""
    if not _redis_mode(app):
        return False
    try:
        runtime = setup_broker(app.settings, app=app)
        try:
            runtime.send(actor, *args)
        finally:
            runtime.close()
    except redis.RedisError:
        return False
    return True


def mailbox_action(app: App, name: str, action: str) -> str:
    """Pause, resume or resync a mailbox; after resume / resync a sync is queued at once in Redis mode."""
    if action not in MAILBOX_ACTIONS:
        raise ConfigError(f"unknown mailbox action {action!r}")
    with transaction(app.sessions) as session:
        getattr(mailboxes, f"{action}_mailbox")(session, name)
        mailbox_id = session.scalar(select(Mailbox.id).where(Mailbox.name == name))
    done = {"pause": "paused", "resume": "resumed", "resync": "will be read again from the start"}[action]
    queued = action != "pause" and mailbox_id is not None and _queue(app, "sync_mailbox", mailbox_id)
    return f"Mailbox {name} {done}" + ("; a sync is queued." if queued else ".")


def mailbox_id_of(app: App, name: str) -> int:
    """The id of the mailbox named ``name``; a one-line ``ConfigError`` if there is none."""
    with app.sessions() as session:
        found = session.scalar(select(Mailbox.id).where(Mailbox.name == name))
    if found is None:
        raise ConfigError(f"no mailbox named {name!r}")
    return found


def requeue_dead_letters(app: App, queue: str | None = None, mailbox: str | None = None) -> str:
    """Put dead letters back on their queues (Redis mode only): those of ``queue`` (or of every queue); with
    ``mailbox``, only the messages about that mailbox (its syncs and its processing)."""
    if queue is not None and queue not in QUEUES:
        raise ConfigError(f"unknown queue {queue!r}")
    mailbox_id = mailbox_id_of(app, mailbox) if mailbox is not None else None
    if not _redis_mode(app):
        raise ConfigError("dead letters exist in Redis mode only (CRM_BROKER_URL=redis://…)")
    runtime = setup_broker(app.settings, app=app)
    try:
        count = requeue_dead(runtime, (queue,) if queue else QUEUES, mailbox_id)
    finally:
        runtime.close()
    plural = "" if count == 1 else "s"
    if mailbox is not None:
        return f"Requeued {count} dead-lettered message{plural} of mailbox {mailbox}."
    where = f"the {queue} queue" if queue else "their queues"
    return f"Requeued {count} dead-lettered message{plural} on {where}."


def refetch(session: Session, raw: RawItem) -> None:
    """Have the next sync fetch ``raw`` again: its folder is listed again from the start (a resync round, which
    duplicates nothing) and its stored version no longer matches, so it is downloaded."""
    raw.version = ""
    session.execute(
        update(FolderState)
        .where(FolderState.mailbox_id == raw.mailbox_id, FolderState.folder == raw.folder)
        .values(cursor=None, stage="resync")
    )


RETRY_CHUNK = 900  # ids per statement of a bulk retry (SQLite allows 999 parameters in old builds)


@dataclass
class RetryReport:
    """What a retry of quarantine entries did (``retry_entries``)."""

    matched: int = 0  # entries selected
    processed: int = 0  # stored items set back to pending: processed again here, or by the workers
    refetched: int = 0  # never stored (over CRM_MAX_MESSAGE_BYTES): their folders are read again by the next sync
    skipped: int = 0  # no raw item behind them (a failed process step): retried by themselves
    cleared: int = 0  # left the quarantine (embedded mode)
    still: Counter[str] = field(default_factory=Counter)  # reason → entries quarantined again (embedded mode)
    queued: bool | None = None  # Redis mode: queued for the workers (True) or left pending (False); else None
    remaining: int = 0  # entries in the quarantine afterwards, all of them

    @property
    def still_quarantined(self) -> int:
        return sum(self.still.values())


def _chunks(values: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(values), RETRY_CHUNK):
        yield list(values[start : start + RETRY_CHUNK])


def _entry_filter(session: Session, every: bool, mailboxes: Sequence[str], reason: str | None) -> list[Any]:
    """The WHERE clauses of ``--all`` / ``--mailbox`` / ``--reason``; an unknown mailbox is a ``ConfigError``."""
    where: list[Any] = []
    if mailboxes:
        found = dict(session.execute(select(Mailbox.name, Mailbox.id).where(Mailbox.name.in_(set(mailboxes)))).all())
        missing = sorted(set(mailboxes) - set(found))
        if missing:
            raise ConfigError("no mailbox named " + ", ".join(repr(name) for name in missing))
        where.append(QuarantineEntry.mailbox_id.in_(found.values()))
    if reason is not None:
        where.append(QuarantineEntry.reason.icontains(reason, autoescape=True))
    if not where and not every:
        raise ConfigError("nothing selected: give entry ids, --all, --mailbox or --reason")
    return where


def retry_entries(
    app: App,
    ids: Sequence[int] = (),
    *,
    every: bool = False,
    mailboxes: Sequence[str] = (),
    reason: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    parse_processes: int = 0,
) -> RetryReport:
    """Retry quarantine entries: those of ``ids`` (each must exist and have its item), or those the selectors
    choose (``every``; ``mailboxes`` and ``reason``, a case-insensitive part of the reason, combined with AND).

    In one transaction and a few statements, the selected stored items are set back to pending and the
    never-stored ones (over CRM_MAX_MESSAGE_BYTES then) are marked to be fetched again (``refetch``); then ONE
    processing run takes them all (``on_progress(done, total)`` after each batch), or in Redis mode one
    ``process_items`` message per mailbox is queued. Entries without an item (a failed process step) are
    left alone by a selector: they are retried by themselves once their process is fixed."""
    report = RetryReport()
    columns = (QuarantineEntry.id, QuarantineEntry.raw_item_id, RawItem.id, RawItem.mailbox_id, RawItem.folder,
               RawItem.sha256)  # fmt: skip
    pending: list[int] = []  # raw items to process again
    entries: list[int] = []  # their quarantine entries
    folders: set[tuple[int, str]] = set()  # of the items to fetch again
    refetch_ids: list[int] = []
    process_boxes: set[int] = set()
    with transaction(app.sessions) as session:
        base = select(*columns).outerjoin(RawItem, RawItem.id == QuarantineEntry.raw_item_id)
        if ids:
            wanted = sorted(set(ids))
            rows = [r for chunk in _chunks(wanted) for r in session.execute(base.where(QuarantineEntry.id.in_(chunk)))]
            missing = sorted(set(wanted) - {r[0] for r in rows})
            if missing:
                raise ConfigError("no quarantine entr" + ("y " if len(missing) == 1 else "ies ")
                                  + ", ".join(map(str, missing)))  # fmt: skip
            gone = [r[0] for r in rows if r[2] is None]
            if gone:
                which = "this quarantine entry" if len(wanted) == 1 else f"quarantine entry {gone[0]}"
                raise ConfigError(f"the item behind {which} is gone; it cannot be retried")
        else:
            rows = list(session.execute(base.where(*_entry_filter(session, every, mailboxes, reason))))
        report.matched = len(rows)
        for entry_id, _, raw_id, mailbox_id, folder, sha256 in rows:
            if raw_id is None:
                report.skipped += 1
            elif sha256 is None:  # never stored: it must be fetched again
                refetch_ids.append(raw_id)
                folders.add((mailbox_id, folder))
            else:
                pending.append(raw_id)
                entries.append(entry_id)
                process_boxes.add(mailbox_id)
        for chunk in _chunks(pending):
            session.execute(
                update(RawItem).where(RawItem.id.in_(chunk)).values(state=PENDING, processed_at=None),
                execution_options={"synchronize_session": False},
            )
        for chunk in _chunks(refetch_ids):  # as ``refetch`` does, for many items and their few folders
            session.execute(
                update(RawItem).where(RawItem.id.in_(chunk)).values(version=""),
                execution_options={"synchronize_session": False},
            )
        for mailbox_id, folder in sorted(folders):
            session.execute(
                update(FolderState)
                .where(FolderState.mailbox_id == mailbox_id, FolderState.folder == folder)
                .values(cursor=None, stage="resync")
            )
    report.processed, report.refetched = len(pending), len(refetch_ids)
    if pending and _redis_mode(app):
        report.queued = all([_queue(app, "process_items", box) for box in sorted(process_boxes)])
    elif pending:
        only = next(iter(process_boxes)) if len(process_boxes) == 1 else None
        process_pending(app, mailbox_id=only, on_progress=on_progress, parse_processes=parse_processes)
    with app.sessions() as session:
        if report.queued is None:
            for chunk in _chunks(entries):
                counted = session.execute(
                    select(QuarantineEntry.reason, func.count())
                    .where(QuarantineEntry.id.in_(chunk))
                    .group_by(QuarantineEntry.reason)
                )
                report.still.update({text: int(n) for text, n in counted})
            report.cleared = len(entries) - report.still_quarantined
        report.remaining = session.scalar(select(func.count()).select_from(QuarantineEntry)) or 0
    return report


def retry_all_quarantined(app: App) -> str:
    """Every quarantine entry, retried in one run (queued in Redis mode): the dashboard's *Retry all*."""
    report = retry_entries(app, every=True)
    if not report.processed and not report.refetched:
        return "Nothing to retry: no quarantined item is waiting for a retry by hand."
    parts = []
    if report.processed:
        if report.queued is None:
            parts.append(f"{report.cleared:,} of {report.processed:,} left the quarantine")
        elif report.queued:
            parts.append(f"{report.processed:,} queued for processing again")
        else:
            parts.append(f"{report.processed:,} pending again; the workers process them on their next round")
    if report.refetched:
        parts.append(f"{report.refetched:,} never stored: their folders are read again by the next sync")
    return "Retried: " + "; ".join(parts) + f". {report.remaining:,} in the quarantine now."


def retry_quarantined(app: App, entry_id: int) -> str:
    """Set the quarantined raw item back to pending and process it again (queued in Redis mode)."""
    with app.sessions() as session:
        external_id = session.scalar(select(QuarantineEntry.external_id).where(QuarantineEntry.id == entry_id))
    if external_id is None:
        raise ConfigError(f"no quarantine entry {entry_id}")
    report = retry_entries(app, [entry_id])
    if report.refetched:
        return (
            f"Item {external_id} was never stored: its folder is read again by the next sync, which fetches "
            "it if the size limit allows it now."
        )
    if report.queued is not None:
        if report.queued:
            return f"Item {external_id} queued for processing again."
        return f"Item {external_id} is pending again; the workers process it on their next round."
    if not report.still:
        return f"Item {external_id} processed: it left the quarantine."
    return f"Item {external_id} is still quarantined: {next(iter(report.still))}"


def assign_review(app: App, activity_id: int, opportunity_id: int, now: datetime | None = None) -> str:
    """A person's choice of opportunity for a review item; the item is matched again afterwards."""
    now = now or datetime.now(UTC)
    with transaction(app.sessions) as session:
        activity, _ = manual_links.assign_opportunity(session, activity_id, opportunity_id, now)
        title = activity.opportunity.title if activity.opportunity else str(opportunity_id)
        item_id = activity.item_id
    rederive(app, activity_id, item_id, now)
    return f"Activity {activity_id} assigned to opportunity {title}."
