"""Apply a ``MatchDecision`` to an activity: create what the policy allows, set links, review queue.

Links a person made (``manual``) are never removed or overridden here (SPEC §3.7).
"""

from __future__ import annotations

from sqlalchemy import select

from crm_store.models import (
    Activity,
    ActivityAccount,
    ActivityContact,
    Contact,
    ContactEmail,
    Lead,
    LeadEmail,
    ReviewItem,
)
from sync_service.matching.model import MatchDecision, NewContact, NewLead
from sync_service.pipeline.context import ProcessContext

REVIEW_REASON = "several open opportunities match; choose one"


def _create_contact(ctx: ProcessContext, new: NewContact) -> int:
    existing = ctx.session.scalar(select(ContactEmail.contact_id).where(ContactEmail.email == new.email))
    if existing is not None:
        return existing
    name = new.name or new.email.partition("@")[0]
    contact = Contact(name=name, account_id=new.account_id, source="sync")
    contact.emails.append(ContactEmail(email=new.email, position=0))
    ctx.session.add(contact)
    ctx.session.flush()
    ctx.index.contacts_by_email[new.email] = (contact.id,)
    ctx.index.contact_account[contact.id] = new.account_id
    ctx.stats.contacts_created += 1
    return contact.id


def _create_lead(ctx: ProcessContext, new: NewLead) -> int:
    existing = ctx.session.scalar(select(LeadEmail.lead_id).where(LeadEmail.email == new.email))
    if existing is not None:
        return existing
    lead = Lead(name=new.name or new.email, company=new.company, origin="sync", owner_id=ctx.owner_id)
    lead.emails.append(LeadEmail(email=new.email, position=0))
    ctx.session.add(lead)
    ctx.session.flush()
    ctx.index.leads_by_email[new.email] = (lead.id,)
    ctx.stats.leads_created += 1
    return lead.id


def _set_links(activity: Activity, account_ids: list[int], contact_ids: list[int]) -> None:
    """Make the automatic links equal to the decision's; manual links stay. Existing rows are kept (not
    deleted and re-inserted), so the unique constraints never see a transient duplicate."""
    wanted_accounts = list(dict.fromkeys(account_ids))
    activity.account_links[:] = [
        link for link in activity.account_links if link.manual or link.account_id in wanted_accounts
    ]
    have = {link.account_id for link in activity.account_links}
    activity.account_links.extend(ActivityAccount(account_id=a) for a in wanted_accounts if a not in have)
    wanted_contacts = list(dict.fromkeys(contact_ids))
    activity.contact_links[:] = [
        link for link in activity.contact_links if link.manual or link.contact_id in wanted_contacts
    ]
    have = {link.contact_id for link in activity.contact_links}
    activity.contact_links.extend(ActivityContact(contact_id=c) for c in wanted_contacts if c not in have)


def _set_review(ctx: ProcessContext, activity: Activity, candidates: tuple[int, ...]) -> None:
    review = ctx.session.scalar(select(ReviewItem).where(ReviewItem.activity_id == activity.id))
    if candidates and activity.opportunity_id is None:
        if review is None:
            ctx.session.add(ReviewItem(activity_id=activity.id, reason=REVIEW_REASON, candidates=list(candidates)))
        elif review.resolved_at is None:
            review.candidates = list(candidates)
    elif review is not None and review.resolved_at is None:
        ctx.session.delete(review)


def apply_decision(ctx: ProcessContext, activity: Activity, decision: MatchDecision) -> None:
    contact_ids = list(decision.contact_ids)
    account_ids = list(decision.account_ids)
    for new in decision.new_contacts:
        contact_ids.append(_create_contact(ctx, new))
        account_ids.append(new.account_id)
    lead_id = decision.lead_id
    for new_lead in decision.new_leads:
        created = _create_lead(ctx, new_lead)
        lead_id = lead_id or created
    _set_links(activity, account_ids, contact_ids)
    activity.account_id = decision.primary_account_id or (account_ids[0] if account_ids else None)
    activity.lead_id = lead_id
    if not activity.opportunity_manual:
        activity.opportunity_id = decision.opportunity_id
    ctx.session.flush()
    _set_review(ctx, activity, decision.review_candidates)
