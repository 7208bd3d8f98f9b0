"""The embedded mode: the actors on the in-process queue, as `sync --once` runs them (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, select

from crm_store.db import transaction
from crm_store.models import Mailbox, RawItem
from crm_store.models.sync import DEGRADED, FAILED, IDLE, PAUSED
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.pipeline.runner import run_once
from tests.support.builders import maildir, message
from tests.support.flaky import flaky_url
from tests.workers.conftest import generated_mail, prepare, snapshot, wait_for
from workers.embedded import EmbeddedQueue
from workers.locks import RedisLocks
from workers.tasks import mailbox_lock


def _mailbox(app: App, name: str) -> Mailbox:
    with app.sessions() as session:
        found = session.scalar(select(Mailbox).where(Mailbox.name == name))
        assert found is not None
        return found


def _raw_count(app: App) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(RawItem)) or 0)


def test_throttling_is_retried_after_the_delay_the_server_asked_for(app: App, flaky: None, tmp_path: Path) -> None:
    source = generated_mail(tmp_path / "mail", 12)
    counter = tmp_path / "calls"
    prepare(app, {"alice": flaky_url(source, throttle=2, retry_after=0.4, counter=counter)})
    started = time.monotonic()
    report = run_once(app)
    assert time.monotonic() - started >= 0.8  # two refusals, each waited out (Retry-After 0.4 s + jitter)
    assert not report.failed and report.mailboxes[0].stored == 12
    assert int(counter.read_text()) >= 3
    alice = _mailbox(app, "alice")
    assert (alice.state, alice.consecutive_failures, alice.items_synced) == (IDLE, 0, 12)
    assert alice.last_error is not None and "server busy" in alice.last_error  # the last error stays visible


def test_bad_credentials_fail_the_mailbox_at_once_and_are_not_retried(app: App, flaky: None, tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    good = maildir(tmp_path / "good", [message("g1@acme.example", "wile@acme.example", ["alice@x.example"], "Hi")])
    prepare(app, {"locked-out": flaky_url(good, auth="fail", counter=counter), "fine": f"maildir://{good}"})
    report = run_once(app)
    assert [m.name for m in report.failed] == ["locked-out"]
    assert int(counter.read_text()) == 1  # one attempt: a permanent error is not retried
    box = _mailbox(app, "locked-out")
    assert box.state == FAILED and box.last_error is not None and "authentication failed" in box.last_error
    assert _mailbox(app, "fine").state == IDLE


def test_a_failed_mailbox_is_not_tried_again_until_a_person_resumes_it(app: App, flaky: None, tmp_path: Path) -> None:
    """Logging in again with a rejected password at every ``sync --once`` (a cron job) could lock the account."""
    counter = tmp_path / "attempts"
    good = maildir(tmp_path / "good", [message("g1@acme.example", "wile@acme.example", ["alice@x.example"], "Hi")])
    prepare(app, {"locked-out": flaky_url(good, auth="fail", counter=counter), "fine": f"maildir://{good}"})
    run_once(app)
    again = run_once(app)
    assert int(counter.read_text()) == 1  # the second run did not log in
    [failed] = again.failed
    assert failed.name == "locked-out" and failed.state == FAILED
    assert failed.error == (
        "authentication failed: the server rejected the credentials"
        " — not retried until `crm-sync mailbox resume locked-out`"
    )
    assert [m.state for m in again.mailboxes if m.name == "fine"] == [IDLE]
    with transaction(app.sessions) as session:
        mailboxes.resume_mailbox(session, "locked-out")
    resumed = _mailbox(app, "locked-out")
    assert (resumed.state, resumed.last_error, resumed.last_error_at) == (IDLE, None, None)  # the cause is gone
    run_once(app)
    assert int(counter.read_text()) == 2  # resumed: tried again


def test_retries_run_out_then_the_message_is_dead_lettered_and_counted_as_one_failed_sync(
    app: App, flaky: None, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CRM_MAX_RETRIES", "2")
    source = generated_mail(tmp_path / "mail", 3)
    calls = tmp_path / "calls"
    prepare(app, {"alice": flaky_url(source, throttle=100, retry_after=0.05, counter=calls)})
    with EmbeddedQueue(app) as queue:
        queue.send("sync_mailbox", _mailbox(app, "alice").id)
        queue.join()
        assert queue.stats()["sync"] == {"ready": 0, "in_flight": 0, "delayed": 0, "dead_lettered": 1}
        assert [m.actor_name for m in queue.dead_letters()] == ["sync_mailbox"]
    assert int(calls.read_text()) == 3  # the first try and two retries ...
    alice = _mailbox(app, "alice")
    assert (alice.state, alice.consecutive_failures) == (IDLE, 1)  # ... are one failed sync
    assert alice.last_error is not None and "server busy" in alice.last_error


def test_a_mailbox_is_degraded_after_three_failed_syncs_in_a_row_and_idle_after_a_success(
    app: App, flaky: None, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CRM_MAX_RETRIES", "1")
    source = generated_mail(tmp_path / "mail", 3)
    prepare(app, {"alice": flaky_url(source, throttle=6, retry_after=0.02, counter=tmp_path / "calls")})
    seen = []
    for _ in range(3):  # each sync --once tries twice (one retry), and fails
        assert [m.name for m in run_once(app).failed] == ["alice"]
        alice = _mailbox(app, "alice")
        seen.append((alice.state, alice.consecutive_failures))
    assert seen == [(IDLE, 1), (IDLE, 2), (DEGRADED, 3)]
    report = run_once(app)  # the server answers again
    assert not report.failed and report.mailboxes[0].stored == 3
    alice = _mailbox(app, "alice")
    assert (alice.state, alice.consecutive_failures) == (IDLE, 0)


def test_pausing_a_mailbox_stops_its_sync_at_a_page_boundary(app: App, flaky: None, tmp_path: Path) -> None:
    app.settings = replace(app.settings, batch_size=4)
    source = generated_mail(tmp_path / "mail", 40)
    prepare(app, {"alice": flaky_url(source, delay=0.15)})
    reports: list[Any] = []
    runner = threading.Thread(target=lambda: reports.append(run_once(app)))
    runner.start()
    wait_for(lambda: _raw_count(app) >= 4, 30, "the first page")
    with transaction(app.sessions) as session:
        mailboxes.pause_mailbox(session, "alice")
    runner.join(60)
    assert not runner.is_alive()
    assert _mailbox(app, "alice").state == PAUSED
    assert 4 <= _raw_count(app) < 40
    [paused] = reports[0].mailboxes
    assert (paused.state, paused.stored) == (PAUSED, _raw_count(app))  # what it stored before it stopped
    with transaction(app.sessions) as session:
        mailboxes.resume_mailbox(session, "alice")
    report = run_once(app)
    assert not report.failed and _raw_count(app) == 40 and _mailbox(app, "alice").items_synced == 40


def test_a_mailbox_locked_by_another_sync_is_not_synced_twice(app: App, redis_url: str, tmp_path: Path) -> None:
    app.settings = replace(app.settings, broker_url=redis_url)  # sync --once beside Redis workers: shared locks
    prepare(app, {"alice": f"maildir://{generated_mail(tmp_path / 'mail', 5)}"})
    locks = RedisLocks(redis.Redis.from_url(redis_url))
    held = locks.acquire(mailbox_lock(_mailbox(app, "alice").id), 30)
    assert held is not None
    report = run_once(app)
    assert report.failed and "locked by another sync" in (report.mailboxes[0].error or "")
    assert _raw_count(app) == 0
    held.release()
    assert not run_once(app).failed and _raw_count(app) == 5


def test_every_message_delivered_twice_changes_nothing(app: App, tmp_path: Path) -> None:
    prepare(app, {"alice": f"maildir://{generated_mail(tmp_path / 'a', 30)}"})
    alice = _mailbox(app, "alice").id
    run_once(app)
    once = snapshot(app)
    with EmbeddedQueue(app) as queue:
        for actor, args in [("sync_mailbox", (alice,)), ("process_items", ()), ("complete_due", ()), ("rematch", ())]:
            queue.send(actor, *args)
            queue.send(actor, *args)
            queue.join()
        assert not queue.dead_letters()
    assert snapshot(app) == once


def test_one_folder_can_be_synced_alone(app: App, tmp_path: Path) -> None:
    inbox = [message("i1@acme.example", "wile@acme.example", ["alice@x.example"], "In")]
    sent = [message("s1@acme.example", "alice@x.example", ["wile@acme.example"], "Out")]
    prepare(app, {"alice": f"maildir://{maildir(tmp_path / 'm', inbox, sent)}"})
    with EmbeddedQueue(app) as queue:
        queue.send("sync_folder", _mailbox(app, "alice").id, "Sent")
        queue.join()
    with app.sessions() as session:
        assert list(session.scalars(select(RawItem.folder))) == ["Sent"]


def test_after_join_the_idle_threads_end_by_themselves(app: App, tmp_path: Path) -> None:
    prepare(app, {"alice": f"maildir://{generated_mail(tmp_path / 'a', 3)}"})
    with EmbeddedQueue(app) as queue:
        queue.send("sync_mailbox", _mailbox(app, "alice").id)
        queue.join()
        threads = [*queue.worker.workers, *queue.worker.consumers.values()]
    # Leaving does not wait for their polls to end; they end within one (20 ms), none is left behind.
    wait_for(lambda: not any(thread.is_alive() for thread in threads), 5, "the queue's threads to end")
    assert _raw_count(app) == 3


def test_leaving_on_an_error_waits_for_the_message_in_hand(app: App, flaky: None, tmp_path: Path) -> None:
    app.settings = replace(app.settings, batch_size=4)
    prepare(app, {"alice": flaky_url(generated_mail(tmp_path / "mail", 12), delay=0.1)})
    try:
        with EmbeddedQueue(app) as queue:
            queue.send("sync_mailbox", _mailbox(app, "alice").id)
            wait_for(lambda: _raw_count(app) >= 4, 30, "the first page")  # the sync is in hand
            threads = [*queue.worker.workers, *queue.worker.consumers.values()]
            raise KeyboardInterrupt  # the caller leaves
    except KeyboardInterrupt:
        pass
    assert not any(thread.is_alive() for thread in threads)  # stopped, and the sync in hand finished first
    assert _raw_count(app) == 12 and _mailbox(app, "alice").state == IDLE
