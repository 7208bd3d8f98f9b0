"""`crm-sync export KIND --format json`: the JSON contract of SPEC §5.

Every export is one JSON array; times are ISO 8601 UTC with a ``Z``. Secrets never appear.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from crm_store.models import (
    Account,
    Activity,
    ActivityAccount,
    ActivityContact,
    Contact,
    Document,
    ItemSource,
    Lead,
    Mailbox,
    Opportunity,
    ProcessDefinition,
    QuarantineEntry,
    RawItem,
    ReviewItem,
    SyncedItem,
)
from sync_service.errors import ConfigError

Row = dict[str, Any]


def iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def step_titles(session: Session) -> dict[str, str]:
    titles: dict[str, str] = {}
    for definition in session.scalars(select(ProcessDefinition.definition)):
        for stage in definition.get("stages", []):
            for step in stage.get("steps", []):
                titles[step["key"]] = step.get("title", step["key"])
    return titles


def _names(session: Session, model: Any, attr: str = "name") -> dict[int, str]:
    return dict(session.execute(select(model.id, getattr(model, attr))).all())


def export_accounts(session: Session) -> list[Row]:
    accounts = session.scalars(
        select(Account).options(selectinload(Account.domains), selectinload(Account.owner)).order_by(Account.id)
    )
    return [
        {
            "id": a.id,
            "name": a.name,
            "type": a.type,
            "domains": [d.domain for d in a.domains],
            "territory": a.territory,
            "owner": a.owner.email if a.owner else None,
        }
        for a in accounts
    ]


def export_contacts(session: Session) -> list[Row]:
    accounts = _names(session, Account)
    contacts = session.scalars(
        select(Contact).options(selectinload(Contact.emails), selectinload(Contact.phones)).order_by(Contact.id)
    )
    return [
        {
            "id": c.id,
            "name": c.name,
            "emails": [e.email for e in c.emails],
            "phones": [p.e164 or p.raw for p in c.phones],
            "job_title": c.job_title or None,
            "account": accounts.get(c.account_id) if c.account_id else None,
            "source": c.source,
        }
        for c in contacts
    ]


def _step(key: str | None, titles: dict[str, str]) -> dict[str, str] | None:
    return {"id": key, "title": titles.get(key, key)} if key else None


def export_leads(session: Session) -> list[Row]:
    titles = step_titles(session)
    leads = session.scalars(select(Lead).options(selectinload(Lead.emails), selectinload(Lead.owner)).order_by(Lead.id))
    return [
        {
            "id": lead.id,
            "name": lead.name,
            "company": lead.company,
            "emails": [e.email for e in lead.emails],
            "status": lead.status,
            "source": lead.source,
            "owner": lead.owner.email if lead.owner else None,
            "process_stage": lead.process_stage,
            "current_step": _step(lead.current_step, titles),
        }
        for lead in leads
    ]


def export_opportunities(session: Session) -> list[Row]:
    accounts, titles = _names(session, Account), step_titles(session)
    processes = _names(session, ProcessDefinition)
    opps = session.scalars(
        select(Opportunity)
        .options(
            selectinload(Opportunity.history), selectinload(Opportunity.owner), selectinload(Opportunity.participants)
        )
        .order_by(Opportunity.id)
    )
    out = []
    for o in opps:
        out.append(
            {
                "id": o.id,
                "title": o.title,
                "account": accounts.get(o.account_id) if o.account_id else None,
                "stage": o.stage,
                "status": o.status,
                "owner": o.owner.email if o.owner else None,
                "amount": str(o.amount) if isinstance(o.amount, Decimal) else o.amount,
                "close_date": iso(o.close_date),
                "source": o.source,
                "won_reason": o.won_reason,
                "lost_reason": o.lost_reason,
                "competitor": o.competitor,
                "participants": [p.contact_id for p in o.participants],
                "process": processes.get(o.process_id) if o.process_id else None,
                "current_step": _step(o.current_step, titles),
                "history": [
                    {
                        "stage": h.stage,
                        "step": titles.get(h.step, h.step) if h.step else None,
                        "result": h.result,
                        "activity_id": h.activity_id,
                        "automatic": h.automatic,
                        "at": iso(h.at),
                    }
                    for h in o.history
                ],
            }
        )
    return out


def _activity_maps(session: Session) -> tuple[dict[int, list[str]], dict[int, list[str]], dict[int, list[str]]]:
    accounts_of: dict[int, list[str]] = defaultdict(list)
    for activity_id, name in session.execute(
        select(ActivityAccount.activity_id, Account.name).join(Account).order_by(ActivityAccount.id)
    ):
        accounts_of[activity_id].append(name)
    contacts_of: dict[int, list[str]] = defaultdict(list)
    contacts = session.scalars(select(Contact).options(selectinload(Contact.emails)))
    primary = {c.id: c.primary_email or c.name for c in contacts}
    for activity_id, contact_id in session.execute(
        select(ActivityContact.activity_id, ActivityContact.contact_id).order_by(ActivityContact.id)
    ):
        contacts_of[activity_id].append(primary[contact_id])
    mailboxes_of: dict[int, list[str]] = defaultdict(list)
    rows = session.execute(
        select(Activity.id, Mailbox.name)
        .join(ItemSource, ItemSource.item_id == Activity.item_id)
        .join(RawItem, RawItem.id == ItemSource.raw_item_id)
        .join(Mailbox, Mailbox.id == RawItem.mailbox_id)
        .order_by(Mailbox.name)
        .distinct()
    )
    for activity_id, name in rows:
        mailboxes_of[activity_id].append(name)
    return accounts_of, contacts_of, mailboxes_of


def _with_primary(primary: str | None, linked: list[str]) -> list[str]:
    """Every account of an activity, its primary one included (a process step's activity links no others)."""
    return linked if primary is None or primary in linked else [primary, *linked]


def export_activities(session: Session) -> list[Row]:
    accounts, leads, opps = _names(session, Account), _names(session, Lead), _names(session, Opportunity, "title")
    titles = step_titles(session)
    accounts_of, contacts_of, mailboxes_of = _activity_maps(session)
    items = {i.id: i for i in session.scalars(select(SyncedItem).join(Activity, Activity.item_id == SyncedItem.id))}
    activities = session.scalars(
        select(Activity).options(selectinload(Activity.documents), selectinload(Activity.owner)).order_by(Activity.id)
    )
    out = []
    for a in activities:
        item = items.get(a.item_id) if a.item_id else None
        out.append(
            {
                "id": a.id,
                "type": a.type,
                "subject": a.subject,
                "status": a.status,
                "result": a.result,
                "origin": a.origin,
                "direction": a.direction,
                "start": iso(a.start_at),
                "end": iso(a.end_at),
                "all_day": bool(a.all_day),  # a calendar event with dates: start / end are UTC midnights
                "message_id": item.message_id if item else None,
                "ical_uid": item.ical_uid if item else None,
                "recurrence_id": item.recurrence_id if item else None,
                "owner": a.owner.email if a.owner else None,
                "account": (primary := accounts.get(a.account_id) if a.account_id else None),
                "accounts": _with_primary(primary, accounts_of.get(a.id, [])),
                "contacts": contacts_of.get(a.id, []),
                "lead": leads.get(a.lead_id) if a.lead_id else None,
                "opportunity": opps.get(a.opportunity_id) if a.opportunity_id else None,
                "mailboxes": mailboxes_of.get(a.id, []),
                "documents": [d.filename for d in a.documents],
                "process_step": titles.get(a.process_step, a.process_step) if a.process_step else None,
            }
        )
    return out


def export_documents(session: Session) -> list[Row]:
    accounts, opps = _names(session, Account), _names(session, Opportunity, "title")
    return [
        {
            "id": d.id,
            "filename": d.filename,
            "media_type": d.media_type,
            "size": d.size,
            "sha256": d.sha256,
            "account": accounts.get(d.account_id) if d.account_id else None,
            "opportunity": opps.get(d.opportunity_id) if d.opportunity_id else None,
            "activity_id": d.activity_id,
        }
        for d in session.scalars(select(Document).order_by(Document.id))
    ]


def export_quarantine(session: Session) -> list[Row]:
    mailboxes = _names(session, Mailbox)
    return [
        {
            "id": q.id,
            "mailbox": mailboxes.get(q.mailbox_id) if q.mailbox_id else None,
            "folder": q.folder,
            "external_id": q.external_id,
            "reason": q.reason,
            "at": iso(q.at),
            "retries": q.retries,
        }
        for q in session.scalars(select(QuarantineEntry).order_by(QuarantineEntry.id))
    ]


def export_review(session: Session) -> list[Row]:
    opps = _names(session, Opportunity, "title")
    reviews = session.scalars(select(ReviewItem).where(ReviewItem.resolved_at.is_(None)).order_by(ReviewItem.id))
    return [
        {
            "activity_id": r.activity_id,
            "reason": r.reason,
            "candidates": [{"id": c, "title": opps.get(c)} for c in r.candidates],
            "at": iso(r.created_at),
        }
        for r in reviews
    ]


EXPORTS: dict[str, Callable[[Session], list[Row]]] = {
    "accounts": export_accounts,
    "contacts": export_contacts,
    "leads": export_leads,
    "opportunities": export_opportunities,
    "activities": export_activities,
    "documents": export_documents,
    "quarantine": export_quarantine,
    "review": export_review,
}


def export(session: Session, kind: str) -> list[Row]:
    exporter = EXPORTS.get(kind)
    if exporter is None:
        raise ConfigError(f"unknown export kind {kind!r} (one of: {', '.join(EXPORTS)})")
    return exporter(session)
