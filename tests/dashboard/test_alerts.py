"""Alert rules, the webhook (against a loopback HTTP server), and alerts in `crm-sync status`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from crm_store.db import transaction
from crm_store.models import Mailbox
from sync_service.dashboard.alerts import Alert, AlertConfig, evaluate, mailbox_alert, workers_alert
from sync_service.dashboard.app import check_alerts, create_app
from sync_service.dashboard.webhook import AlertNotifier
from sync_service.errors import ConfigError
from tests.dashboard.conftest import Seeded, make_config, wait_for
from tests.support.builders import REP

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CONFIG = AlertConfig(lag_seconds=3600, failures=3)


def box(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "alice",
        "state": "idle",
        "consecutive_failures": 0,
        "last_error": None,
        "lag_seconds": 60,
        "added_at": "2026-10-01T00:00:00Z",
    }
    return base | values


@pytest.mark.parametrize(
    ("values", "kind", "words"),
    [
        ({}, None, None),
        ({"state": "syncing", "lag_seconds": 3600}, None, None),  # exactly at the threshold: not yet
        ({"state": "failed", "last_error": "IMAP x: login failed (check the user and the secret): no"}, "failing",
         "sync stopped: The server refused the login"),
        ({"state": "degraded", "consecutive_failures": 3, "last_error": "timed out"}, "failing",
         "3 failed syncs in a row: The server did not answer in time"),
        ({"consecutive_failures": 4, "last_error": "graph: throttled"}, "failing", "asked us to slow down"),
        ({"consecutive_failures": 2, "last_error": "timed out"}, None, None),
        ({"lag_seconds": 7300}, "lagging", "no successful sync for 2 h 1 min"),
        ({"lag_seconds": None, "added_at": "2026-11-02T10:00:00Z"}, "lagging", "never synced successfully (added 2 h"),
        ({"lag_seconds": None, "added_at": "2026-11-02T11:30:00Z"}, None, None),  # just added
        ({"state": "paused", "lag_seconds": 999999, "consecutive_failures": 9}, None, None),  # a person paused it
    ],
)  # fmt: skip
def test_alert_rules(values: dict[str, Any], kind: str | None, words: str | None) -> None:
    alert = mailbox_alert(box(**values), CONFIG, NOW)
    assert (alert.kind if alert else None) == kind
    if words:
        assert alert is not None and words in alert.message


def test_evaluate_keeps_the_mailboxes_order_and_skips_the_healthy() -> None:
    boxes = [box(name="b", state="failed"), box(name="a"), box(name="c", lag_seconds=10_000)]
    assert [(a.mailbox, a.kind) for a in evaluate(boxes, CONFIG, NOW)] == [("b", "failing"), ("c", "lagging")]


def test_alert_config_from_the_environment() -> None:
    config = AlertConfig.from_env(
        {"CRM_ALERT_LAG_SECONDS": "600", "CRM_ALERT_FAILURES": "5", "CRM_ALERT_WEBHOOK_URL": "https://hooks.example/x"}
    )
    assert (config.lag_seconds, config.failures, config.webhook_url) == (600, 5, "https://hooks.example/x")
    assert AlertConfig.from_env({}) == AlertConfig()
    for bad in ({"CRM_ALERT_LAG_SECONDS": "soon"}, {"CRM_ALERT_FAILURES": "0"}, {"CRM_ALERT_WEBHOOK_URL": "ftp://x"}):
        with pytest.raises(ConfigError):
            AlertConfig.from_env(bad)


class Hook:
    """A loopback webhook receiver: records JSON bodies; answers ``status``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 204
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.received.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-path"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.close()


def test_the_webhook_is_called_once_per_change(hook: Hook, tmp_path: Path) -> None:
    config = AlertConfig(webhook_url=hook.url, webhook_timeout=5)
    state = tmp_path / "alerts-state.json"
    failing = [Alert("alice", "failing", "sync stopped: bad password", "IMAP: login failed")]
    notifier = AlertNotifier(config, state)

    assert notifier.notify(["alice", "bob"], [], NOW) == []  # healthy from the start: nothing to say
    assert len(notifier.notify(["alice", "bob"], failing, NOW)) == 1
    assert notifier.notify(["alice", "bob"], failing, NOW + timedelta(minutes=1)) == []  # no change
    assert AlertNotifier(config, state).notify(["alice", "bob"], failing, NOW) == []  # remembered across restarts
    lagging = [Alert("alice", "lagging", "no successful sync for 2 h")]
    assert len(notifier.notify(["alice", "bob"], lagging, NOW)) == 1
    assert len(notifier.notify(["alice", "bob"], [], NOW)) == 1  # recovered

    assert [(m["mailbox"], m["previous"], m["kind"]) for m in hook.received] == [
        ("alice", "ok", "failing"),
        ("alice", "failing", "lagging"),
        ("alice", "lagging", "ok"),
    ]
    first = hook.received[0]
    assert first["event"] == "crm-sync.mailbox.alert" and first["reason"] == "IMAP: login failed"
    assert first["text"] == "crm-sync: mailbox alice is failing: sync stopped: bad password"
    assert first["at"] == "2026-11-02T12:00:00Z"


