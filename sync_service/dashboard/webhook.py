"""The alert webhook: POST a JSON message when a mailbox's alert kind changes, or when "no worker alive" starts
or ends (Redis mode), at most once per change.

The kinds last announced are kept in ``<CRM_DATA_DIR>/alerts-state.json`` under a file lock, so the dashboard's
loop and ``crm-sync status`` (run by cron, say) share them and a change is announced once, also across
restarts. A change whose POST fails is not recorded, so it is tried again next time. A mailbox seen for the
first time while healthy announces nothing.

Payload (``Content-Type: application/json``)::

    {"event": "crm-sync.mailbox.alert", "mailbox": "alice", "kind": "failing" | "lagging" | "ok",
     "previous": "ok", "message": "sync stopped: …", "reason": "raw last error" | null, "at": "…Z",
     "text": "crm-sync: mailbox alice is failing: sync stopped: …"}

``text`` makes the same payload readable by chat incoming webhooks (Slack, Mattermost, Teams connectors).

The workers' alert (``collect_status``'s ``workers.alert``) has the same shape, with ``"event":
"crm-sync.workers.alert"``, ``"mailbox": null`` and ``kind`` ``"no_worker_alive"`` or ``"ok"``; it is kept under
``WORKERS_KEY`` (not a valid mailbox name). A status without ``workers`` (the embedded mode, or a look that did
not read the workers) or whose workers could not be read changes nothing about it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from sync_service.dashboard.alerts import Alert, AlertConfig
from sync_service.dashboard.wording import plural
from sync_service.exports import iso

log = logging.getLogger(__name__)
OK = "ok"
NO_WORKER = "no_worker_alive"
WORKERS_KEY = ":workers"  # in alerts-state.json; mailbox names start with a letter or a digit
Poster = Callable[[str, dict[str, Any], float], None]


def post_json(url: str, payload: dict[str, Any], timeout: float) -> None:
    """POST ``payload``; raises ``httpx.HTTPError`` on a network error or a non-2xx answer."""
    response = httpx.post(url, json=payload, timeout=timeout, follow_redirects=False)
    response.raise_for_status()


def _where(url: str) -> str:
    """The webhook's scheme and host only: its path or query often is the secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def payload(mailbox: str, alert: Alert | None, previous: str, now: datetime) -> dict[str, Any]:
    kind = alert.kind if alert else OK
    message = alert.message if alert else "healthy again"
    verb = "is" if alert else "recovered:"
    text = f"crm-sync: mailbox {mailbox} {verb} {kind + ': ' if alert else ''}{message}"
    return {
        "event": "crm-sync.mailbox.alert",
        "mailbox": mailbox,
        "kind": kind,
        "previous": previous,
        "message": message,
        "reason": alert.reason if alert else None,
        "at": iso(now),
        "text": text,
    }


class AlertNotifier:
    """Announces alert changes to ``config.webhook_url``; ``post`` is replaceable for tests."""

    def __init__(self, config: AlertConfig, state_path: Path, post: Poster = post_json) -> None:
        self.config, self.state_path, self.post = config, state_path, post

    @contextmanager
    def _locked_state(self) -> Iterator[dict[str, str]]:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.state_path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._read()
                yield state
                self._write(state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.state_path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _write(self, state: Mapping[str, str]) -> None:
        temp = self.state_path.with_suffix(".tmp")
        temp.write_text(json.dumps(dict(sorted(state.items())), indent=1), "utf-8")
        os.replace(temp, self.state_path)

    def notify(self, mailboxes: list[str], alerts: list[Alert], now: datetime) -> list[dict[str, Any]]:
        """POST one message per mailbox whose alert kind changed; returns the payloads delivered."""
        if not self.config.webhook_url:
            return []
        url = self.config.webhook_url
        by_name = {a.mailbox: a for a in alerts}
        sent: list[dict[str, Any]] = []
        with self._locked_state() as state:
            for gone in set(state) - set(mailboxes) - {WORKERS_KEY}:
                del state[gone]  # a removed mailbox: forget it
            for name in mailboxes:
                alert = by_name.get(name)
                kind, previous = (alert.kind if alert else OK), state.get(name, OK)
                if kind == previous:
                    continue
                body = payload(name, alert, previous, now)
                try:
                    self.post(url, body, self.config.webhook_timeout)
                except (httpx.HTTPError, OSError) as error:
                    log.warning("alert webhook %s failed for mailbox %s: %s", _where(url), name, type(error).__name__)
                    continue
                state[name] = kind
                sent.append(body)
        return sent

    def notify_workers(self, workers: Mapping[str, Any] | None, now: datetime) -> dict[str, Any] | None:
        """POST when the workers' alert (``collect_status``'s ``workers``) starts or ends; the payload delivered.
        ``workers`` None (embedded mode, not read) or with an ``error`` (Redis unreadable): nothing changes."""
        if not self.config.webhook_url or not workers or workers.get("alive") is None:
            return None
        url, message = self.config.webhook_url, workers.get("alert")
        with self._locked_state() as state:
            kind, previous = (NO_WORKER if message else OK), state.get(WORKERS_KEY, OK)
            if kind == previous:
                return None
            body = workers_payload(message, int(workers["alive"]), previous, now)
            try:
                self.post(url, body, self.config.webhook_timeout)
            except (httpx.HTTPError, OSError) as error:
                log.warning("alert webhook %s failed for the workers: %s", _where(url), type(error).__name__)
                return None
            state[WORKERS_KEY] = kind
            return body


def workers_payload(alert: str | None, alive: int, previous: str, now: datetime) -> dict[str, Any]:
    message = alert or (f"{plural(alive, 'worker')} alive" if alive else "no work waits for a worker any more")
    text = f"crm-sync: {alert}" if alert else f"crm-sync: workers recovered: {message}"
    return {
        "event": "crm-sync.workers.alert",
        "mailbox": None,
        "kind": NO_WORKER if alert else OK,
        "previous": previous,
        "message": message,
        "reason": None,
        "at": iso(now),
        "text": text,
    }


def notify_from_status(config: AlertConfig, data_dir: Path, status: Mapping[str, Any], now: datetime) -> int:
    """Announce the changes in a ``collect_status`` result (with its ``alerts``); the number of POSTs made."""
    if not config.webhook_url:
        return 0
    alerts = [Alert(a["mailbox"], a["kind"], a["message"], a.get("reason")) for a in status.get("alerts", [])]
    names = [m["name"] for m in status.get("mailboxes", [])]
    notifier = AlertNotifier(config, data_dir / "alerts-state.json")
    sent = len(notifier.notify(names, alerts, now))
    return sent + (notifier.notify_workers(status.get("workers"), now) is not None)
