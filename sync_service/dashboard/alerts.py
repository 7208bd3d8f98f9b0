"""Alert rules (pure): which mailboxes are failing or lagging, from the mailboxes of ``collect_status``.

Rules, first match wins; a paused mailbox is never flagged (a person stopped it on purpose):

1. **failing** — state ``failed`` (a permanent error: bad credentials, missing folder; it stays until resumed),
   or state ``degraded``, or at least ``CRM_ALERT_FAILURES`` (default 3) failed syncs in a row;
2. **lagging** — the last successful sync is older than ``CRM_ALERT_LAG_SECONDS`` (default 3600), or the
   mailbox never synced successfully and was added longer ago than that.

In Redis mode one more rule watches the workers (``workers_alert``): **no worker alive** — work waits (queued,
in-flight or delayed messages, pending items, stuck mailboxes) and no worker process is registered in Redis
(``workers.presence``, read by ``workers.liveness``). It is not a mailbox's alert: ``status`` shows it as
``workers.alert``.

The optional webhook (``CRM_ALERT_WEBHOOK_URL``) is called by ``sync_service.dashboard.webhook`` when a
mailbox's alert kind changes (``ok`` → ``failing`` → ``ok`` …), and when "no worker alive" starts or ends, at
most once per change.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sync_service.dashboard.wording import duration, plain_error, plural
from sync_service.errors import ConfigError

AlertKind = Literal["failing", "lagging"]


@dataclass(frozen=True)
class AlertConfig:
    lag_seconds: int = 3600
    failures: int = 3
    webhook_url: str | None = None
    webhook_timeout: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertConfig:
        env = os.environ if env is None else env
        url = (env.get("CRM_ALERT_WEBHOOK_URL") or "").strip() or None
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigError("CRM_ALERT_WEBHOOK_URL must be an http:// or https:// URL")
        return cls(
            lag_seconds=_positive(env, "CRM_ALERT_LAG_SECONDS", 3600),
            failures=_positive(env, "CRM_ALERT_FAILURES", 3),
            webhook_url=url,
            webhook_timeout=float(_positive(env, "CRM_ALERT_WEBHOOK_TIMEOUT", 5)),
        )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) == 0:
        raise ConfigError(f"{name} must be a whole number above 0, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Alert:
    mailbox: str
    kind: AlertKind
    message: str  # plain words, one line
    reason: str | None = None  # the raw last error, if any

    def as_dict(self) -> dict[str, Any]:
        return {"mailbox": self.mailbox, "kind": self.kind, "message": self.message, "reason": self.reason}


def _age_seconds(iso_time: str | None, now: datetime) -> int | None:
    if not iso_time:
        return None
    return int((now - datetime.fromisoformat(iso_time)).total_seconds())


def mailbox_alert(box: Mapping[str, Any], config: AlertConfig, now: datetime) -> Alert | None:
    """The alert for one mailbox of ``collect_status`` (``name, state, consecutive_failures, last_error,
    lag_seconds, added_at``), or None when it is healthy or paused."""
    name, state, error = box["name"], box["state"], box.get("last_error")
    failures = int(box.get("consecutive_failures") or 0)
    if state == "paused":
        return None
    if state == "failed":
        return Alert(name, "failing", f"sync stopped: {plain_error(error)}", error)
    if state == "degraded" or failures >= config.failures:
        return Alert(name, "failing", f"{plural(failures, 'failed sync')} in a row: {plain_error(error)}", error)
    lag = box.get("lag_seconds")
    if lag is not None and lag > config.lag_seconds:
        return Alert(name, "lagging", f"no successful sync for {duration(lag)}", error)
    age = _age_seconds(box.get("added_at"), now)
    if lag is None and age is not None and age > config.lag_seconds:
        return Alert(name, "lagging", f"never synced successfully (added {duration(age)} ago)", error)
    return None


def evaluate(mailboxes: Iterable[Mapping[str, Any]], config: AlertConfig, now: datetime) -> list[Alert]:
    """The alerts of every mailbox that has one, in the mailboxes' order."""
    return [alert for box in mailboxes if (alert := mailbox_alert(box, config, now)) is not None]


def workers_alert(
    workers: Mapping[str, Any] | None, queue: Mapping[str, Any], now: datetime, stuck: int = 0
) -> str | None:
    """The "no worker alive …" line when ``workers`` (``collect_status``'s ``alive``, ``last_seen``,
    ``window_seconds``) counts none while work waits in ``queue`` (its ``queues`` numbers and ``pending`` items)
    or ``stuck`` mailboxes wait for a worker; None otherwise, and when the workers could not be read."""
    if not workers or workers.get("alive") != 0:
        return None
    queued = sum(
        int(numbers.get(key) or 0)
        for numbers in (queue.get("queues") or {}).values()
        for key in ("ready", "in_flight", "delayed")
    )
    pending = int(queue.get("pending") or 0)
    counts = [
        (queued, "queued message", None),
        (pending, "pending item", None),
        (stuck, "stuck mailbox", "stuck mailboxes"),
    ]
    waiting = [plural(n, what, whats) for n, what, whats in counts if n]
    if not waiting:
        return None
    verb = "waits" if [n for n, _, _ in counts if n] == [1] else "wait"  # "1 stuck mailbox waits"
    window = duration(workers.get("window_seconds"))
    return (
        f"no worker alive (no worker process has registered in the last {window}) while "
        f"{', '.join(waiting)} {verb}: start `crm-sync worker`"
    )
