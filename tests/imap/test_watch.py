"""The IDLE watcher (``workers/watch.py``) against a real Dovecot, enqueuing on an in-process dramatiq broker.

No worker consumes the queue here, so every ``sync_mailbox`` message the watcher sends stays in the broker's
``sync`` queue, where the tests count them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dramatiq import Message

from crm_store.db import transaction
from sync_service import mailboxes
from sync_service.bootstrap import App
from tests.imap.conftest import PASSWORD
from tests.support.builders import REP, REP2, message
from tests.support.dovecot import DovecotServer
from workers.broker import Runtime, setup_broker
from workers.idle_watch import WatchTiming
from workers.tasks import mailbox_lock, queued_marker
from workers.watch import Watcher


def mail(tag: str) -> bytes:
    return message(f"{tag}@test", "wile@acme.example", [REP], f"Mail {tag}")


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Running:
    watcher: Watcher
    runtime: Runtime
    stop: threading.Event
    thread: threading.Thread
    ids: dict[str, int]

    def syncs(self) -> list[int]:
        """Mailbox ids of the ``sync_mailbox`` messages waiting in the queue, in order."""
        queued = list(self.runtime.broker.queues["sync"].queue)
        decoded = [Message.decode(raw) for raw in queued]
        return [m.args[0] for m in decoded if m.actor_name == "sync_mailbox"]

    def start_sync(self, name: str) -> None:
        """What a worker does first when it takes the message: clear the marker (``tasks.sync_mailbox``)."""
        self.runtime.locks.clear(queued_marker("sync_mailbox", self.ids[name]))


@pytest.fixture
def running(dovecot: DovecotServer, keyed_app: App) -> Iterator[Running]:
    with transaction(keyed_app.sessions) as session:
        for name, user, owner, query in [
            ("alice-idle", "alice", REP, "idle=1"),  # INBOX and Sent (the \\Sent folder)
            ("bob-polled", "bob", REP2, ""),
        ]:
            secret = PASSWORD if user == "alice" else dovecot.users[user]
            url = dovecot.url(user, query=query)
            mailboxes.add_mailbox(session, name, owner, url, secret, keyed_app.settings.secret_keys)
    with keyed_app.sessions() as session:
        ids = {info.name: mailboxes._get(session, info.name).id for info in mailboxes.list_mailboxes(session)}
    runtime = setup_broker(keyed_app.settings, app=keyed_app, embedded=True)
    timing = WatchTiming(reidle=1.5, backoff=(0.2, 0.5), permanent_wait=1.0)  # re-IDLE often: it must not miss mail
    watcher = Watcher(runtime, refresh_every=0.3, timing=timing)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), name="watcher under test")
    thread.start()
    state = Running(watcher, runtime, stop, thread, ids)
    try:
        wait_for(lambda: watcher.watching() == {"alice-idle": {"INBOX", "Sent"}}, 15, "IDLE on INBOX and Sent")
        yield state
    finally:
        stop.set()
        thread.join(15)
        runtime.close()


def test_new_mail_in_a_watched_folder_enqueues_one_sync(running: Running, dovecot: DovecotServer) -> None:
    alice, bob = running.ids["alice-idle"], running.ids["bob-polled"]
    started = time.monotonic()
    dovecot.append("alice", [mail("a1")])
    wait_for(lambda: running.syncs() == [alice], 5, "a sync of alice after the APPEND")
    assert time.monotonic() - started < 5
    # A burst while that sync waits in the queue (marker set): nothing more is queued …
    dovecot.append("alice", [mail("a2"), mail("a3")])
    dovecot.append("alice", [mail("s1")], folder="Sent")
    time.sleep(1.5)
    assert running.syncs() == [alice]
    # … nor for a mailbox without idle=1.
    dovecot.append("bob", [mail("b1")])
    time.sleep(1.0)
    assert bob not in running.syncs()
    # Once a worker took the message, the next change (after several re-IDLEs) queues the next sync.
    running.start_sync("alice-idle")
    time.sleep(2.0)
    dovecot.append("alice", [mail("a4")], folder="Sent")
    wait_for(lambda: running.syncs() == [alice, alice], 5, "a second sync of alice")


def test_a_change_during_a_running_sync_is_queued_when_the_sync_ends(running: Running, dovecot: DovecotServer) -> None:
    alice = running.ids["alice-idle"]
    lease = running.runtime.locks.acquire(mailbox_lock(alice), 60)  # a worker is syncing alice right now
    assert lease is not None
    dovecot.append("alice", [mail("during")])
    time.sleep(1.5)
    assert running.syncs() == []  # that sync may have listed INBOX already: wait for it to end …
    lease.release()
    wait_for(lambda: running.syncs() == [alice], 3, "the sync queued after the lock was released")


def test_paused_mailboxes_are_dropped_and_resumed_ones_picked_up(
    running: Running, dovecot: DovecotServer, keyed_app: App
) -> None:
    with transaction(keyed_app.sessions) as session:
        mailboxes.pause_mailbox(session, "alice-idle")
    wait_for(lambda: running.watcher.watching() == {}, 5, "the paused mailbox to be dropped")
    dovecot.append("alice", [mail("paused")])
    time.sleep(1.0)
    assert running.syncs() == []
    with transaction(keyed_app.sessions) as session:
        mailboxes.resume_mailbox(session, "alice-idle")
        url = dovecot.url("bob", query="idle=1&folders=INBOX")
        mailboxes.add_mailbox(session, "bob-idle", REP2, url, dovecot.users["bob"], keyed_app.settings.secret_keys)
    wait_for(
        lambda: running.watcher.watching() == {"alice-idle": {"INBOX", "Sent"}, "bob-idle": {"INBOX"}},
        15,
        "IDLE on the resumed and the added mailbox",
    )
    with keyed_app.sessions() as session:
        bob = mailboxes._get(session, "bob-idle").id
    dovecot.append("bob", [mail("b2")])
    wait_for(lambda: running.syncs() == [bob], 5, "a sync of the added mailbox")


def test_a_server_restart_reconnects_and_reports_mail_that_came_meanwhile(
    running: Running, dovecot: DovecotServer
) -> None:
    alice = running.ids["alice-idle"]
    sessions = imap_processes(dovecot)
    assert len(sessions) >= 2  # the two IDLE connections
    dovecot.stop()
    for pid in sessions:  # Dovecot's master leaves its imap processes running when it stops: a crash kills them
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: running.watcher.watching() == {"alice-idle": frozenset()}, 5, "the lost connections")
    dovecot.deliver("alice", [mail("while-down")])  # straight into the Maildir: no IDLE can see it
    dovecot.start()
    wait_for(lambda: running.syncs() == [alice], 10, "a sync after reconnecting")
    # Each folder reconnects on its own backoff: the second one may come back a moment after the first.
    wait_for(lambda: running.watcher.watching() == {"alice-idle": {"INBOX", "Sent"}}, 10, "both IDLEs back")


def imap_processes(dovecot: DovecotServer) -> list[int]:
    """Pids of the server's ``imap`` session processes (children of its master process)."""
    assert dovecot.process is not None
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
            if rest[1] == str(dovecot.process.pid) and name.endswith("imap"):
                found.append(int(stat.parent.name))
    return found


def test_stop_closes_every_connection_quickly(running: Running) -> None:
    started = time.monotonic()
    running.stop.set()
    running.thread.join(10)
    assert not running.thread.is_alive() and time.monotonic() - started < 3
    assert not [t for t in threading.enumerate() if t.name.startswith("watch ")]
    assert running.watcher.watching() == {}
