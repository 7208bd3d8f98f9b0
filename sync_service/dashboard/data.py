"""What the dashboard page shows, read in one short database session (plus Redis in Redis mode).

Only names, subjects, reasons and counts leave this module: never a mailbox secret, and source URLs only as
``mailboxes.redact_url`` shows them (via ``collect_status``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from crm_store.models import Account, Activity, Mailbox, Opportunity, QuarantineEntry, RawItem, ReviewItem
from sync_service.config import Settings
from sync_service.dashboard.alerts import Alert, AlertConfig
from sync_service.dashboard.chart import Chart, bar_chart, days_back
from sync_service.dashboard.deadletters import DeadLetter, read_dead_letters
from sync_service.dashboard.wording import STATE_WORDS, STUCK_HINT, STUCK_WORDS, duration, is_throttled, plain_error
from sync_service.status import LivenessReader, collect_status, error_is_past
from workers.broker import broker_mode, redis_client
from workers.liveness import redis_liveness
from workers.queues import queue_status, redis_dead_per_mailbox

CHART_DAYS = 28


@dataclass(frozen=True)
class QueueSnapshot:
    status: dict[str, Any]  # ``workers.queues.queue_status``
    dead_letters: list[DeadLetter] = field(default_factory=list)  # the latest few, for the list on the page
    dead_per_mailbox: dict[int, int] = field(default_factory=dict)  # mailbox id → all its dead letters
    liveness: LivenessReader | None = None  # Redis mode: live workers and stuck mailboxes (``workers.liveness``)

    @property
    def requeue_possible(self) -> bool:
        return self.status.get("mode") == "redis" and self.status.get("queues") is not None


def read_queues(settings: Settings) -> QueueSnapshot:
    """The queue numbers and, in Redis mode, the latest dead letters and the dead letters per mailbox (an
    unreachable Redis is reported)."""
    status = queue_status(settings)
    liveness = redis_liveness(settings)
    if broker_mode(settings) != "redis" or not settings.broker_url or status.get("queues") is None:
        return QueueSnapshot(status, liveness=liveness)
    client = redis_client(settings.broker_url)
    try:
        return QueueSnapshot(status, read_dead_letters(client), redis_dead_per_mailbox(client), liveness)
    except redis.RedisError:
        return QueueSnapshot(status, liveness=liveness)
    finally:
        client.close()


@dataclass(frozen=True)
class MailboxView:
    name: str
    owner: str
    source: str
    state: str
    state_words: str
    last_success: str | None
    lag: str
    items_synced: int
    pending: int
    quarantined: int
    failures: int
    throttled: bool
    error_plain: str | None
    error_raw: str | None
    error_at: str | None
    error_past: bool  # a successful sync came after it
    alert: Alert | None
    dead_letters: int
    stuck: bool = False  # stored state ``syncing``, but no worker holds the lock (Redis mode)

    @property
    def paused(self) -> bool:
        return self.state == "paused"

    @property
    def badge(self) -> str:
        """The badge's classes: its state's, and ``badge-stuck`` (coloured as a warning) for a stuck mailbox."""
        return "badge-stuck badge-degraded" if self.stuck else f"badge-{self.state}"

    @property
    def stuck_hint(self) -> str:
        return STUCK_HINT


@dataclass(frozen=True)
class ActivityRow:
    id: int
    type: str
    subject: str
    status: str
    direction: str | None
    when: datetime | None
    account: str | None
    opportunity: str | None


@dataclass(frozen=True)
class QuarantineRow:
    id: int
    mailbox: str | None
    folder: str
    external_id: str
    reason: str
    at: datetime
    retries: int
    retryable: bool  # a raw item is still there to process again


@dataclass(frozen=True)
class Candidate:
    id: int
    title: str
    stage: str | None


@dataclass(frozen=True)
class ReviewRow:
    activity_id: int
    type: str
    subject: str
    when: datetime | None
    account: str | None
    reason: str
    candidates: list[Candidate]


@dataclass(frozen=True)
class PageModel:
    generated_at: datetime
    mailboxes: list[MailboxView]
    alerts: list[Alert]
    queue: dict[str, Any]
    queues: QueueSnapshot
    chart: Chart
    activities: list[ActivityRow]
    quarantine: list[QuarantineRow]
    review: list[ReviewRow]
    totals: dict[str, int]
    mailbox_names: dict[int, str] = field(default_factory=dict)  # id → name, for the dead letters
    workers: dict[str, Any] | None = None  # ``collect_status``'s (Redis mode): alive, last_seen, alert, error


def _mailbox_view(box: dict[str, Any], alert: Alert | None, dead: int) -> MailboxView:
    error, state, stuck = box.get("last_error"), box["state"], bool(box.get("stuck"))
    return MailboxView(
        name=box["name"],
        owner=box["owner"],
        source=box["source"],
        state=state,
        state_words=STUCK_WORDS if stuck else STATE_WORDS.get(state, state),
        last_success=box.get("last_success"),
        lag=duration(box.get("lag_seconds")) if box.get("lag_seconds") is not None else "never synced",
        items_synced=int(box.get("items_synced") or 0),
        pending=int(box.get("pending") or 0),
        quarantined=int(box.get("quarantined") or 0),
        failures=int(box.get("consecutive_failures") or 0),
        throttled=is_throttled(state, error),
        error_plain=plain_error(error) if error else None,
        error_raw=error,
        error_at=box.get("last_error_at"),
        error_past=error_is_past(box.get("last_error_at"), box.get("last_success")),
        alert=alert,
        dead_letters=dead,
        stuck=stuck,
    )


def recent_activities(session: Session, limit: int = 15) -> list[ActivityRow]:
    """The activities logged most recently."""
    opp = aliased(Opportunity)
    rows = session.execute(
        select(Activity, Account.name, opp.title)
        .outerjoin(Account, Account.id == Activity.account_id)
        .outerjoin(opp, opp.id == Activity.opportunity_id)
        .order_by(Activity.created_at.desc(), Activity.id.desc())
        .limit(limit)
    )
    return [
        ActivityRow(a.id, a.type, a.subject, a.status, a.direction, a.start_at or a.created_at, acc, title)
        for a, acc, title in rows
    ]


def quarantine_rows(session: Session, limit: int = 50) -> list[QuarantineRow]:
    rows = session.execute(
        select(QuarantineEntry, Mailbox.name)
        .outerjoin(Mailbox, Mailbox.id == QuarantineEntry.mailbox_id)
        .order_by(QuarantineEntry.at.desc(), QuarantineEntry.id.desc())
        .limit(limit)
    )
    return [
        QuarantineRow(q.id, name, q.folder, q.external_id, q.reason, q.at, q.retries, q.raw_item_id is not None)
        for q, name in rows
    ]


def review_rows(session: Session, limit: int = 30) -> list[ReviewRow]:
    """Open review items with their candidate opportunities (a one-click choice each)."""
    rows = list(
        session.execute(
            select(ReviewItem, Activity, Account.name)
            .join(Activity, Activity.id == ReviewItem.activity_id)
            .outerjoin(Account, Account.id == Activity.account_id)
            .where(ReviewItem.resolved_at.is_(None))
            .order_by(ReviewItem.created_at.desc(), ReviewItem.id.desc())
            .limit(limit)
        )
    )
    wanted = {int(c) for r, _, _ in rows for c in r.candidates if isinstance(c, int)}
    opps = {
        o.id: Candidate(o.id, o.title, o.stage)
        for o in session.scalars(select(Opportunity).where(Opportunity.id.in_(wanted)))
    }
    return [
        ReviewRow(
            r.activity_id, a.type, a.subject, a.start_at or a.created_at, account, r.reason,
            [opps[c] for c in r.candidates if c in opps],
        )
        for r, a, account in rows
    ]  # fmt: skip


def items_per_day(session: Session, today: date, days: int = CHART_DAYS) -> list[tuple[date, int]]:
    """Raw items fetched per UTC day (``RawItem.received_at``), the last ``days`` days."""
    since = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), UTC)
    day = func.date(RawItem.received_at)
    rows = session.execute(select(day, func.count()).where(RawItem.received_at >= since).group_by(day))
    counts = {date.fromisoformat(str(d)[:10]): int(n) for d, n in rows if d is not None}
    return days_back(counts, today, days)


def build_page(
    session: Session, queues: QueueSnapshot, alert_config: AlertConfig, now: datetime | None = None
) -> PageModel:
    now = now or datetime.now(UTC)
    status = collect_status(session, now=now, queues=queues.status, alert_config=alert_config, liveness=queues.liveness)
    alerts = [Alert(a["mailbox"], a["kind"], a["message"], a.get("reason")) for a in status["alerts"]]
    by_name = {a.mailbox: a for a in alerts}
    ids: dict[int, str] = {i: n for i, n in session.execute(select(Mailbox.id, Mailbox.name))}
    dead = {ids[i]: n for i, n in queues.dead_per_mailbox.items() if i in ids}
    views = [_mailbox_view(b, by_name.get(b["name"]), dead.get(b["name"], 0)) for b in status["mailboxes"]]
    queue = status["queue"]
    dead_total = sum(n["dead_lettered"] for n in (queue.get("queues") or {}).values())
    totals = {
        "mailboxes": len(views),
        "items": sum(v.items_synced for v in views),
        "pending": int(queue["pending"]),
        "quarantined": int(queue["quarantined"]),
        "review": int(queue["review"]),
        "dead_lettered": dead_total,
    }
    return PageModel(
        generated_at=now,
        mailboxes=views,
        alerts=alerts,
        queue=queue,
        queues=queues,
        chart=bar_chart(items_per_day(session, now.date())),
        activities=recent_activities(session),
        quarantine=quarantine_rows(session),
        review=review_rows(session),
        totals=totals,
        mailbox_names=ids,
        workers=status.get("workers"),
    )
