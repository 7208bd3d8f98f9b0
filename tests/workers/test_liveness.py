"""Live workers (dramatiq's heartbeats) and stuck mailboxes (no lease), read from a real Redis; and what
`collect_status` / `crm-sync status` make of them."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import select, update

from crm_store.db import transaction
from crm_store.models import Mailbox
from crm_store.models.sync import SYNCING
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.status import collect_status
from tests.support.builders import REP, seed_crm
from tests.workers.conftest import wait_for
from workers.broker import NAMESPACE
from workers.liveness import (
    ALIVE_SECONDS,
    Liveness,
    RedisLiveness,
    alive_window,
    last_heartbeat,
    live_workers,
    redis_liveness,
    stuck_mailboxes,
)
from workers.locks import RedisLocks
from workers.queues import queue_status
from workers.tasks import mailbox_lock


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def _broker(client: redis.Redis) -> RedisBroker:
    broker = RedisBroker(client=client, namespace=NAMESPACE, middleware=[])

    @dramatiq.actor(broker=broker, queue_name="liveness-test")
    def nothing() -> None:
        pass

    return broker


def test_a_running_worker_is_alive_and_a_stopped_one_goes_stale(client: redis.Redis) -> None:
    assert live_workers(client, _now()) == 0 and last_heartbeat(client) is None  # nothing ever ran

    broker = _broker(client)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        wait_for(lambda: live_workers(client, _now()) == 1, 10, "the worker's first heartbeat")
        time.sleep(0.5)  # it keeps polling: still fresh within a short window
        assert live_workers(client, _now(), within=0.4) == 1
        seen = last_heartbeat(client)
        assert seen is not None and abs((_now() - seen).total_seconds()) < 1
    finally:
        worker.stop()
        broker.close()
    stopped = _now()
    wait_for(lambda: live_workers(client, _now(), within=0.5) == 0, 10, "the heartbeat to go stale")
    assert live_workers(client, stopped, within=ALIVE_SECONDS) == 1  # as it was when it stopped
    assert client.zcard(f"{NAMESPACE}:__heartbeats__") == 1  # read only: dramatiq's set is left as it was


def test_a_process_that_only_sends_counts_only_for_the_window_after_it_sent(client: redis.Redis) -> None:
    broker = _broker(client)  # the scheduler, `crm-sync watch`, a resync from the CLI: they only send
    try:
        broker.actors["nothing"].send()
        assert live_workers(client, _now(), within=1.0) == 1
        wait_for(lambda: live_workers(client, _now(), within=1.0) == 0, 10, "the sender's heartbeat to age")
    finally:
        broker.close()


def test_the_window_follows_a_slow_idle_poll() -> None:
    assert alive_window(100) == ALIVE_SECONDS
    assert alive_window(4000) == 20.0


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
        assert status["workers"] == {"alive": 0, "last_seen": None, "window_seconds": ALIVE_SECONDS, "alert": alert}
        assert alert.startswith("no worker alive") and "1 stuck mailbox wait" in alert

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


def test_a_sync_that_ended_between_the_reads_is_not_stuck(app: App, tmp_path: Path) -> None:
    alice = _syncing_mailbox(app, tmp_path)

    def lock_seen_free_after_the_sync_ended(ids: object, now: datetime) -> Liveness:
        with transaction(app.sessions) as session:  # the sync records its end, then releases its lease
            session.execute(update(Mailbox).where(Mailbox.id == alice).values(state="idle"))
        return Liveness(alive=1, last_seen=now, window=ALIVE_SECONDS, unlocked=frozenset({alice}))

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
    alice = next(m for m in data["mailboxes"] if m["name"] == "alice")
    assert alice["state"] == "syncing" and alice["stuck"] is True


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
