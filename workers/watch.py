"""The IMAP IDLE watcher (``crm-sync watch``, Redis mode): near-real-time pickup for mailboxes with ``idle=1``.

Every ``refresh_every`` seconds it reads the mailbox list from the database: each IMAP mailbox that is not
``paused`` or ``failed`` and whose URL says ``idle=1`` gets a ``MailboxWatch`` (``workers/idle_watch.py``: one
IDLE connection per synced folder). Mailboxes added, resumed, paused, failed or removed since the last look are
started or stopped; a changed URL restarts the watch; a changed secret is used from the next connection on.

When a watch reports a change, the mailbox becomes *pending*, and the dispatch (at most ``DISPATCH_EVERY`` s
later) enqueues ``sync_mailbox`` through the scheduler's marker (``queued_marker("sync_mailbox", id)``, see
``workers/scheduler.py``), so a burst of new mail, several folders changing at once, or the scheduler's own
tick, queue one sync between them:

- marker claimed → the sync is sent; the mailbox is no longer pending;
- marker already set → a queued sync has not started yet; it will see the change: no longer pending;
- the mailbox's lock is held → a running sync may have listed its folders before the change: it stays
  pending and is sent once the lock is free.

A sync whose refresh token rotated inside the watcher stores the new secret (encrypted), as the sync does.
``run(stop)`` returns after every IDLE connection is closed (a few seconds at most after ``stop`` is set).
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

import redis
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from crm_store.db import transaction
from crm_store.models import Mailbox
from crm_store.models.sync import FAILED, PAUSED
from crm_store.secrets import SecretBox
from sync_service.bootstrap import App
from sync_service.connectors.imap_config import ImapConfig
from sync_service.errors import ConfigError
from workers.broker import Runtime
from workers.idle_watch import MailboxWatch, WatchedMailbox, WatchTiming
from workers.scheduler import MARKER_TTL
from workers.tasks import mailbox_lock, queued_marker

log = logging.getLogger("workers.watch")
DISPATCH_EVERY = 0.5  # seconds: the longest a pending mailbox waits for the dispatch (and ``stop`` for run)
STOP_TIMEOUT = 10.0  # seconds to wait for the watch threads to close their connections


def idle_mailboxes(app: App) -> list[WatchedMailbox]:
    """The IMAP mailboxes to watch: not paused nor failed, ``idle=1`` in the URL; secrets decrypted."""
    with app.sessions() as session:
        rows = session.execute(
            select(Mailbox.id, Mailbox.name, Mailbox.source_url, Mailbox.secret)
            .where(Mailbox.state.not_in((PAUSED, FAILED)))
            .order_by(Mailbox.id)
        ).all()
    box: SecretBox | None = None
    wanted: list[WatchedMailbox] = []
    for mailbox_id, name, url, encrypted in rows:
        if urlsplit(url).scheme.lower() not in ("imap", "imaps"):
            continue
        try:
            if not ImapConfig.from_url(url).idle:
                continue
            if encrypted is not None and box is None:
                box = SecretBox(app.settings.secret_keys)
            secret = box.decrypt(encrypted) if box is not None and encrypted is not None else None
        except ConfigError as error:  # the sync reports it on the mailbox; the watcher just leaves it out
            log.warning(f"{name}: not watched: {error}", extra={"event": "watch_skipped", "mailbox": name})
            continue
        wanted.append(WatchedMailbox(mailbox_id, name, url, secret))
    return wanted


class Watcher:
    def __init__(
        self,
        runtime: Runtime,
        refresh_every: float = 30.0,
        timing: WatchTiming | None = None,
        marker_ttl: float = MARKER_TTL,
    ) -> None:
        self.runtime, self.refresh_every, self.marker_ttl = runtime, refresh_every, marker_ttl
        self.timing = timing or WatchTiming()
        self._watches: dict[int, MailboxWatch] = {}
        self._pending: set[int] = set()
        self._mutex = threading.Lock()
        self._wake = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop`` is set; then close every IDLE connection and return."""
        log.info("watcher started", extra={"event": "watch_start", "refresh_every": self.refresh_every})
        next_refresh = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() >= next_refresh:
                    self.refresh()
                    next_refresh = time.monotonic() + self.refresh_every
                self.dispatch()
                self._wake.wait(DISPATCH_EVERY)
                self._wake.clear()
        finally:
            self.close()
            log.info("watcher stopped", extra={"event": "watch_stop"})

    def refresh(self) -> None:
        """Start, stop, restart watches after the mailbox list; a database outage keeps the current ones."""
        try:
            wanted = {m.id: m for m in idle_mailboxes(self.runtime.context.app)}
        except SQLAlchemyError as error:
            log.warning(f"cannot read the mailboxes: {error}", extra={"event": "watch_error"})
            return
        for mailbox_id, watch in list(self._watches.items()):
            target = wanted.get(mailbox_id)
            if target is None or target.url != watch.mailbox.url:
                self._stop_watch(mailbox_id, "paused, failed, removed or changed")
            elif target.secret != watch.mailbox.secret:
                watch.update_secret(target.secret)
        for mailbox_id, target in wanted.items():
            if mailbox_id not in self._watches:
                watch = MailboxWatch(target, self._changed, self._store_rotated, self.timing)
                self._watches[mailbox_id] = watch
                watch.start()
                log.info(f"watching {target.name}", extra={"event": "watch_mailbox", "mailbox": target.name})
        with self._mutex:
            self._pending &= set(wanted)

    def dispatch(self) -> list[int]:
        """Enqueue a sync of every pending mailbox whose lock is free; returns the ids sent."""
        with self._mutex:
            pending = sorted(self._pending)
        sent: list[int] = []
        locks = self.runtime.locks
        for mailbox_id in pending:
            try:
                if locks.is_locked(mailbox_lock(mailbox_id)):
                    continue
                if locks.claim(queued_marker("sync_mailbox", mailbox_id), self.marker_ttl):
                    self.runtime.send("sync_mailbox", mailbox_id)
                    sent.append(mailbox_id)
            except redis.RedisError as error:
                log.warning(f"cannot enqueue a sync: {error}", extra={"event": "watch_error"})
                break  # still pending: the next dispatch tries again
            with self._mutex:
                self._pending.discard(mailbox_id)
        if sent:
            log.info("sync enqueued after IDLE", extra={"event": "watch_enqueue", "mailbox_ids": sent})
        return sent

    def watching(self) -> dict[str, frozenset[str]]:
        """Mailbox name → the folders under IDLE right now."""
        return {watch.mailbox.name: watch.ready for watch in list(self._watches.values())}

    def close(self) -> None:
        for watch in self._watches.values():
            watch.stop()
        deadline = time.monotonic() + STOP_TIMEOUT
        for watch in self._watches.values():
            watch.join(max(0.0, deadline - time.monotonic()))
        self._watches.clear()

    # -- callbacks of the watch threads ---------------------------------------------------------------
    def _changed(self, mailbox_id: int, folder: str) -> None:
        with self._mutex:
            self._pending.add(mailbox_id)
        self._wake.set()
        log.info("folder changed", extra={"event": "watch_change", "mailbox_id": mailbox_id, "folder": folder})

    def _store_rotated(self, mailbox_id: int, secret: str) -> None:
        app = self.runtime.context.app
        try:
            encrypted = SecretBox(app.settings.secret_keys).encrypt(secret)
            with transaction(app.sessions) as session:
                session.execute(update(Mailbox).where(Mailbox.id == mailbox_id).values(secret=encrypted))
        except (SQLAlchemyError, ConfigError) as error:
            log.warning(f"cannot store a rotated secret: {type(error).__name__}", extra={"event": "watch_error"})

    def _stop_watch(self, mailbox_id: int, why: str) -> None:
        watch = self._watches.pop(mailbox_id)
        watch.stop()  # its threads close their connections within a second; no need to wait here
        log.info(f"no longer watching {watch.mailbox.name} ({why})", extra={"event": "watch_mailbox_stop"})
