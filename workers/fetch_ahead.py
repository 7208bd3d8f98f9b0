"""Fetching in a process of its own while this process processes what it stores (``run_once``).

A forked child syncs the mailboxes — the same ``sync_mailbox`` actor, on an embedded queue of its own, with
database connections of its own — and reports each page it has stored (and committed) over a pipe. This
process's processing run follows those pages (``pipeline.follow``) instead of waiting for the whole fetch:
on a machine with a spare core, reading, hashing and storing the next pages no longer adds to the wall time.

Why a fork and not a new interpreter: spawning one that imports the pipeline takes 0.7–0.9 s here, a fork a
few milliseconds. A fork is only taken when it is safe:

- on Linux, where ``fork`` is the platform's own way to start a process;
- with no other thread running in this process: a thread holding a lock at the moment of the fork (the
  logging's, a stream's, the ORM's) would leave it held in the child for ever. ``run_once`` forks before its
  embedded queue starts its threads; a caller that runs threads of its own gets the fetch in-process.

The child never uses what it inherited: it opens its own database connections and Redis client, freezes the
inherited objects (``gc.freeze``: the collector never finalises a connection of the parent's from the child)
and leaves with ``os._exit``, as ``multiprocessing`` does, so no inherited connection is closed from its side.

A child whose parent was killed stops after the page it is storing: its next report finds the pipe closed.

Nothing depends on the child. If it cannot start, the sync runs in this process as before; if it dies, the
mailboxes it did not report are synced here afterwards, from the cursors their stored pages left.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection

from sync_service.bootstrap import App, bootstrap
from sync_service.config import Settings
from sync_service.pipeline.follow import FetchProgress
from sync_service.pipeline.runner import MailboxResult, mailbox_outcome

log = logging.getLogger(__name__)


def can_fork() -> bool:
    """A fork is safe here: Linux, and no thread but this one."""
    return (
        sys.platform.startswith("linux")
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
    )


class FetchAhead:
    """The fetch child of one ``run_once``: its progress, followed by the processing, and its outcomes."""

    def __init__(
        self, process: multiprocessing.process.BaseProcess, pipe: Connection, on_page: Callable[[int], None] | None
    ) -> None:
        self.progress = FetchProgress()
        self._process, self._pipe, self._on_page = process, pipe, on_page
        self._outcomes: dict[int, MailboxResult] = {}
        self._reader = threading.Thread(target=self._read, name="crm-sync-fetch-reader", daemon=True)

    @classmethod
    def start(
        cls, app: App, mailboxes: Sequence[tuple[int, str]], on_page: Callable[[int], None] | None = None
    ) -> FetchAhead | None:
        """Fork the child that syncs ``mailboxes`` (id, name); None when a fork is not safe or fails — the
        caller then syncs in-process."""
        if not mailboxes or not can_fork():
            return None
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_fetch, args=(app.settings, list(mailboxes), send, receive), name="crm-sync-fetch", daemon=True
        )
        try:
            process.start()
        except OSError as error:  # out of memory or processes
            log.warning("cannot start the fetch process, fetching in this one: %s", error)
            receive.close()
            send.close()
            return None
        send.close()  # the child's end: the reader sees the end of the pipe when the child is gone
        ahead = cls(process, receive, on_page)
        ahead._reader.start()
        return ahead

    def _read(self) -> None:
        try:
            while True:
                kind, value = self._pipe.recv()
                if kind == "page":
                    self.progress.page_stored(value)
                    if self._on_page is not None:
                        self._on_page(value)
                elif kind == "done":
                    self._outcomes = value
        except (EOFError, OSError):
            pass  # the child has ended (or died: the caller syncs what it did not report)
        finally:
            self._pipe.close()
            self.progress.finish()

    def outcomes(self) -> dict[int, MailboxResult]:
        """Wait for the child to end; each mailbox's result, by id — none for the mailboxes it did not report."""
        self._reader.join()
        self._process.join()
        if self._process.exitcode != 0:
            log.warning(
                "the fetch process ended with exit status %s; the mailboxes it did not finish are synced here",
                self._process.exitcode,
            )
        return dict(self._outcomes)

    @property
    def exitcode(self) -> int | None:
        """The child's exit status once it has ended (None while it runs)."""
        return self._process.exitcode

    def stop(self) -> None:
        """End the child now (this process is leaving on an error); what it stored stays, with its cursors."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._reader.join()


def _fetch(settings: Settings, mailboxes: list[tuple[int, str]], pipe: Connection, parents_end: Connection) -> None:
    """The child: sync ``mailboxes`` on an embedded queue of its own, report each stored page, then the outcomes."""
    gc.freeze()  # what the parent owns is never collected (and so never closed) from here
    parents_end.close()  # else a write would never fail once the parent is gone
    from workers.embedded import EmbeddedQueue, Hooks

    sending = threading.Lock()  # the queue's threads sync two mailboxes at once

    def on_page(count: int) -> None:
        try:
            with sending:
                pipe.send(("page", count))
        except OSError:  # the parent is gone (killed): stop here, where the page and its cursor are committed
            os._exit(0)

    app = bootstrap(settings)
    try:
        with EmbeddedQueue(app, Hooks(on_page=on_page)) as queue:
            for mailbox_id, _name in mailboxes:
                queue.send("sync_mailbox", mailbox_id)
            queue.join()
        outcomes = {m: mailbox_outcome(name, queue.outcome("sync_mailbox", m)) for m, name in mailboxes}
        with sending:
            pipe.send(("done", outcomes))
    finally:
        app.close()
        pipe.close()
