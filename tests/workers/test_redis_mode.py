"""Redis mode in one process: a real redis-server, dramatiq's RedisBroker, the scheduler's decisions, the CLI."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from sqlalchemy import select, update

from crm_store.db import transaction
from crm_store.models import Mailbox
from crm_store.models.sync import FAILED, IDLE, PAUSED, SYNCING
from sync_service.bootstrap import App
from sync_service.config import load_settings
from tests.conftest import REPO
from tests.support.flaky import flaky_url
from tests.support.servers import free_port
from tests.workers.conftest import generated_mail, prepare, wait_for
from workers import tasks
from workers.broker import Runtime, setup_broker
from workers.logs import JsonFormatter
from workers.queues import redis_queue_stats
from workers.scheduler import Scheduler
from workers.tasks import mailbox_lock, queued_marker


@pytest.fixture
def runtime(app: App, redis_url: str) -> Iterator[Runtime]:
    app.settings = replace(app.settings, broker_url=redis_url)
    built = setup_broker(app.settings, app=app)
    yield built
    built.close()


def _ids(app: App) -> dict[str, int]:
    with app.sessions() as session:
        return {name: i for name, i in session.execute(select(Mailbox.name, Mailbox.id))}


def _set_state(app: App, name: str, state: str) -> None:
    with transaction(app.sessions) as session:
        session.execute(update(Mailbox).where(Mailbox.name == name).values(state=state))


def _mailbox(app: App, name: str) -> Mailbox:
    with app.sessions() as session:
        found = session.scalar(select(Mailbox).where(Mailbox.name == name))
        assert found is not None
        return found


def test_redis_workers_wait_out_throttling_and_stop_on_bad_credentials(
    app: App, runtime: Runtime, flaky: None, tmp_path: Path
) -> None:
    source = generated_mail(tmp_path / "mail", 10)
    counter = tmp_path / "calls"
    prepare(
        app,
        {
            "busy": flaky_url(source, throttle=2, retry_after=0.3, counter=counter),
            "locked-out": flaky_url(source, auth="fail", counter=tmp_path / "attempts"),
        },
    )
    worker = dramatiq.Worker(runtime.broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        for mailbox_id in _ids(app).values():
            runtime.send("sync_mailbox", mailbox_id)
        wait_for(lambda: _mailbox(app, "busy").items_synced == 10, 60, "the throttled mailbox to sync")
        wait_for(lambda: _mailbox(app, "locked-out").state == FAILED, 30, "the locked-out mailbox to fail")
        assert runtime.redis is not None
        wait_for(lambda: redis_queue_stats(runtime.redis)["sync"]["in_flight"] == 0, 30, "the queue to drain")  # type: ignore[arg-type]
    finally:
        worker.stop()
    assert _mailbox(app, "busy").state == IDLE and int(counter.read_text()) >= 3
    assert "authentication failed" in (_mailbox(app, "locked-out").last_error or "")
    assert (tmp_path / "attempts").read_text() == "1"
    stats = redis_queue_stats(runtime.redis)  # type: ignore[arg-type]
    assert stats["sync"] == {"ready": 0, "in_flight": 0, "delayed": 0, "dead_lettered": 0}


def test_scheduler_enqueues_due_mailboxes_once_and_relaunches_stuck_ones(
    app: App, runtime: Runtime, tmp_path: Path
) -> None:
    source = f"maildir://{generated_mail(tmp_path / 'mail', 2)}"
    prepare(app, {"a": source, "b": source, "paused": source, "failed": source})
    _set_state(app, "paused", PAUSED)
    _set_state(app, "failed", FAILED)
    scheduler = Scheduler(runtime, interval=600, complete_every=3600)
    now = datetime.now(UTC)

    first = scheduler.tick(now)
    assert sorted(first.enqueued) == ["a", "b"] and first.completion and not first.processing
    assert scheduler.tick(now).enqueued == []  # already queued: not again every tick
    assert redis_queue_stats(runtime.redis)["sync"]["ready"] == 2  # type: ignore[arg-type]
    ids = _ids(app)
    for name in ("a", "b"):  # no worker took them for longer than the markers last: still not sent again
        runtime.locks.clear(queued_marker("sync_mailbox", ids[name]))
    assert scheduler.tick(now + timedelta(seconds=601)).enqueued == []
    assert redis_queue_stats(runtime.redis)["sync"]["ready"] == 2  # type: ignore[arg-type]

    # A worker fetched both; the one syncing 'a' died: 'syncing', and its lock expired.
    runtime.broker.flush("sync")
    with transaction(app.sessions) as session:
        session.execute(update(Mailbox).values(last_success_at=now))
    _set_state(app, "a", SYNCING)
    assert scheduler.tick(now).relaunched == ["a"]
    # While a live worker holds the lock, 'syncing' is just busy.
    runtime.locks.clear(queued_marker("sync_mailbox", ids["a"]))
    lease = runtime.locks.acquire(mailbox_lock(ids["a"]), 30)
    assert scheduler.tick(now).relaunched == []
    assert lease is not None
    lease.release()
    # Interval elapsed since the last success: due again.
    runtime.locks.clear(queued_marker("sync_mailbox", ids["b"]))
    assert scheduler.tick(now + timedelta(seconds=601)).enqueued == ["b"]


def test_a_tick_while_a_task_starts_does_not_enqueue_it_again(
    app: App, runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queued marker stays until the task holds its lock: a tick between the two sees one or the other."""
    prepare(app, {"a": f"maildir://{generated_mail(tmp_path / 'mail', 2)}"})
    scheduler = Scheduler(runtime, interval=600, complete_every=3600)
    assert scheduler.tick().enqueued == ["a"]
    ticks: list[Any] = []
    acquire = runtime.locks.acquire

    def tick_then_acquire(name: str, ttl: float) -> Any:  # a scheduler tick lands just before the task's lock
        ticks.append(scheduler.tick())
        return acquire(name, ttl)

    mailbox_id = _ids(app)["a"]
    monkeypatch.setattr(runtime.locks, "acquire", tick_then_acquire)
    assert tasks.sync_mailbox(runtime.context, mailbox_id) is not None
    monkeypatch.undo()
    assert scheduler.tick().processing  # the stored items: processing enqueued, with its marker
    monkeypatch.setattr(runtime.locks, "acquire", tick_then_acquire)
    assert tasks.process_items(runtime.context, mailbox_id) is not None
    monkeypatch.undo()
    assert [t.enqueued for t in ticks] == [[], []] and not any(t.processing for t in ticks)
    queued = redis_queue_stats(runtime.redis)  # type: ignore[arg-type]
    assert (queued["sync"]["ready"], queued["process"]["ready"]) == (1, 1)  # each enqueued once, by the scheduler
    # The task cleared its marker when it started: the mailbox is due again only after its interval.
    assert scheduler.tick().enqueued == []


