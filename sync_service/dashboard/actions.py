"""What the dashboard's buttons do; each returns the one-line message shown after it.

The same service functions as the CLI (``mailboxes``, ``manual_links``, ``workers.queues``), in short
transactions; in Redis mode the follow-up work (a sync after resume, processing after a retry) is queued for
the workers, in the embedded mode it runs here.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from sqlalchemy import select, update
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


def retry_quarantined(app: App, entry_id: int) -> str:
    """Set the quarantined raw item back to pending and process it again (queued in Redis mode)."""
    with transaction(app.sessions) as session:
        entry = session.get(QuarantineEntry, entry_id)
        if entry is None:
            raise ConfigError(f"no quarantine entry {entry_id}")
        raw = session.get(RawItem, entry.raw_item_id) if entry.raw_item_id is not None else None
        if raw is None:
            raise ConfigError("the item behind this quarantine entry is gone; it cannot be retried")
        mailbox_id, external_id = raw.mailbox_id, entry.external_id
        if raw.sha256 is None:  # never stored (over CRM_MAX_MESSAGE_BYTES then): it must be fetched again
            refetch(session, raw)
            return (
                f"Item {external_id} was never stored: its folder is read again by the next sync, which fetches "
                "it if the size limit allows it now."
            )
        raw.state, raw.processed_at = PENDING, None
    if _redis_mode(app):
        if _queue(app, "process_items", mailbox_id):
            return f"Item {external_id} queued for processing again."
        return f"Item {external_id} is pending again; the workers process it on their next round."
    process_pending(app, mailbox_id=mailbox_id)
    with app.sessions() as session:
        again = session.scalar(select(QuarantineEntry).where(QuarantineEntry.id == entry_id))
        if again is None:
            return f"Item {external_id} processed: it left the quarantine."
        return f"Item {external_id} is still quarantined: {again.reason}"


def assign_review(app: App, activity_id: int, opportunity_id: int, now: datetime | None = None) -> str:
    """A person's choice of opportunity for a review item; the item is matched again afterwards."""
    now = now or datetime.now(UTC)
    with transaction(app.sessions) as session:
        activity, _ = manual_links.assign_opportunity(session, activity_id, opportunity_id, now)
        title = activity.opportunity.title if activity.opportunity else str(opportunity_id)
        item_id = activity.item_id
    rederive(app, activity_id, item_id, now)
    return f"Activity {activity_id} assigned to opportunity {title}."
