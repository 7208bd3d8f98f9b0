"""A mailbox stuck in `syncing` (no worker holds its lock) and "no worker alive", on the page and in /metrics,
against a real Redis and a real dramatiq worker (which registers itself: ``workers.presence``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import dramatiq
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from crm_store.db import transaction
from crm_store.models import Mailbox
from crm_store.models.sync import SYNCING
from sync_service.bootstrap import App
from sync_service.dashboard.app import create_app
from sync_service.dashboard.wording import STUCK_HINT
from tests.dashboard.conftest import METRICS_TOKEN, Seeded, log_in, make_config
from workers.broker import setup_broker
from workers.liveness import live_workers
from workers.locks import RedisLocks
from workers.tasks import mailbox_lock


def _mark_syncing(seeded: Seeded, name: str) -> int:
    with transaction(seeded.app.sessions) as session:
        session.execute(update(Mailbox).where(Mailbox.name == name).values(state=SYNCING))
        return session.scalars(select(Mailbox.id).where(Mailbox.name == name)).one()


def _row(page: str, name: str) -> str:
    found = re.search(rf'<tr id="mailbox-{name}".*?</tr>', page, re.S)
    assert found, f"no row for {name}"
    return found.group(0)


def _metrics(client: TestClient) -> set[str]:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200
    return set(answer.text.splitlines())


@contextmanager
def _running_worker(app: App) -> Iterator[None]:
    """A dramatiq worker on the broker a `crm-sync worker` process builds (its presence key is what the
    dashboard counts)."""
    runtime = setup_broker(app.settings, app=app)
    worker = dramatiq.Worker(runtime.broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        assert runtime.redis is not None and live_workers(runtime.redis) == 1
        yield
    finally:
        worker.stop()
        runtime.close()


def _workers_shown(client: TestClient) -> tuple[str, bool, set[str]]:
    page = client.get("/").text
    alive = re.search(r'<strong id="workers-alive">([^<]*)</strong>', page)
    assert alive, "no worker count on the page"
    return alive.group(1), 'id="workers-alert"' in page, _metrics(client)


def test_a_stuck_mailbox_and_no_worker_alive_are_shown(seeded: Seeded, redis_url: str) -> None:
    seeded.app.settings = replace(seeded.app.settings, broker_url=redis_url)
    alice = _mark_syncing(seeded, "alice")
    with TestClient(create_app(seeded.app, make_config()), base_url="http://testserver") as client:
        log_in(client)
        page = client.get("/").text
        row = _row(page, "alice")
        assert 'data-state="syncing" data-stuck="true">Stuck</span>' in row and "badge-stuck" in row
        assert STUCK_HINT in row and "is a worker running?" in row
        assert 'data-stuck="true"' not in _row(page, "broken")
        assert '<strong id="workers-alive">0 alive</strong>' in page
        warning = re.search(r'<p class="flash flash-error" role="alert" id="workers-alert">([^<]*)</p>', page)
        assert warning and warning.group(1).startswith("no worker alive") and "1 stuck mailbox" in warning.group(1)
        lines = _metrics(client)
        assert "crm_sync_workers_alive 0" in lines
        assert 'crm_sync_mailbox_stuck{mailbox="alice"} 1' in lines
        assert 'crm_sync_mailbox_stuck{mailbox="broken"} 0' in lines
        assert 'crm_sync_mailbox_state{mailbox="alice",state="syncing"} 1' in lines  # the stored state, as before

        # The scheduler (or `crm-sync watch`, a resync from the CLI) sends work: dramatiq gives it a heartbeat,
        # but it is no worker.
        sender = setup_broker(seeded.app.settings, app=seeded.app)
        try:
            sender.send("sync_mailbox", alice)
            sender.send("complete_due")
        finally:
            sender.close()
        alive, warned, lines = _workers_shown(client)
        assert (alive, warned) == ("0 alive", True) and "crm_sync_workers_alive 0" in lines

        locks = RedisLocks(redis.Redis.from_url(redis_url))
        lease = locks.acquire(mailbox_lock(alice), 5)
        assert lease is not None
        try:
            with _running_worker(seeded.app):
                page = client.get("/").text
                row = _row(page, "alice")
                assert ">Syncing</span>" in row and "data-stuck" not in row and STUCK_HINT not in row
                assert '<strong id="workers-alive">1 alive</strong>' in page and 'id="workers-alert"' not in page
                lines = _metrics(client)
                assert "crm_sync_workers_alive 1" in lines
                assert 'crm_sync_mailbox_stuck{mailbox="alice"} 0' in lines
            alive, _, lines = _workers_shown(client)  # it stopped: gone at once, not after a timeout
            assert alive == "0 alive" and "crm_sync_workers_alive 0" in lines
        finally:
            lease.release()
            locks.client.close()


def test_redis_that_cannot_be_read_is_said_not_guessed(seeded: Seeded) -> None:
    seeded.app.settings = replace(seeded.app.settings, broker_url="redis://127.0.0.1:1/0")
    _mark_syncing(seeded, "alice")
    with TestClient(create_app(seeded.app, make_config()), base_url="http://testserver") as client:
        log_in(client)
        page = client.get("/").text
        assert '<strong id="workers-alive">unknown</strong>' in page
        assert 'id="workers-error">cannot read the workers:' in page
        assert "data-stuck" not in page
        lines = _metrics(client)
        assert not any(line.startswith(("crm_sync_workers_alive ", "crm_sync_mailbox_stuck{")) for line in lines)


def test_the_embedded_mode_shows_nothing_new(client: TestClient, seeded: Seeded) -> None:
    _mark_syncing(seeded, "alice")
    log_in(client)
    page = client.get("/").text
    assert ">Syncing</span>" in _row(page, "alice")
    assert "workers-alive" not in page and "workers-alert" not in page and "data-stuck" not in page
    assert not any(line.startswith(("crm_sync_workers_alive ", "crm_sync_mailbox_stuck{")) for line in _metrics(client))
