"""Which raw items are waiting for the processing stage (pending, or deleted at the source and not yet
applied): the one query the processing loop, its parser processes, the scheduler and the workers share."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import ColumnElement, Engine, and_, func, or_, select, text
from sqlalchemy.orm import Session

from crm_store.models import RawItem
from crm_store.models.sync import DELETED, PENDING


def _waiting() -> ColumnElement[bool]:
    return or_(RawItem.state == PENDING, and_(RawItem.state == DELETED, RawItem.processed_at.is_(None)))


def pending_items(mailbox_id: int | None, after: int, limit: int, *what: object) -> object:
    """The next ``limit`` waiting raw items after id ``after`` (of one mailbox, or all): ``what`` (columns;
    default the ``RawItem`` objects), in id order."""
    stmt = (
        select(*(what or (RawItem,)))  # type: ignore[call-overload]
        .where(_waiting())
        .where(RawItem.id > after)
        .order_by(RawItem.id)
        .limit(limit)
    )
    return stmt.where(RawItem.mailbox_id == mailbox_id) if mailbox_id is not None else stmt


def still_waiting(session: Session, ids: list[int]) -> list[RawItem]:
    """The raw items of ``ids`` that still wait (another run may have done some since), in the order of ``ids``."""
    found = {raw.id: raw for raw in session.scalars(select(RawItem).where(RawItem.id.in_(ids), _waiting()))}
    return [found[raw_id] for raw_id in ids if raw_id in found]


def count_pending(session: Session, mailbox_id: int | None = None) -> int:
    stmt = (
        select(func.count())
        .select_from(RawItem)
        .where(_waiting())
    )
    if mailbox_id is not None:
        stmt = stmt.where(RawItem.mailbox_id == mailbox_id)
    return int(session.scalar(stmt) or 0)


def pending_by_mailbox(session: Session) -> dict[int, int]:
    """Pending raw items per mailbox (only mailboxes that have some)."""
    rows = session.execute(
        select(RawItem.mailbox_id, func.count())
        .where(_waiting())
        .group_by(RawItem.mailbox_id)
        .order_by(RawItem.mailbox_id)
    )
    return {mailbox_id: int(count) for mailbox_id, count in rows}


ANALYZE_AT_LEAST = 1000  # items a run must have processed before it refreshes the planner's statistics …
ANALYZE_SHARE = 0.1  # … and this share of the table (autovacuum's own rule: 10 % of the rows changed)


def refresh_statistics(engine: Engine, sessions: Callable[[], Session], processed: int) -> bool:
    """After a run that took many raw items out of waiting, on PostgreSQL: ``ANALYZE`` the raw items.

    The planner's statistics still say what they said before the run — most items waiting, after a first
    sync — and with them it reads the whole table for each waiting-items query (a sequential scan instead
    of the state index: 5–8 ms each at 20,000 items, and growing with the table) until autovacuum analyses
    it, up to a minute later. PostgreSQL's advice after a bulk load is to ``ANALYZE``; this does it when the
    run changed at least a tenth of the table and ``ANALYZE_AT_LEAST`` items, so a small run never pays for
    it, and only for the columns those queries filter and sort on (11–16 ms at 20,000 items, against 60–90 ms
    for every column). ``SKIP_LOCKED``: a worker that finds another one analysing skips it. True when it ran."""
    if processed < ANALYZE_AT_LEAST or engine.dialect.name != "postgresql":
        return False
    table = RawItem.__tablename__
    with sessions() as session, session.begin():
        rows = session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = CAST(:t AS regclass)"), {"t": table})
        if processed < ANALYZE_SHARE * max(float(rows or 0), 0.0):
            return False
        columns = ", ".join(c.name for c in (RawItem.state, RawItem.processed_at, RawItem.mailbox_id, RawItem.id))
        session.execute(text(f"ANALYZE (SKIP_LOCKED) {table} ({columns})"))
    return True
