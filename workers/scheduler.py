"""The scheduler (Redis mode): every tick, decide from the database what work should be queued.

It never trusts the queue to remember work: after a worker crash or a Redis restart the database cursors and
states say what is left, and the scheduler re-drives it.

Per tick:

1. every mailbox that is not ``paused`` or ``failed`` and whose lock is free is enqueued (``sync_mailbox``)
   when its interval has elapsed since its last attempt — or at once when it is stuck: ``syncing`` with no
   live lock means the worker that held it died;
2. for each mailbox with pending raw items — or with recurring series the sync window has moved past since
   they were expanded (once a day, ``sync_service.pipeline.series``: nothing new is fetched for those) — and
   no processing run of its own (and no exclusive run holding the ``process`` lock), ``process_items(mailbox)``
   is enqueued;
3. every ``complete_every`` seconds, ``complete_due``.

A marker per enqueued message (``Locks.claim``, expiring after at most ``MARKER_TTL``) keeps a message that
waits in a busy queue from being enqueued again every tick; the task clears it once it holds its lock. Once
the marker has expired, a message still waiting in its queue (ready, or delayed for a retry) is not sent again
either (``queues.waiting_work``): while no worker runs, or all are busy, the queue does not fill with copies
of the same sync that would each run when the workers come back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from crm_store.models import Mailbox
from crm_store.models.sync import FAILED, PAUSED, SYNCING
from sync_service.pipeline.pending import pending_by_mailbox
from sync_service.pipeline.series import mailboxes_due
from workers.broker import Runtime
from workers.queues import waiting_work
from workers.tasks import PROCESS_LOCK, mailbox_lock, process_lock, queued_marker

log = logging.getLogger("workers.scheduler")
MARKER_TTL = 60.0  # seconds: how long a queued message is trusted to be picked up before it is sent again


@dataclass
class TickReport:
    enqueued: list[str] = field(default_factory=list)  # mailboxes whose interval elapsed
    relaunched: list[str] = field(default_factory=list)  # mailboxes stuck in 'syncing' with no live lock
    processing: bool = False
    completion: bool = False


class Scheduler:
    def __init__(self, runtime: Runtime, interval: float = 300.0, complete_every: float = 60.0) -> None:
        self.runtime, self.interval, self.complete_every = runtime, interval, complete_every
        self._marker_ttl = min(interval, MARKER_TTL)
        self._completed_at: float | None = None

    def tick(self, now: datetime | None = None) -> TickReport:
        now = now or datetime.now(UTC)
        report = TickReport()
        app, locks = self.runtime.context.app, self.runtime.locks
        with app.sessions() as session:
            rows = session.execute(
                select(Mailbox.id, Mailbox.name, Mailbox.state, Mailbox.last_success_at, Mailbox.last_error_at)
                .where(Mailbox.state.not_in((PAUSED, FAILED)))
                .order_by(Mailbox.id)
            ).all()
            waiting = pending_by_mailbox(session)
            pending = sum(waiting.values())
            series = mailboxes_due(session, now, app.settings)  # to expand again as the window slides
        queued = self._queued()
        for mailbox_id, name, state, succeeded, failed in rows:
            if locks.is_locked(mailbox_lock(mailbox_id)):
                continue
            stuck = state == SYNCING and self._still_syncing(mailbox_id)
            if state == SYNCING and not stuck:
                continue  # its sync ended between our read and the lock check: not stuck, just done
            last = max((t for t in (succeeded, failed) if t is not None), default=None)
            due = stuck or last is None or last + timedelta(seconds=self.interval) <= now
            if due and ("sync_mailbox", mailbox_id) in queued:
                continue  # its message still waits for a worker
            if due and locks.claim(queued_marker("sync_mailbox", mailbox_id), self._marker_ttl):
                self.runtime.send("sync_mailbox", mailbox_id)
                (report.relaunched if stuck else report.enqueued).append(name)
        if (pending or series) and not locks.is_locked(PROCESS_LOCK):
            for mailbox_id in sorted(waiting.keys() | series):  # one run per mailbox: several workers in parallel
                if ("process_items", mailbox_id) in queued or locks.is_locked(process_lock(mailbox_id)):
                    continue
                if locks.claim(queued_marker("process_items", mailbox_id), self._marker_ttl):
                    self.runtime.send("process_items", mailbox_id)
                    report.processing = True
        clock = time.monotonic()
        if self._completed_at is None or clock - self._completed_at >= self.complete_every:
            self._completed_at = clock
            if locks.claim(queued_marker("complete_due"), self.complete_every):
                self.runtime.send("complete_due")
                report.completion = True
        if report.enqueued or report.relaunched or report.processing:
            log.info(
                "work enqueued",
                extra={
                    "event": "schedule",
                    "enqueued": report.enqueued,
                    "relaunched": report.relaunched,
                    "processing": report.processing,
                    "pending": pending,
                },
            )
        return report

    def _queued(self) -> set[tuple[str, int | None]]:
        """The mailbox work waiting in the sync and process queues (Redis; nothing known on another broker)."""
        client = self.runtime.redis
        if client is None:
            return set()
        return waiting_work(client, "sync") | waiting_work(client, "process")

    def _still_syncing(self, mailbox_id: int) -> bool:
        """Read again now that its lock is seen free: a sync that just finished is not a stuck one."""
        with self.runtime.context.app.sessions() as session:
            return session.scalar(select(Mailbox.state).where(Mailbox.id == mailbox_id)) == SYNCING

    def run(self, tick_seconds: float, stop: threading.Event) -> None:
        """Tick until ``stop`` is set. A Redis or database outage is logged and the next tick tries again."""
        log.info("scheduler started", extra={"event": "scheduler_start", "interval": self.interval})
        while not stop.is_set():
            try:
                self.tick()
            except (redis.RedisError, SQLAlchemyError) as error:
                log.warning(f"tick failed: {error}", extra={"event": "schedule_error"})
            stop.wait(tick_seconds)
        log.info("scheduler stopped", extra={"event": "scheduler_stop"})
