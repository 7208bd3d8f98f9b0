"""Live workers (each worker process's presence key, ``workers.presence``) and stuck mailboxes (no lease), read
from a real Redis; and what `collect_status` / `crm-sync status` make of them."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
from sqlalchemy import select, update

from crm_store.db import transaction
from crm_store.models import Mailbox
from crm_store.models.sync import SYNCING
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.status import collect_status
from tests.support.builders import REP, seed_crm
from tests.support.servers import RedisServer
from tests.workers.conftest import wait_for
from workers import presence
from workers.broker import NAMESPACE, Runtime, setup_broker
from workers.liveness import (
    Liveness,
    RedisLiveness,
    live_workers,
    redis_liveness,
    stuck_mailboxes,
    worker_presences,
)
from workers.locks import RedisLocks
from workers.presence import PRESENCE_TTL, WorkerPresence, presence_key
from workers.queues import queue_status
from workers.scheduler import Scheduler
from workers.tasks import mailbox_lock


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def _runtime(app: App, url: str) -> Runtime:
    """The broker a `crm-sync worker` process (or the scheduler, the CLI) builds in Redis mode."""
    app.settings = dataclasses.replace(app.settings, broker_url=url)
    return setup_broker(app.settings, app=app)


@pytest.fixture
def runtime(app: App, redis_url: str) -> Iterator[Runtime]:
    built = _runtime(app, redis_url)
    yield built
    built.close()


def _worker(runtime: Runtime) -> dramatiq.Worker:
    worker = dramatiq.Worker(runtime.broker, worker_threads=1, worker_timeout=100)
    worker.start()
    return worker


def _presence(runtime: Runtime) -> WorkerPresence:
    return next(m for m in runtime.broker.middleware if isinstance(m, WorkerPresence))


def test_a_running_worker_is_alive_and_a_stopped_one_is_gone_at_once(
    runtime: Runtime, client: redis.Redis, redis_url: str
) -> None:
    assert live_workers(client) == 0 and worker_presences(client) == []  # nothing ever ran

    worker = _worker(runtime)
    try:
        assert live_workers(client) == 1  # registered as it booted
        (seen,) = worker_presences(client)
        assert seen.key == presence_key() == f"crm-sync:worker:{socket.gethostname()}:{seen.record['pid']}"
        assert seen.record["threads"] == 1 and seen.record["queues"] == ["maintenance", "process", "sync"]
        assert seen.beat_at is not None and abs((_now() - seen.beat_at).total_seconds()) < 2
        assert 0 < client.pttl(seen.key) <= PRESENCE_TTL * 1000  # a killed worker's key expires
        look = RedisLiveness(redis_url)([], _now())
        assert (look.alive, look.last_seen, look.window) == (1, seen.beat_at, PRESENCE_TTL)
    finally:
        worker.stop()
    assert live_workers(client) == 0 and client.exists(presence_key()) == 0  # deleted, not left to expire


def test_a_stopping_worker_counts_until_it_has_finished_its_message(
    runtime: Runtime, client: redis.Redis, redis_url: str
) -> None:
    started, release = threading.Event(), threading.Event()

    @dramatiq.actor(broker=runtime.broker, queue_name="maintenance", actor_name="liveness_test_hold", max_retries=0)
    def hold() -> None:
        started.set()
        release.wait(20)

    worker = _worker(runtime)
    stopper = threading.Thread(target=worker.stop)
    try:
        hold.send()
        assert started.wait(10), "the worker never took the message"
        stopper.start()  # a SIGTERM: dramatiq lets the running message finish
        wait_for(lambda: bool(worker_presences(client)[0].record.get("stopping_since")), 5, "the stopping mark")
        assert live_workers(client) == 1  # still working: "no worker alive" would be a false alarm
        assert RedisLiveness(redis_url)([], _now()).stopping == 1
        assert stopper.is_alive()
    finally:
        release.set()
        if stopper.ident is None:
            worker.stop()
        else:
            stopper.join(20)
    assert not stopper.is_alive()
    assert live_workers(client) == 0 and client.exists(presence_key()) == 0  # gone once it has stopped


def test_a_killed_worker_counts_until_its_key_expires(
    runtime: Runtime, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(presence, "PRESENCE_TTL", 1.0)
    monkeypatch.setattr(presence, "BEAT_SECONDS", 0.1)
    worker = _worker(runtime)
    try:
        time.sleep(1.5)  # longer than the TTL: the beats keep the key
        assert live_workers(client) == 1
        _presence(runtime).beats[id(worker)].halt()  # what SIGKILL does: no more beats, nobody deletes the key
        assert live_workers(client) == 1
        wait_for(lambda: live_workers(client) == 0, 5, "the dead worker's key to expire")
    finally:
        worker.stop()


def test_a_process_that_only_sends_is_not_a_worker(
    app: App, runtime: Runtime, client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    _syncing_mailbox(app, tmp_path)
    report = Scheduler(runtime, interval=60, complete_every=60).tick()  # what `crm-sync scheduler` does
    assert report.enqueued and report.completion
    runtime.send("rematch")  # a resync from the CLI, `crm-sync watch`: they send too
    # dramatiq's dispatch script gave this sender a fresh heartbeat, as it gives one to every process…
    heartbeats = client.zrange(f"{NAMESPACE}:__heartbeats__", 0, -1, withscores=True)
    assert len(heartbeats) == 1 and _now().timestamp() - heartbeats[0][1] / 1000 < 5
    # …but only a booted worker registers itself: a sender is never a live worker.
    assert live_workers(client) == 0
    look = RedisLiveness(redis_url)([], _now())
    assert look.alive == 0 and look.last_seen is None and look.error is None
    status = _status(app, redis_url)
    assert status["workers"]["alive"] == 0 and status["workers"]["alert"].startswith("no worker alive")


def test_a_redis_outage_while_beating_does_not_stop_the_worker(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer()  # its own server: this test stops it
    url = server.start()
    monkeypatch.setattr(presence, "BEAT_SECONDS", 0.1)
    runtime = _runtime(app, url)
    client = redis.Redis.from_url(url)
    worker = _worker(runtime)
    try:
        beat = _presence(runtime).beats[id(worker)]
        with caplog.at_level(logging.DEBUG, logger="workers.presence"):
            server.stop()  # killed: a restart comes back empty
            time.sleep(1.0)  # several beats fail
            assert beat.thread.is_alive()
            assert any(r.levelno == logging.WARNING and "cannot write" in r.message for r in caplog.records)
            restarted = _now()
            server.boot()
            wait_for(lambda: live_workers(client) == 1, 10, "the worker to register itself again")
        (seen,) = worker_presences(client)
        assert seen.beat_at is not None and seen.beat_at >= restarted - timedelta(seconds=1)
        assert any("written again" in r.message for r in caplog.records)
    finally:
        worker.stop()
        runtime.close()
        client.close()
        server.close()
    assert not beat.thread.is_alive()


def test_the_embedded_queue_has_no_presence(app: App) -> None:
    built = setup_broker(app.settings, app=app, embedded=True)
    try:
        assert not any(isinstance(m, WorkerPresence) for m in built.broker.middleware)
    finally:
        built.close()


def test_stuck_mailboxes_are_the_syncing_ones_without_a_lease(client: redis.Redis) -> None:
    locks = RedisLocks(client)
    lease = locks.acquire(mailbox_lock(1), 5)
    assert lease is not None
    try:
        assert stuck_mailboxes(client, [1, 2]) == {2}
        assert stuck_mailboxes(client, []) == set()
    finally:
        lease.release()
    assert stuck_mailboxes(client, [1, 2]) == {1, 2}


def test_an_unreachable_redis_is_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    look = RedisLiveness(f"redis://127.0.0.1:{port}/0")([1], _now())
    assert look.alive is None and look.unlocked == frozenset()
    assert look.error is not None and look.error.startswith("cannot read the workers:")


# ------------------------------------------------------------------------------------- in collect_status


def _syncing_mailbox(app: App, tmp_path: Path) -> int:
    with transaction(app.sessions) as session:
        seed_crm(session)
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, "alice", REP, f"maildir://{tmp_path / 'mail'}", None, ())
        mailboxes.add_mailbox(session, "carol", REP, f"maildir://{tmp_path / 'mail2'}", None, ())
    with transaction(app.sessions) as session:
        session.execute(update(Mailbox).where(Mailbox.name == "alice").values(state=SYNCING))
        return session.scalars(select(Mailbox.id).where(Mailbox.name == "alice")).one()


def _status(app: App, redis_url: str) -> dict[str, Any]:
    settings = dataclasses.replace(app.settings, broker_url=redis_url)
    with app.sessions() as session:
        return collect_status(session, queues=queue_status(settings), liveness=RedisLiveness(redis_url))


def test_a_syncing_mailbox_without_its_lock_is_stuck(app: App, tmp_path: Path, redis_url: str) -> None:
    alice = _syncing_mailbox(app, tmp_path)
    client = redis.Redis.from_url(redis_url)
    try:
        status = _status(app, redis_url)
        boxes = {m["name"]: m for m in status["mailboxes"]}
        assert boxes["alice"]["state"] == "syncing" and boxes["alice"]["stuck"] is True  # stored state as it is
        assert boxes["carol"]["stuck"] is False
        alert = status["workers"]["alert"]
        expected = {"alive": 0, "stopping": 0, "last_seen": None, "window_seconds": PRESENCE_TTL, "alert": alert}
        assert status["workers"] == expected
        assert alert.startswith("no worker alive") and "while 1 stuck mailbox waits:" in alert

        lease = RedisLocks(client).acquire(mailbox_lock(alice), 5)
        assert lease is not None
        try:
            boxes = {m["name"]: m for m in _status(app, redis_url)["mailboxes"]}
            assert boxes["alice"]["stuck"] is False
        finally:
            lease.release()
    finally:
        client.close()
    with app.sessions() as session:
        assert session.scalar(select(Mailbox.state).where(Mailbox.id == alice)) == SYNCING  # never written


def test_a_live_worker_is_in_the_status(app: App, runtime: Runtime, tmp_path: Path, redis_url: str) -> None:
    _syncing_mailbox(app, tmp_path)
    worker = _worker(runtime)
    try:
        workers = _status(app, redis_url)["workers"]
    finally:
        worker.stop()
    assert workers["alive"] == 1 and workers["alert"] is None
    assert abs((_now() - datetime.fromisoformat(workers["last_seen"])).total_seconds()) < 5


def test_a_sync_that_ended_between_the_reads_is_not_stuck(app: App, tmp_path: Path) -> None:
    alice = _syncing_mailbox(app, tmp_path)

    def lock_seen_free_after_the_sync_ended(ids: object, now: datetime) -> Liveness:
        with transaction(app.sessions) as session:  # the sync records its end, then releases its lease
            session.execute(update(Mailbox).where(Mailbox.id == alice).values(state="idle"))
        return Liveness(alive=1, last_seen=now, window=PRESENCE_TTL, unlocked=frozenset({alice}))

    with app.sessions() as session:
        status = collect_status(session, liveness=lock_seen_free_after_the_sync_ended)
    box = next(m for m in status["mailboxes"] if m["name"] == "alice")
    assert box["stuck"] is False and status["workers"]["alert"] is None


def test_embedded_mode_adds_nothing(app: App, tmp_path: Path) -> None:
    _syncing_mailbox(app, tmp_path)
    assert redis_liveness(app.settings) is None
    with app.sessions() as session:
        status = collect_status(session)
    assert status["workers"] is None and all(m["stuck"] is None for m in status["mailboxes"])


def test_crm_sync_status_says_stuck_and_warns_that_no_worker_is_alive(
    app: App, tmp_path: Path, redis_url: str, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _syncing_mailbox(app, tmp_path)
    monkeypatch.setenv("CRM_BROKER_URL", redis_url)
    shown = cli("status")
    assert shown.code == 0, shown.err
    row = next(line for line in shown.out.splitlines() if "alice" in line and REP in line)
    assert "stuck" in row and "syncing" not in row
    assert "STUCK alice: syncing, but no worker holds its lock — is a worker running?" in shown.out
    assert "workers: 0 alive" in shown.out
    assert "WARNING no worker alive" in shown.out

    data = json.loads(cli("status", "--json").out)
    assert data["workers"]["alive"] == 0 and data["workers"]["alert"].startswith("no worker alive")
    assert data["workers"]["window_seconds"] == PRESENCE_TTL
    alice = next(m for m in data["mailboxes"] if m["name"] == "alice")
    assert alice["state"] == "syncing" and alice["stuck"] is True


def test_crm_sync_mailbox_list_says_stuck_too(app: App, tmp_path: Path, redis_url: str, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _syncing_mailbox(app, tmp_path)
    assert "syncing" in next(line for line in cli("mailbox", "list").out.splitlines() if "alice" in line)  # embedded
    monkeypatch.setenv("CRM_BROKER_URL", redis_url)
    row = next(line for line in cli("mailbox", "list").out.splitlines() if "alice" in line)
    assert "stuck" in row and "syncing" not in row


def test_crm_sync_status_tells_when_redis_cannot_be_read(
    app: App, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _syncing_mailbox(app, tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("CRM_BROKER_URL", f"redis://127.0.0.1:{port}/0")
    shown = cli("status")
    assert shown.code == 0, shown.err
    assert "workers: cannot read the workers:" in shown.out and "STUCK" not in shown.out
