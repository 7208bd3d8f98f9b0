"""`crm-sync contact show`: one contact with its addresses, phones, account, opportunities and activities.

`export contacts` lists every contact; deciding whether two of them are one person (before `contact merge`)
needs the rest of what each is linked to, which only this view puts side by side.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_store.models import (
    ActivityContact,
    ActivityLinkExclusion,
    Contact,
    Opportunity,
    OpportunityParticipant,
)
from crm_store.models.activities import EXCLUDE_CONTACT


def contact_lines(session: Session, contact: Contact) -> list[str]:
    """A few lines, each about one thing; empty parts are left out."""
    head = f"contact {contact.id}: {contact.name}"
    if contact.job_title:
        head += f", {contact.job_title}"
    head += f" — account: {contact.account.name} [{contact.account_id}]" if contact.account else " — no account"
    lines = [f"{head} (source: {contact.source})"]
    addresses = [e.email + (" (primary)" if i == 0 else "") for i, e in enumerate(contact.emails)]
    lines.append("  addresses: " + (", ".join(addresses) if addresses else "none"))
    if contact.phones:
        lines.append("  phones: " + ", ".join(p.e164 or p.raw for p in contact.phones))
    roles = session.execute(
        select(Opportunity.id, Opportunity.title, Opportunity.status, OpportunityParticipant.role)
        .join(OpportunityParticipant, OpportunityParticipant.opportunity_id == Opportunity.id)
        .where(OpportunityParticipant.contact_id == contact.id)
        .order_by(Opportunity.id)
    ).all()
    opportunities = [f"{title} [{oid}] ({status}{', ' + role if role else ''})" for oid, title, status, role in roles]
    lines.append("  opportunities: " + (", ".join(opportunities) if opportunities else "none"))
    links = session.execute(
        select(ActivityContact.manual, func.count()).where(ActivityContact.contact_id == contact.id).group_by(
            ActivityContact.manual
        )
    ).all()
    by_kind = {bool(manual): n for manual, n in links}
    removed = session.scalar(
        select(func.count()).where(
            ActivityLinkExclusion.kind == EXCLUDE_CONTACT, ActivityLinkExclusion.target_id == contact.id
        )
    )
    activities = f"  activities: {sum(by_kind.values())} linked ({by_kind.get(True, 0)} by a person)"
    if removed:
        activities += f"; removed by a person from {removed}"
    lines.append(activities)
    return lines
