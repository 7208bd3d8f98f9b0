"""Address-book items (vCard files, Outlook contact folders) → CRM contacts and leads, per ``CRM_AUTO_CREATE``.

A card whose email already belongs to a contact fills that contact's empty fields and adds its missing
addresses and numbers (never overwrites what the CRM has), whatever the policy: the rep's address book knows
more of a person the CRM has. A card whose email belongs to a lead (and to no contact) changes nothing, and
makes no second record. Any other card is a new person, and ``matching.cards.plan_new_card`` decides — by the
rules mail follows (SPEC §3.6) — whether it becomes a contact of an account, a lead (policy ``all``, name and
company from the card) or nothing: never from public mail providers only, never an internal, never-log or
no-reply / system address.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from crm_store.db import lock_name
from crm_store.models import Contact, ContactEmail, ContactPhone, Lead, LeadEmail, LeadPhone
from sync_service.matching.cards import CardPlan, plan_new_card
from sync_service.matching.domains import company_from_domain, email_domain, normalize_email
from sync_service.matching.phones import to_e164
from sync_service.pipeline.context import ProcessContext
from sync_service.pipeline.new_contacts import lead_lock_name, lock_name_of
from sync_service.values import ContactCard

log = logging.getLogger(__name__)
_FIELDS = ("first_name", "middle_name", "last_name", "company", "job_title")


def _fill(contact: Contact, card: ContactCard, emails: tuple[str, ...], region: str) -> bool:
    changed = False
    for name in _FIELDS:
        if not getattr(contact, name) and getattr(card, name):
            setattr(contact, name, getattr(card, name))
            changed = True
    known = {e.email for e in contact.emails}
    for email in emails:
        if email not in known:
            contact.emails.append(ContactEmail(email=email, position=len(contact.emails)))
            changed = True
    numbers = {p.raw for p in contact.phones}
    for kind, number in card.phones:
        if number not in numbers:
            contact.phones.append(ContactPhone(kind=kind, raw=number, e164=to_e164(number, region)))
            changed = True
    return changed


def apply_card(ctx: ProcessContext, card: ContactCard) -> str:
    """Returns what happened: ``updated``, ``unchanged``, ``created`` or ``skipped``."""
    emails = tuple(dict.fromkeys(e for e in map(normalize_email, card.emails) if e))
    # Another worker importing the same card (or mail making the same person) waits (sorted: no deadlock).
    for email in sorted(emails):
        lock_name(ctx.session, lock_name_of(email))
    if ctx.batch is not None:
        ctx.batch.contacts.write(ctx.session)  # the batch's new contacts not written yet (PostgreSQL) are seen
    contact_id = (
        ctx.session.scalar(select(ContactEmail.contact_id).where(ContactEmail.email.in_(emails)).limit(1))
        if emails
        else None
    )
    region = ctx.settings.phone_region
    if contact_id is not None:
        contact = ctx.session.get_one(Contact, contact_id)
        return "updated" if _fill(contact, card, emails, region) else "unchanged"
    plan = plan_new_card(emails, ctx.index, ctx.settings.auto_create)
    if plan.action == "nothing":
        log.debug("card %r: nothing created: %s", card.full_name, plan.reason)
        return "skipped"
    for email in sorted(plan.emails):
        lock_name(ctx.session, lead_lock_name(email))
    if ctx.session.scalar(select(LeadEmail.lead_id).where(LeadEmail.email.in_(emails)).limit(1)) is not None:
        return "unchanged"  # a lead's card: the lead stays as the CRM has it, and no second record is made
    if plan.action == "contact":
        _create_contact(ctx, card, plan, region)
    else:
        _create_lead(ctx, card, plan, region)
    return "created"


def _create_contact(ctx: ProcessContext, card: ContactCard, plan: CardPlan, region: str) -> None:
    contact = Contact(name=card.full_name or plan.emails[0], account_id=plan.account_id, source="sync")
    _fill(contact, card, plan.emails, region)
    ctx.session.add(contact)
    ctx.session.flush()
    for email in plan.emails:
        ctx.index.contacts_by_email.setdefault(email, (contact.id,))
    ctx.index.contact_account[contact.id] = plan.account_id
    ctx.stats.contacts_created += 1


def _create_lead(ctx: ProcessContext, card: ContactCard, plan: CardPlan, region: str) -> None:
    assert plan.deciding is not None  # a lead's plan names its address
    company = card.company or company_from_domain(email_domain(plan.deciding))
    lead = Lead(name=card.full_name or plan.deciding, company=company, origin="sync", owner_id=ctx.owner_id or None)
    lead.emails.extend(LeadEmail(email=email, position=i) for i, email in enumerate(plan.emails))
    lead.phones.extend(LeadPhone(raw=number, e164=to_e164(number, region)) for _kind, number in card.phones)
    ctx.session.add(lead)
    ctx.session.flush()
    for email in plan.emails:
        ctx.index.leads_by_email.setdefault(email, (lead.id,))
    for phone in lead.phones:
        if phone.e164:
            ctx.index.leads_by_phone.setdefault(phone.e164, (lead.id,))
    ctx.stats.leads_created += 1