def test_scheduler_redrives_processing_of_pending_items(app: App, runtime: Runtime, tmp_path: Path) -> None:
    prepare(app, {"a": f"maildir://{generated_mail(tmp_path / 'mail', 3)}"})
    tasks.sync_mailbox(runtime.context, _ids(app)["a"])  # stored, not processed: e.g. the process message was lost
    scheduler = Scheduler(runtime, interval=600)
    assert scheduler.tick().processing
    assert not scheduler.tick().processing  # queued once
    assert redis_queue_stats(runtime.redis)["process"]["ready"] == 1  # type: ignore[arg-type]


def test_a_mailbox_processed_in_time_slices_is_continued_until_done(
    app: App, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each processing task ends with its slice and queues the rest itself: no scheduler is running here."""
    from sync_service.pipeline import process

    monkeypatch.setenv("CRM_PROCESS_SLICE_SECONDS", "0")
    monkeypatch.setattr(process, "SLICE_PER_INDEX", 0)  # one batch per task
    app.settings = replace(app.settings, broker_url=redis_url, batch_size=2)
    runtime = setup_broker(app.settings, app=app)
    try:
        assert runtime.options.process_slice == 0
        prepare(app, {"a": f"maildir://{generated_mail(tmp_path / 'mail', 7)}"})
        mailbox_id = _ids(app)["a"]
        tasks.sync_mailbox(runtime.context, mailbox_id)
        caplog.set_level(logging.INFO, logger="workers.tasks")
        runtime.send("process_items", mailbox_id)
        worker = dramatiq.Worker(runtime.broker, worker_threads=1, worker_timeout=100)
        worker.start()
        try:
            wait_for(lambda: _pending(app) == 0, 60, "every item to be processed")
            assert runtime.redis is not None
            wait_for(lambda: redis_queue_stats(runtime.redis)["process"] == {  # type: ignore[arg-type]
                "ready": 0, "in_flight": 0, "delayed": 0, "dead_lettered": 0}, 30, "the queue to drain")
        finally:
            worker.stop()
        runs = [r for r in caplog.records if getattr(r, "event", None) == "process"]
        # 7 items in batches of 2: four runs, each ending with its slice; the last one sees nothing is left
        fields = [r.__dict__ for r in runs]  # the log lines' extra fields
        assert [f["more"] for f in fields] == [True, True, True, False]
        assert sum(f["logged"] + sum(f["skipped"].values()) for f in fields) == 7
        assert not runtime.locks.is_locked(queued_marker("process_items", mailbox_id))
    finally:
        runtime.close()


def _pending(app: App) -> int:
    from sync_service.pipeline.process import count_pending

    with app.sessions() as session:
        return count_pending(session)


def test_status_counts_redis_queues_and_dead_letters_can_be_requeued(cli, redis_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").code == 0
    monkeypatch.setenv("CRM_BROKER_URL", redis_url)
    runtime = setup_broker(load_settings())
    runtime.send("sync_mailbox", 1)
    runtime.send("sync_mailbox", 2)
    runtime.actors.by_name["process_items"].send_with_options(delay=60_000)
    broker = runtime.broker
    fetched = broker.do_fetch("sync", 1)  # type: ignore[attr-defined]  # a worker took one…
    broker.do_nack("sync", json.loads(fetched[0])["options"]["redis_message_id"])  # type: ignore[attr-defined]  # …and gave up
    runtime.close()

    status = json.loads(cli("status", "--json").out)["queue"]
    assert status["mode"] == "redis"
    assert status["queues"]["sync"] == {"ready": 1, "in_flight": 0, "delayed": 0, "dead_lettered": 1}
    assert status["queues"]["process"] == {"ready": 0, "in_flight": 0, "delayed": 1, "dead_lettered": 0}
    assert {"pending", "quarantined", "review"} <= set(status)

    requeued = cli("queue", "requeue-dead")
    assert requeued.code == 0 and "requeued 1 " in requeued.out
    status = json.loads(cli("status", "--json").out)["queue"]
    assert status["queues"]["sync"] == {"ready": 2, "in_flight": 0, "delayed": 0, "dead_lettered": 0}


def test_resume_and_resync_queue_a_sync_at_once_in_redis_mode(cli, redis_url: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").code == 0
    source = f"maildir://{generated_mail(tmp_path / 'mail', 1)}"
    assert cli("mailbox", "add", "alice", "--owner", "alice@northwind-sales.example", "--source", source).code == 0
    monkeypatch.setenv("CRM_BROKER_URL", redis_url)
    assert cli("mailbox", "pause", "alice").out.strip() == "mailbox alice: paused"
    resumed = cli("mailbox", "resume", "alice")
    assert resumed.code == 0 and "sync queued" in resumed.out
    assert "sync queued" in cli("mailbox", "resync", "alice").out
    status = json.loads(cli("status", "--json").out)["queue"]
    assert status["queues"]["sync"]["ready"] == 2


def test_background_commands_need_redis(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").code == 0
    for command in (["worker"], ["scheduler"], ["queue", "requeue-dead"]):
        result = cli(*command)
        assert result.code == 1, command
        assert result.err.strip().count("\n") == 0 and "CRM_BROKER_URL=redis://" in result.err
    typo = cli("worker", "--queue", "bogus")  # a usage error comes first, whatever the broker
    assert typo.code == 2 and "unknown queue bogus" in typo.err
    status = json.loads(cli("status", "--json").out)["queue"]
    assert status["mode"] == "embedded"
    assert status["queues"]["sync"] == {"ready": 0, "in_flight": 0, "delayed": 0, "dead_lettered": 0}


def test_worker_logs_are_json_lines() -> None:
    record = logging.LogRecord("workers.tasks", logging.INFO, __file__, 1, "mailbox synced", None, None)
    record.__dict__.update({"event": "sync", "mailbox": "alice", "stored": 3, "duration": 0.25})
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "mailbox synced" and line["level"] == "info"
    assert (line["event"], line["mailbox"], line["stored"], line["duration"]) == ("sync", "alice", 3, 0.25)


def test_worker_processes_count_dramatiq_metrics_when_configured(
    cli: Any, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``crm-sync worker`` with CRM_WORKER_METRICS_DIR: dramatiq's Prometheus middleware in its processes, the
    files in the directory, and the exposition server on CRM_WORKER_METRICS_PORT."""
    assert cli("init").code == 0
    port, directory = free_port(), tmp_path / "metrics"
    monkeypatch.setenv("CRM_BROKER_URL", redis_url)
    env = {
        **os.environ,
        "CRM_WORKER_METRICS_DIR": str(directory),
        "CRM_WORKER_METRICS_PORT": str(port),
        "CRM_WORKER_IDLE_POLL_MS": "150",
    }
    env.pop("dramatiq_worker_timeout", None)
    command = [sys.executable, "-m", "sync_service.cli.main", "worker", "--processes", "1", "--threads", "1"]
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=log, start_new_session=True)
    try:
        runtime = setup_broker(load_settings())
        runtime.send("complete_due")
        runtime.close()
        sample = 'dramatiq_messages_total{actor_name="complete_due",queue_name="maintenance"} 1.0'

        def scraped() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    return sample in answer.read().decode()
            except OSError:
                return worker.poll() is not None and pytest.fail((tmp_path / "worker.log").read_text())

        wait_for(scraped, 60, "the worker's metrics endpoint to count the message")
        assert any(directory.glob("counter_*.db"))  # what the dashboard's /metrics merges
        # The worker process polls idle queues as CRM_WORKER_IDLE_POLL_MS says (dramatiq read it at its import).
        setup = [line for line in (tmp_path / "worker.log").read_text().splitlines() if '"worker_setup"' in line]
        assert setup and all(json.loads(line)["idle_poll_ms"] == 150 for line in setup), setup
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)  # the worker and dramatiq's processes (its own group)
        worker.wait(timeout=60)
