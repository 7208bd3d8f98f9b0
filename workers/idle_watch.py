"""The IDLE watch of one mailbox: one thread per folder, each holding its own IMAP connection in IDLE.

A ``MailboxWatch`` first resolves the mailbox's folders (as the sync does: the URL's ``folders=`` or INBOX and
the ``\\Sent`` folder), then runs one thread per folder:

    connect + EXAMINE ──▶ IDLE (≤ ``reidle`` s, < 29 min) ──change──▶ on_change(mailbox id, folder) ──┐
          ▲                    │ quiet timeout / keep-alive: a new IDLE                             │
          │                    ▼                                                                     │
          └── backoff ◀── connection lost (1, 2, 5, 15, 60, 300 s; a reconnection that finds the folder
                          changed reports a change) · login refused / no IDLE: wait ``permanent_wait`` s,
                          then try again with the latest stored secret

``stop()`` is seen within ``STOP_CHECK`` (0.5 s) by an IDLE, at once by a backoff wait; a thread that is
connecting finishes its connection attempt first (bounded by the source's ``timeout``). Errors are logged as one
line each (they never carry the secret); a thread never dies of one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sync_service.connectors.imap import ImapConnector
from sync_service.connectors.imap_idle import MAX_IDLE_SECONDS, FolderWatch
from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError
from sync_service.redact import redact_secret, redacted_error

log = logging.getLogger("workers.watch")

OnChange = Callable[[int, str], None]  # mailbox id, folder
OnRotated = Callable[[int, str], None]  # mailbox id, the new secret (a rotated OAuth2 refresh token)


@dataclass(frozen=True, slots=True)
class WatchedMailbox:
    id: int
    name: str
    url: str
    secret: str | None


@dataclass(frozen=True, slots=True)
class WatchTiming:
    reidle: float = 25 * 60  # seconds per IDLE command: RFC 2177 says re-issue it before 29 minutes
    backoff: tuple[float, ...] = (1.0, 2.0, 5.0, 15.0, 60.0, 300.0)  # after a lost connection, in turn
    permanent_wait: float = 300.0  # after a refused login or a server without IDLE

    def __post_init__(self) -> None:
        if not 0 < self.reidle <= MAX_IDLE_SECONDS or not self.backoff:
            raise ValueError("reidle must be in (0, 29 min] and backoff must not be empty")

    def delay(self, attempt: int) -> float:
        return self.backoff[min(attempt, len(self.backoff) - 1)]


class MailboxWatch:
    def __init__(
        self, mailbox: WatchedMailbox, on_change: OnChange, on_rotated: OnRotated, timing: WatchTiming
    ) -> None:
        self.mailbox, self.timing = mailbox, timing
        self._on_change, self._on_rotated = on_change, on_rotated
        self._secret = mailbox.secret
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._ready: set[str] = set()
        self._threads: list[threading.Thread] = []

    # -- control (called by the watcher) --------------------------------------------------------------
    def start(self) -> None:
        self._spawn(self._run, "resolve")

    def update_secret(self, secret: str | None) -> None:
        """The stored secret changed: used from the next connection on (a working one is not disturbed)."""
        with self._mutex:
            self._secret = secret

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        with self._mutex:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)

    @property
    def ready(self) -> frozenset[str]:
        """The folders whose connection is open and watched."""
        with self._mutex:
            return frozenset(self._ready)

    # -- threads ---------------------------------------------------------------------------------------
    def _spawn(self, target: Callable[..., None], what: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=f"watch {self.mailbox.name} {what}", daemon=True)
        with self._mutex:
            self._threads.append(thread)
        thread.start()

    def _run(self) -> None:
        folders = self._resolve_folders()
        for folder in folders or ():
            if not self._stop.is_set():
                self._spawn(self._watch, folder, folder)

    def _resolve_folders(self) -> list[str] | None:
        attempt = 0
        while not self._stop.is_set():
            connector: ImapConnector | None = None
            try:
                connector = ImapConnector(self.mailbox.url, self._current_secret())
                connector.backoff = ()  # the waits between attempts are ours (and stop-aware)
                return list(connector.folders())
            except TransientSourceError as error:
                delay, attempt = self.timing.delay(attempt), attempt + 1
                self._warn("cannot list the folders to watch", error, delay)
            except (PermanentSourceError, ConfigError) as error:
                delay = self.timing.permanent_wait
                self._warn("cannot list the folders to watch", error, delay)
            except Exception as error:  # a bug must not end the mailbox's watch silently: logged, tried again
                delay, attempt = self.timing.delay(attempt), attempt + 1
                self._unexpected("(listing the folders)", error)
            finally:
                if connector is not None:
                    connector.close()
            self._stop.wait(delay)
        return None

    def _watch(self, folder: str) -> None:
        watch: FolderWatch | None = None
        attempt, report_on_open = 0, False
        try:
            while not self._stop.is_set():
                try:
                    if watch is None:
                        watch = FolderWatch(self.mailbox.url, self._current_secret(), folder)
                    if watch.open() or report_on_open:  # changed while we were not connected
                        self._on_change(self.mailbox.id, folder)
                    report_on_open = False
                    self._set_ready(folder, True)
                    changed = watch.wait(self.timing.reidle, self._stop)
                    attempt = 0
                    self._keep_rotated(watch)
                    if changed:
                        self._on_change(self.mailbox.id, folder)
                    continue
                except TransientSourceError as error:
                    delay, attempt, afresh = self.timing.delay(attempt), attempt + 1, False
                    self._warn(f"IDLE on {folder!r} interrupted", error, delay)
                except (PermanentSourceError, ConfigError) as error:
                    delay, afresh = self.timing.permanent_wait, True
                    self._warn(f"cannot IDLE on {folder!r}", error, delay)
                except Exception as error:  # a bug must not end the watch silently
                    delay, attempt, afresh = self.timing.delay(attempt), attempt + 1, True
                    self._unexpected(folder, error)
                self._set_ready(folder, False)
                if watch is not None and afresh:
                    watch.close()  # start afresh, with the latest stored secret; the sync catches up
                    watch, report_on_open = None, True
                self._stop.wait(delay)
        finally:
            self._set_ready(folder, False)
            if watch is not None:
                watch.close()

    # -- helpers ---------------------------------------------------------------------------------------
    def _current_secret(self) -> str | None:
        with self._mutex:
            return self._secret

    def _set_ready(self, folder: str, ready: bool) -> None:
        with self._mutex:
            changed = (folder in self._ready) != ready
            (self._ready.add if ready else self._ready.discard)(folder)
        if changed and ready:
            log.info(
                f"{self.mailbox.name}: IDLE on {folder!r}",
                extra={"event": "watch_ready", "mailbox": self.mailbox.name, "folder": folder},
            )

    def _keep_rotated(self, watch: FolderWatch) -> None:
        rotated = watch.rotated_secret()
        with self._mutex:
            if not rotated or rotated == self._secret:
                return
            self._secret = rotated
        self._on_rotated(self.mailbox.id, rotated)

    def _secrets(self) -> tuple[str | None, str | None]:
        """The secret the watch started with and the latest one: masked in whatever it logs (SPEC §6)."""
        return self.mailbox.secret, self._current_secret()

    def _unexpected(self, folder: str, error: Exception) -> None:
        """A bug: its traceback — unless its text quotes the secret; then only the masked text."""
        masked = redacted_error(error, *self._secrets())
        log.error(
            f"unexpected error watching {folder!r} of {self.mailbox.name}: {masked or type(error).__name__}",
            exc_info=masked is None,
            extra={"event": "watch_error", "mailbox": self.mailbox.name, "folder": folder},
        )

    def _warn(self, what: str, error: Exception, delay: float) -> None:
        log.warning(
            f"{self.mailbox.name}: {what}: {redact_secret(str(error), *self._secrets())}; next try in {delay:g} s",
            extra={"event": "watch_error", "mailbox": self.mailbox.name, "retry_in": delay},
        )
