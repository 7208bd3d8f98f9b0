"""``/metrics``: the Prometheus text exposition format (version 0.0.4), written from ``collect_status`` (pure).

Our gauges are written by hand rather than with ``prometheus_client``: the numbers are read from the database and
Redis at scrape time (nothing accumulates in this process), so a registry would add nothing.

dramatiq's own metrics (``dramatiq_messages_total``, ``dramatiq_message_duration_milliseconds``, …) are counted
inside the worker processes by its Prometheus middleware, when ``CRM_WORKER_METRICS_DIR`` is set
(``workers.broker.worker_metrics_middleware``). They write ``prometheus_client`` multiprocess files there;
``worker_metrics`` merges those files with ``prometheus_client``'s ``MultiProcessCollector``, so a dashboard that
shares the directory with the workers (same machine or a shared volume) serves them too. Workers elsewhere are
scraped on their own endpoint (``CRM_WORKER_METRICS_PORT``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STATES = ("idle", "syncing", "paused", "failed", "degraded")
_QUEUE_FIELDS = ("ready", "in_flight", "delayed", "dead_lettered")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Exposition:
    """Collects metric families; each family's HELP and TYPE are written once, before its samples."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")
        self._lines.extend(f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _timestamp(iso_time: str | None) -> float | None:
    return datetime.fromisoformat(iso_time).timestamp() if iso_time else None


def render_metrics(status: Mapping[str, Any]) -> str:
    """The exposition of one ``collect_status`` result (with its ``queue.queues`` and ``alerts``)."""
    boxes = status.get("mailboxes", [])
    out = Exposition()

    def per_box(key: str) -> list[tuple[Mapping[str, str], float]]:
        return [({"mailbox": m["name"]}, float(m[key])) for m in boxes if m.get(key) is not None]

    out.family("crm_sync_mailbox_lag_seconds", "gauge", "Seconds since the mailbox's last successful sync.",
               per_box("lag_seconds"))  # fmt: skip
    last = [({"mailbox": m["name"]}, ts) for m in boxes if (ts := _timestamp(m.get("last_success"))) is not None]
    out.family("crm_sync_mailbox_last_success_timestamp_seconds", "gauge",
               "Unix time of the mailbox's last successful sync.", last)  # fmt: skip
    out.family("crm_sync_mailbox_consecutive_failures", "gauge", "Failed syncs in a row (0 after a success).",
               per_box("consecutive_failures"))  # fmt: skip
    states = [
        ({"mailbox": m["name"], "state": state}, 1.0 if m["state"] == state else 0.0)
        for m in boxes
        for state in (*_STATES, *([m["state"]] if m["state"] not in _STATES else []))
    ]
    out.family("crm_sync_mailbox_state", "gauge", "1 for the mailbox's current state, 0 for the others.", states)
    out.family("crm_sync_mailbox_items_synced_total", "counter", "Items fetched from the mailbox so far.",
               per_box("items_synced"))  # fmt: skip
    out.family("crm_sync_mailbox_pending_items", "gauge", "Fetched items waiting to be processed.",
               per_box("pending"))  # fmt: skip
    out.family("crm_sync_mailbox_quarantined_items", "gauge", "Items of the mailbox in quarantine.",
               per_box("quarantined"))  # fmt: skip
    alerting = {a["mailbox"]: a["kind"] for a in status.get("alerts", [])}
    alert_samples = [
        ({"mailbox": m["name"], "kind": kind}, 1.0 if alerting.get(m["name"]) == kind else 0.0)
        for m in boxes
        for kind in ("failing", "lagging")
    ]
    out.family("crm_sync_mailbox_alert", "gauge", "1 when the mailbox is flagged failing or lagging.", alert_samples)
    stuck = [({"mailbox": m["name"]}, 1.0 if m["stuck"] else 0.0) for m in boxes if m.get("stuck") is not None]
    out.family("crm_sync_mailbox_stuck", "gauge",
               "1 when the mailbox is syncing but no worker holds its lock (Redis mode).", stuck)  # fmt: skip
    queue = status.get("queue", {})
    depth = [
        ({"queue": name, "state": field}, float(numbers.get(field, 0)))
        for name, numbers in sorted((queue.get("queues") or {}).items())
        for field in _QUEUE_FIELDS
    ]
    out.family("crm_sync_queue_messages", "gauge", "Messages per work queue and state (Redis mode).", depth)
    readable = 0.0 if queue.get("error") else 1.0
    out.family("crm_sync_queue_up", "gauge", "1 when the work queues could be read.", [({}, readable)])
    workers = status.get("workers") or {}
    alive: list[tuple[Mapping[str, str], float]] = (
        [({}, float(workers["alive"]))] if workers.get("alive") is not None else []
    )
    out.family("crm_sync_workers_alive", "gauge",
               "Worker processes registered in Redis (workers/presence.py; Redis mode).", alive)  # fmt: skip
    out.family("crm_sync_items_pending", "gauge", "Fetched items waiting to be processed, all mailboxes.",
               [({}, float(queue.get("pending", 0)))])  # fmt: skip
    out.family("crm_sync_items_quarantined", "gauge", "Items in quarantine, all mailboxes.",
               [({}, float(queue.get("quarantined", 0)))])  # fmt: skip
    out.family("crm_sync_review_items", "gauge", "Activities waiting for a person to choose the opportunity.",
               [({}, float(queue.get("review", 0)))])  # fmt: skip
    activities = [({"type": t}, float(n)) for t, n in sorted(status.get("activities", {}).items())]
    out.family("crm_sync_activities_total", "counter", "Activities in the CRM by type.", activities)
    skipped = [({"reason": r}, float(n)) for r, n in sorted(status.get("skipped", {}).items())]
    out.family("crm_sync_items_skipped_total", "counter", "Items not logged, by reason.", skipped)
    return out.text()


def worker_metrics(directory: Path | None) -> str:
    """dramatiq's worker metrics merged from the multiprocess files in ``directory``, after the gauge
    ``crm_sync_worker_metrics_up`` (0 when the directory cannot be read); nothing when ``directory`` is None."""
    if directory is None:
        return ""
    # Imported here: prometheus_client picks its storage when first imported, and only workers need files.
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    up, body = 1.0, ""
    try:
        MultiProcessCollector(registry, path=str(directory))
        body = generate_latest(registry).decode("utf-8")
    except (OSError, ValueError, struct.error):  # no such directory; a file that cannot be read whole
        up, body = 0.0, ""
    out = Exposition()
    out.family("crm_sync_worker_metrics_up", "gauge", "1 when the workers' metrics directory could be read.",
               [({}, up)])  # fmt: skip
    return out.text() + body
