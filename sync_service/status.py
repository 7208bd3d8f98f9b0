"""What `crm-sync status` reports: every mailbox's health, the work queue, the CRM totals."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_store.models import Activity, Mailbox, QuarantineEntry, RawItem, ReviewItem, SyncedItem, User
from crm_store.models.sync import DELETED, PENDING
from sync_service.dashboard.alerts import AlertConfig, evaluate
from sync_service.exports import iso
from sync_service.mailboxes import redact_url


def _lag_seconds(last: datetime | None, now: datetime) -> int | None:
    return int((now - last).total_seconds()) if last else None


def collect_status(
    session: Session,
    now: datetime | None = None,
    queues: Mapping[str, Any] | None = None,
    alert_config: AlertConfig | None = None,
) -> dict[str, Any]:
    """Mailboxes, queue, totals and alerts. ``queues``: the broker's numbers (``workers.queues.queue_status``):
    ``{"mode": "embedded" | "redis", "queues": {name: {ready, in_flight, delayed, dead_lettered}}}``.
    ``alert_config``: the thresholds of ``sync_service.dashboard.alerts`` (default: its defaults)."""
    now = now or datetime.now(UTC)
    queues = queues or {"mode": "embedded", "queues": {}}
    pending = dict(
        session.execute(
            select(RawItem.mailbox_id, func.count())
            .where((RawItem.state == PENDING) | ((RawItem.state == DELETED) & RawItem.processed_at.is_(None)))
            .group_by(RawItem.mailbox_id)
        ).all()
    )
    quarantined = dict(
        session.execute(select(QuarantineEntry.mailbox_id, func.count()).group_by(QuarantineEntry.mailbox_id)).all()
    )
    boxes = []
    for m, owner in session.execute(select(Mailbox, User.email).join(User).order_by(Mailbox.name)):
        boxes.append(
            {
                "name": m.name,
                "owner": owner,
                "source": redact_url(m.source_url),
                "state": m.state,
                "last_success": iso(m.last_success_at),
                "last_error": m.last_error,
                "last_error_at": iso(m.last_error_at),
                "consecutive_failures": m.consecutive_failures,
                "items_synced": m.items_synced,
                "lag_seconds": _lag_seconds(m.last_success_at, now),
                "pending": pending.get(m.id, 0),
                "quarantined": quarantined.get(m.id, 0),
                "added_at": iso(m.created_at),
            }
        )
    alerts = evaluate(boxes, alert_config or AlertConfig(), now)
    for box in boxes:
        box["alert"] = next((a.kind for a in alerts if a.mailbox == box["name"]), None)
    skipped = dict(
        session.execute(
            select(SyncedItem.skip_reason, func.count())
            .where(SyncedItem.skip_reason.is_not(None))
            .group_by(SyncedItem.skip_reason)
        ).all()
    )
    activities = dict(session.execute(select(Activity.type, func.count()).group_by(Activity.type)).all())
    return {
        "generated_at": iso(now),
        "mailboxes": boxes,
        "queue": {
            "mode": queues.get("mode", "embedded"),
            "pending": sum(pending.values()),
            "quarantined": session.scalar(select(func.count()).select_from(QuarantineEntry)) or 0,
            "review": session.scalar(
                select(func.count()).select_from(ReviewItem).where(ReviewItem.resolved_at.is_(None))
            )
            or 0,
            **{k: v for k, v in queues.items() if k != "mode"},
        },
        "activities": dict(sorted(activities.items())),
        "skipped": dict(sorted(skipped.items())),
        "alerts": [a.as_dict() for a in alerts],
    }
