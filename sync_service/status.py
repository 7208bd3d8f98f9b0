"""What `crm-sync status` reports: every mailbox's health, the work queue, the CRM totals."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from crm_store.models import Activity, Mailbox, QuarantineEntry, RawItem, ReviewItem, SyncedItem, User
from crm_store.models.sync import DELETED, PENDING, SYNCING
from sync_service.dashboard.alerts import AlertConfig, evaluate, workers_alert
from sync_service.exports import iso
from sync_service.mailboxes import redact_url

if TYPE_CHECKING:  # workers.liveness imports dramatiq and the pipeline: only the callers that pass one need it
    from workers.liveness import Liveness

LivenessReader = Callable[[Collection[int], datetime], "Liveness"]


def _lag_seconds(last: datetime | None, now: datetime) -> int | None:
    return int((now - last).total_seconds()) if last else None


def error_is_past(last_error_at: str | None, last_success: str | None) -> bool:
    """Did a successful sync come after the last error (ISO 8601 UTC times, as ``collect_status`` gives them)?
    The error stays on record; the views say it is over."""
    return bool(last_error_at and last_success and last_success > last_error_at)


def _still_syncing(bind: Engine, ids: Collection[int]) -> set[int]:
    """Those of ``ids`` still ``syncing`` now, read afresh (a snapshot taken before the lease was seen free may
    predate the end of its sync): a sync that just ended is not stuck."""
    if not ids:
        return set()
    with Session(bind) as fresh:
        return set(fresh.scalars(select(Mailbox.id).where(Mailbox.id.in_(ids), Mailbox.state == SYNCING)))


def _look(bind: Engine, liveness: LivenessReader, now: datetime) -> tuple[Liveness, set[int] | None]:
    """The workers' Redis, read between two short sessions of their own and never while one is open: the
    syncing mailboxes, then Redis, then which of them are still syncing (``None``: Redis could not be read)."""
    with Session(bind) as session:
        syncing = list(session.scalars(select(Mailbox.id).where(Mailbox.state == SYNCING)))
    look = liveness(syncing, now)
    if look.error is not None:
        return look, None
    return look, _still_syncing(bind, look.unlocked)


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def stuck_mailboxes(bind: Engine, liveness: LivenessReader, now: datetime) -> set[int] | None:
    """The ``syncing`` mailboxes no worker holds the lease of (None: the workers' Redis could not be read)."""
    return _look(bind, liveness, now)[1]


def collect_status(
    session: Session,
    now: datetime | None = None,
    queues: Mapping[str, Any] | None = None,
    alert_config: AlertConfig | None = None,
    liveness: LivenessReader | None = None,
) -> dict[str, Any]:
    """Mailboxes, queue, totals and alerts. ``queues``: the broker's numbers (``workers.queues.queue_status``):
    ``{"mode": "embedded" | "redis", "queues": {name: {ready, in_flight, delayed, dead_lettered}}}``.
    ``alert_config``: the thresholds of ``sync_service.dashboard.alerts`` (default: its defaults).
    ``liveness`` (Redis mode, ``workers.liveness.redis_liveness``): reads the live workers and which syncing
    mailboxes no lease holds; it adds ``workers`` (else None) and makes each mailbox's ``stuck`` true or false
    (else None). The stored ``state`` is reported as it is."""
    now = now or datetime.now(UTC)
    queues = queues or {"mode": "embedded", "queues": {}}
    look, stuck = _look(_engine(session), liveness, now) if liveness is not None else (None, None)
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
    rows = list(session.execute(select(Mailbox, User.email).join(User).order_by(Mailbox.name)))
    workers: dict[str, Any] | None = None
    if look is not None and look.error is not None:
        workers = {"alive": None, "last_seen": None, "window_seconds": look.window, "error": look.error}
    elif look is not None:
        workers = {
            "alive": look.alive,
            "stopping": look.stopping,
            "last_seen": iso(look.last_seen),
            "window_seconds": look.window,
        }
    boxes = []
    for m, owner in rows:
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
                "stuck": None if stuck is None else m.id in stuck,
            }
        )
    alerts = evaluate(boxes, alert_config or AlertConfig(), now)
    for box in boxes:
        box["alert"] = next((a.kind for a in alerts if a.mailbox == box["name"]), None)
    skipped = skipped_counts(session)
    activities = dict(session.execute(select(Activity.type, func.count()).group_by(Activity.type)).all())
    queue = {
        "mode": queues.get("mode", "embedded"),
        "pending": sum(pending.values()),
        "quarantined": session.scalar(select(func.count()).select_from(QuarantineEntry)) or 0,
        "review": session.scalar(select(func.count()).select_from(ReviewItem).where(ReviewItem.resolved_at.is_(None)))
        or 0,
        **{k: v for k, v in queues.items() if k != "mode"},
    }
    if workers is not None:
        workers["alert"] = workers_alert(workers, queue, now, stuck=len(stuck or ()))
    return {
        "generated_at": iso(now),
        "mailboxes": boxes,
        "queue": queue,
        "activities": dict(sorted(activities.items())),
        "skipped": dict(sorted(skipped.items())),
        "alerts": [a.as_dict() for a in alerts],
        "workers": workers,
    }


def skipped_counts(session: Session) -> dict[str, int]:
    """How many synced items were not logged, by reason (private, automated, unmatched…)."""
    rows = session.execute(
        select(SyncedItem.skip_reason, func.count())
        .where(SyncedItem.skip_reason.is_not(None))
        .group_by(SyncedItem.skip_reason)
    ).all()
    return {str(reason): int(count) for reason, count in rows}