def test_a_failed_delivery_is_tried_again(hook: Hook, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = AlertNotifier(AlertConfig(webhook_url=hook.url), tmp_path / "alerts-state.json")
    failing = [Alert("alice", "failing", "sync stopped")]
    hook.status = 500
    assert notifier.notify(["alice"], failing, NOW) == []
    assert "secret-path" not in caplog.text  # the URL's path may be its secret: only the host is logged
    hook.status = 200
    assert len(notifier.notify(["alice"], failing, NOW)) == 1
    assert notifier.notify(["alice"], failing, NOW) == []
    assert len(hook.received) == 2  # the refused one, then the delivered one


def test_status_shows_alerts_and_calls_the_webhook_once(cli, hook: Hook, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert cli("init").code == 0
    (tmp_path / "missing").mkdir()
    source = f"maildir://{tmp_path / 'missing'}"
    assert cli("mailbox", "add", "broken", "--owner", REP, "--source", source).code == 0
    (tmp_path / "missing").rmdir()  # the source vanished after the mailbox was added
    cli("sync", "--once")
    monkeypatch.setenv("CRM_ALERT_WEBHOOK_URL", hook.url)

    data = json.loads(cli("status", "--json").out)
    assert data["alerts"] == [
        {
            "mailbox": "broken",
            "kind": "failing",
            "message": "sync stopped: The mailbox, folder or file was not found at the source: correct the URL "
            "with `crm-sync mailbox source NAME URL`, or resume once it is back.",
            "reason": f"source path does not exist: {tmp_path / 'missing'}",
        }
    ]
    assert data["mailboxes"][0]["alert"] == "failing"
    table = cli("status")
    assert "ALERT broken failing: sync stopped" in table.out
    assert [m["mailbox"] for m in hook.received] == ["broken"]  # two status runs, one change, one call


def test_the_running_dashboard_announces_alert_changes(seeded: Seeded, hook: Hook) -> None:
    alerts = AlertConfig(webhook_url=hook.url)
    assert check_alerts(seeded.app, make_config(alerts=alerts)) == 1  # "broken" failed: announced…
    assert check_alerts(seeded.app, make_config(alerts=alerts)) == 0  # …once
    assert [m["mailbox"] for m in hook.received] == ["broken"]
    (seeded.app.settings.data_dir / "alerts-state.json").unlink()  # forget, so the server's loop announces again
    with TestClient(create_app(seeded.app, make_config(alerts=alerts))):
        wait_for(lambda: len(hook.received) == 2, 30, "the dashboard's alert loop to call the webhook")
    assert hook.received[1]["mailbox"] == "broken" and hook.received[1]["kind"] == "failing"


def test_the_running_dashboard_announces_no_worker_alive(seeded: Seeded, hook: Hook, redis_url: str) -> None:
    seeded.app.settings = replace(seeded.app.settings, broker_url=redis_url)  # Redis mode, no worker started
    with transaction(seeded.app.sessions) as session:  # a worker died while syncing alice: stuck
        session.execute(update(Mailbox).where(Mailbox.name == "alice").values(state="syncing"))
    alerts = AlertConfig(webhook_url=hook.url)
    check_alerts(seeded.app, make_config(alerts=alerts))
    [workers] = [m for m in hook.received if m["event"] == "crm-sync.workers.alert"]
    assert workers["kind"] == "no_worker_alive" and "1 stuck mailbox waits" in workers["message"]


def test_no_worker_alive_is_an_alert_only_while_work_waits() -> None:
    workers = {"alive": 0, "last_seen": None, "window_seconds": 30.0}
    idle = {"mode": "redis", "pending": 0, "queues": {"sync": {"ready": 0, "in_flight": 0, "delayed": 0,
                                                               "dead_lettered": 4}}}  # fmt: skip
    assert workers_alert(workers, idle, NOW) is None  # nothing to do: nobody needs a worker (dead letters wait)
    busy = idle | {"pending": 2500, "queues": {"sync": {"ready": 12, "in_flight": 1, "delayed": 0, "dead_lettered": 0}}}
    message = workers_alert(workers, busy, NOW)
    assert message == (
        "no worker alive (no worker process has registered in the last 30 s) while "
        "13 queued messages, 2,500 pending items wait: start `crm-sync worker`"
    )
    assert "1 stuck mailbox" in (workers_alert(workers | {"last_seen": None}, idle, NOW, stuck=1) or "")
    assert workers_alert(workers | {"alive": 1}, busy, NOW) is None
    assert workers_alert({"alive": None, "error": "cannot read the workers: refused"}, busy, NOW) is None
    assert workers_alert(None, busy, NOW) is None  # the embedded mode


def test_one_failed_sync_is_said_in_the_singular() -> None:
    alert = mailbox_alert(box(state="degraded", consecutive_failures=1, last_error="timed out"), CONFIG, NOW)
    assert alert is not None and alert.message.startswith("1 failed sync in a row: ")
    alert = mailbox_alert(box(consecutive_failures=3, last_error="timed out"), CONFIG, NOW)
    assert alert is not None and alert.message.startswith("3 failed syncs in a row: ")
    workers = {"alive": 0, "last_seen": None, "window_seconds": 30.0}
    assert "while 1 stuck mailbox waits: " in (workers_alert(workers, {"pending": 0}, NOW, stuck=1) or "")
    assert "while 2 stuck mailboxes wait: " in (workers_alert(workers, {"pending": 0}, NOW, stuck=2) or "")


def test_no_worker_alive_is_announced_once_and_so_is_its_end(hook: Hook, tmp_path: Path) -> None:
    notifier = AlertNotifier(AlertConfig(webhook_url=hook.url), tmp_path / "alerts-state.json")
    message = "no worker alive (no worker process has registered in the last 30 s) while 3 queued messages wait: …"
    dead = {"alive": 0, "last_seen": None, "window_seconds": 30.0, "alert": message}

    assert notifier.notify_workers({"alive": 2, "alert": None}, NOW) is None  # healthy from the start
    sent = notifier.notify_workers(dead, NOW)
    assert sent is not None and (sent["event"], sent["kind"], sent["previous"]) == (
        "crm-sync.workers.alert", "no_worker_alive", "ok"
    )  # fmt: skip
    assert sent["mailbox"] is None and sent["message"] == message and sent["text"] == f"crm-sync: {message}"
    assert notifier.notify_workers(dead, NOW) is None  # no change
    # The mailboxes' announcements neither forget nor repeat it.
    assert notifier.notify(["alice"], [], NOW) == [] and notifier.notify_workers(dead, NOW) is None
    # Not read (embedded mode, Redis unreadable): no news either way.
    for unknown in (None, {"alive": None, "error": "cannot read the workers: refused"}):
        assert notifier.notify_workers(unknown, NOW) is None
    back = notifier.notify_workers({"alive": 1, "alert": None}, NOW + timedelta(minutes=5))
    assert back is not None and (back["kind"], back["previous"], back["message"]) == (
        "ok", "no_worker_alive", "1 worker alive"
    )  # fmt: skip
    assert [m["kind"] for m in hook.received] == ["no_worker_alive", "ok"]


def test_a_failed_workers_announcement_is_tried_again(hook: Hook, tmp_path: Path) -> None:
    notifier = AlertNotifier(AlertConfig(webhook_url=hook.url), tmp_path / "alerts-state.json")
    dead = {"alive": 0, "alert": "no worker alive …"}
    hook.status = 502
    assert notifier.notify_workers(dead, NOW) is None
    hook.status = 204
    assert notifier.notify_workers(dead, NOW) is not None
    assert notifier.notify_workers(dead, NOW) is None
    assert len(hook.received) == 2


def test_status_in_redis_mode_announces_no_worker_alive(
    cli, seeded: Seeded, hook: Hook, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    with transaction(seeded.app.sessions) as session:  # its worker died: stuck, and waiting for a worker
        session.execute(update(Mailbox).where(Mailbox.name == "alice").values(state="syncing"))
    monkeypatch.setenv("CRM_BROKER_URL", redis_url)
    monkeypatch.setenv("CRM_ALERT_WEBHOOK_URL", hook.url)
    data = json.loads(cli("status", "--json").out)
    assert data["workers"]["alert"].startswith("no worker alive")
    cli("status", "--json")  # again: nothing new to say
    assert sorted((m["event"], m["mailbox"] or "-") for m in hook.received) == [
        ("crm-sync.mailbox.alert", "broken"),
        ("crm-sync.workers.alert", "-"),
    ]
    workers = next(m for m in hook.received if m["event"] == "crm-sync.workers.alert")
    assert workers["message"] == data["workers"]["alert"] and workers["kind"] == "no_worker_alive"
