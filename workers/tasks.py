"""The bodies of the actors: ids in, a lock around the work, the pipeline step, one structured log line.

Each task is idempotent, so at-least-once delivery is safe: a sync resumes from the stored cursors and
re-stored pages are recognised; processing only picks raw items still pending; completing due activities
and re-matching converge. Locks keep two copies of the same work from running at once:

- ``mailbox:<id>`` — one sync per mailbox (every worker process and ``sync --once`` share it in Redis mode);
- ``process:<id>`` — one processing run per mailbox. Runs of different mailboxes go in parallel on several
  workers. Rows they share are protected: the same email seen by two reps by the unique dedupe key (a batch
  that collides with another run's commit runs again, and the committed row is found and used; after a
  second collision it is redone in halves, ``pipeline.process``), an auto-created contact or lead by a lock
  on its address (``crm_store.db.lock_name``; a batch checks its new contacts under those locks at its end,
  ``pipeline.new_contacts``);
- ``process`` — exclusive: a run over every mailbox, and re-matching. It waits until no ``process:<id>``
  lease is held, and mailbox runs do not start while it is held.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Callable

import dramatiq
from dramatiq.middleware import CurrentMessage
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from crm_store.models import Mailbox
from crm_store.models.sync import PAUSED
from sync_service.pipeline import runner
from sync_service.pipeline.context import ProcessStats
from sync_service.pipeline.process import process_pending
from workers.context import WorkerContext
from workers.locks import Lease, LockLost
from workers.retry import TransientFailure

log = logging.getLogger("workers.tasks")
PROCESS_LOCK = "process"  # exclusive (every mailbox, re-matching)
MAILBOX_PROCESS_PREFIX = "process:"  # + mailbox id: one mailbox's processing
EXCLUSIVE_WAIT = 0.2  # seconds between checks while an exclusive run waits for mailbox runs to end


def process_lock(mailbox_id: int) -> str:
    return f"{MAILBOX_PROCESS_PREFIX}{mailbox_id}"


REMATCH_MODULE = "sync_service.pipeline.rematch"


def mailbox_lock(mailbox_id: int) -> str:
    return f"mailbox:{mailbox_id}"


def first_try() -> bool:
    """Is the message being worked on its first delivery, not a retry (dramatiq's ``CurrentMessage``)? A sync and
    its retries count as one failed sync on the mailbox. Outside a worker (no current message): True."""
    message = CurrentMessage.get_current_message()
    return message is None or not message.options.get("retries")


def queued_marker(actor: str, *ids: object) -> str:
    """The marker the scheduler sets when it enqueues ``actor(*ids)``; the task clears it once it holds its lock."""
    return ":".join([actor, *(str(i) for i in ids)])


class SyncPaused(Exception):
    """The mailbox was paused while it synced: stop at the page boundary."""


def sync_mailbox(ctx: WorkerContext, mailbox_id: int, folders: list[str] | None = None) -> runner.MailboxResult | None:
    """Sync one mailbox (or some of its folders) under its lock. ``None``: removed, or another sync runs.

    The scheduler's queued marker is cleared only once the lock is held (or the task has decided not to run):
    a tick in between then sees one or the other and does not enqueue the same sync a second time."""
    marker = queued_marker("sync_mailbox", mailbox_id)
    app = ctx.app
    with app.sessions() as session:
        mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None:
        ctx.locks.clear(marker)
        log.info("mailbox is gone", extra={"event": "sync_skipped", "mailbox_id": mailbox_id})
        return None
    if mailbox.state == PAUSED:
        ctx.locks.clear(marker)
        return runner.MailboxResult(mailbox.name, state=PAUSED)
    lease = ctx.locks.acquire(mailbox_lock(mailbox_id), ctx.options.lock_ttl)
    ctx.locks.clear(marker)
    if lease is None:
        log.info("already syncing", extra={"event": "sync_skipped", "mailbox": mailbox.name})
        return None
    started = time.monotonic()
    pages = _PageHook(ctx, lease, mailbox_id)
    try:
        result = runner.sync_mailbox(app, mailbox, pages, folders, first_try())
    except SyncPaused:
        result = runner.MailboxResult(mailbox.name, stored=pages.stored, state=PAUSED)
    except LockLost as error:
        raise _retry_later(error, mailbox=mailbox.name) from error
    except Exception as error:
        with contextlib.suppress(SQLAlchemyError):  # a bug or a database outage: show it on the mailbox if we can
            runner.record_failure(app, mailbox_id, f"{type(error).__name__}: {error}", False, first_try())
        raise
    finally:
        lease.release()
    log.info(
        "mailbox synced" if not result.error else "mailbox sync failed",
        extra={
            "event": "sync",
            "mailbox": result.name,
            "folders": folders,
            "stored": result.stored,
            "deleted": result.deleted,
            "state": result.state,
            "error": result.error,
            "duration": round(time.monotonic() - started, 3),
        },
    )
    if result.transient:
        raise TransientFailure(result, ctx.options.max_backoff_ms)
    return result


class _PageHook:
    """After each stored page: still our lock? still not paused? then report progress. Counts what the pages
    stored, so a sync stopped by a pause still reports (and logs) what it stored before it stopped."""

    def __init__(self, ctx: WorkerContext, lease: Lease, mailbox_id: int) -> None:
        self.ctx, self.lease, self.mailbox_id = ctx, lease, mailbox_id
        self.stored = 0

    def __call__(self, count: int) -> None:
        self.stored += count
        self.lease.check()
        with self.ctx.app.sessions() as session:
            if session.scalar(select(Mailbox.state).where(Mailbox.id == self.mailbox_id)) == PAUSED:
                raise SyncPaused()
        if self.ctx.hooks.on_page is not None:
            self.ctx.hooks.on_page(count)


def process_items(ctx: WorkerContext, mailbox_id: int | None = None) -> ProcessStats | None:
    """Process pending raw items (all, or one mailbox's). ``None``: the same work (or an exclusive run) is
    under way; whatever stays pending is enqueued again by the scheduler's next tick. A mailbox's run ends
    after its time slice (``CRM_PROCESS_SLICE_SECONDS``) with ``more`` set: ``continue_processing`` queues
    the rest."""
    lease = _exclusive_lease(ctx) if mailbox_id is None else _mailbox_lease(ctx, mailbox_id)
    ctx.locks.clear(queued_marker("process_items", *(() if mailbox_id is None else (mailbox_id,))))  # as above
    if lease is None:
        log.info("processing already running", extra={"event": "process_skipped", "mailbox_id": mailbox_id})
        return None
    on_progress = ctx.hooks.on_progress
    started = time.monotonic()

    def after_batch(done: int, total: int) -> None:
        lease.check()
        if on_progress is not None:
            on_progress(done, total)

    try:
        stats = process_pending(
            ctx.app,
            mailbox_id=mailbox_id,
            now=ctx.hooks.now,
            on_progress=after_batch,
            time_slice=ctx.options.process_slice if mailbox_id is not None else None,
            parse_processes=(
                ctx.hooks.parse_processes if ctx.hooks.parse_processes is not None else ctx.options.parse_processes
            ),
            follow=ctx.hooks.follow,
        )
    except LockLost as error:
        raise _retry_later(error) from error
    finally:
        lease.release()
    log.info(
        "items processed",
        extra={
            "event": "process",
            "mailbox_id": mailbox_id,
            **stats.as_dict(),
            "more": stats.more,
            "duration": _since(started),
        },
    )
    return stats


def continue_processing(ctx: WorkerContext, mailbox_id: int, send: Callable[[], object]) -> bool:
    """After a run that ended with its slice: queue the mailbox's next run at the back of the queue (behind
    other mailboxes' work), unless the scheduler has queued one already. True if sent."""
    if not ctx.locks.claim(queued_marker("process_items", mailbox_id), ctx.options.lock_ttl):
        return False
    send()
    return True


def _mailbox_lease(ctx: WorkerContext, mailbox_id: int) -> Lease | None:
    """This mailbox's processing lease, unless an exclusive run holds (or is waiting for) the ``process`` lock."""
    if ctx.locks.is_locked(PROCESS_LOCK):
        return None
    lease = ctx.locks.acquire(process_lock(mailbox_id), ctx.options.lock_ttl)
    if lease is not None and ctx.locks.is_locked(PROCESS_LOCK):  # it came between the check and our lease
        lease.release()
        return None
    return lease


def _exclusive_lease(ctx: WorkerContext) -> Lease | None:
    """The ``process`` lock once no mailbox run holds its lease (they stop starting as soon as we hold it)."""
    lease = ctx.locks.acquire(PROCESS_LOCK, ctx.options.lock_ttl)
    if lease is None:
        return None
    deadline = time.monotonic() + ctx.options.lock_ttl
    while ctx.locks.any_locked(MAILBOX_PROCESS_PREFIX):
        if time.monotonic() > deadline:
            lease.release()
            return None
        lease.check()
        time.sleep(EXCLUSIVE_WAIT)
    return lease


def complete_due(ctx: WorkerContext, converted: set[int] | None = None) -> int:
    """Planned meetings and calls whose end has passed become completed (``converted``: see the runner's)."""
    ctx.locks.clear(queued_marker("complete_due"))
    started = time.monotonic()
    count = runner.complete_due(ctx.app, ctx.hooks.now, converted)
    log.info(
        "due activities completed", extra={"event": "complete_due", "completed": count, "duration": _since(started)}
    )
    return count


def rematch(ctx: WorkerContext) -> object:
    """Match earlier items again after CRM changes (SPEC §3 rule 7), serialised with processing."""
    try:
        module = importlib.import_module(REMATCH_MODULE)
    except ModuleNotFoundError as error:
        if error.name != REMATCH_MODULE:
            raise
        log.warning("re-matching is not available in this version", extra={"event": "rematch_skipped"})
        return None
    lease = _exclusive_lease(ctx)
    if lease is None:
        raise dramatiq.Retry("processing is running; re-match after it", delay=5_000)
    started = time.monotonic()
    try:
        outcome = module.rematch(ctx.app)
    finally:
        lease.release()
    counts = outcome.as_dict() if hasattr(outcome, "as_dict") else {}
    log.info("re-matched", extra={"event": "rematch", **counts, "duration": _since(started)})
    return outcome


def rematch_replies(ctx: WorkerContext) -> object:
    """Match again the replies stored before the message they answer, now that it is stored (SPEC §3 rule a,
    ``pipeline.awaited``), serialised with processing like ``rematch``."""
    from sync_service.pipeline.rematch import rematch_waiting_replies

    lease = _exclusive_lease(ctx)
    if lease is None:
        raise dramatiq.Retry("processing is running; re-match the replies after it", delay=5_000)
    started = time.monotonic()
    try:
        outcome = rematch_waiting_replies(ctx.app)
    finally:
        lease.release()
    counts = {"examined": outcome.examined, "relinked": outcome.relinked, "errors": outcome.errors}
    log.info("replies re-matched", extra={"event": "rematch_replies", **counts, "duration": _since(started)})
    return outcome


def _retry_later(error: LockLost, **fields: object) -> dramatiq.Retry:
    """Another worker may own the work now; what was done is committed. Retry (with backoff), quietly."""
    log.warning(str(error), extra={"event": "lock_lost", **fields})
    return dramatiq.Retry(str(error))


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
