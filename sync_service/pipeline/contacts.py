"""Address-book items (vCard files, Outlook contact folders) → CRM contacts, per ``CRM_AUTO_CREATE``.

A card whose email already belongs to a contact fills that contact's empty fields (never overwrites what the
CRM has). A new card becomes a contact when the policy allows: ``account-domains`` only when its email's
domain belongs to an account, ``all`` always, ``none`` never.
"""

from __future__ import annotations

from sqlalchemy import select

from crm_store.db import lock_name
from crm_store.models import Contact, ContactEmail, ContactPhone
from sync_service.matching.domains import domain_candidates, is_public_mail_domain
from sync_service.matching.phones import to_e164
from sync_service.pipeline.context import ProcessContext
from sync_service.values import ContactCard

_FIELDS = ("first_name", "middle_name", "last_name", "company", "job_title")


def _account_for(ctx: ProcessContext, email: str) -> int | None:
    domain = email.rpartition("@")[2]
    if is_public_mail_domain(domain):
        return None
    for candidate in domain_candidates(domain):
        if candidate in ctx.index.account_by_domain:
            return ctx.index.account_by_domain[candidate]
    return None


def _fill(contact: Contact, card: ContactCard, region: str) -> bool:
    changed = False
    for name in _FIELDS:
        if not getattr(contact, name) and getattr(card, name):
            setattr(contact, name, getattr(card, name))
            changed = True
    known = {e.email for e in contact.emails}
    for email in card.emails:
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
    emails = [e.lower() for e in card.emails]
    for email in sorted(set(emails)):  # another worker importing the same card waits (sorted: no deadlock)
        lock_name(ctx.session, f"contact-email:{email}")
    contact_id = (
        ctx.session.scalar(select(ContactEmail.contact_id).where(ContactEmail.email.in_(emails)).limit(1))
        if emails
        else None
    )
    region = ctx.settings.phone_region
    if contact_id is not None:
        contact = ctx.session.get_one(Contact, contact_id)
        return "updated" if _fill(contact, card, region) else "unchanged"
    policy = ctx.settings.auto_create
    account_id = _account_for(ctx, emails[0]) if emails else None
    if not emails or policy == "none" or (policy == "account-domains" and account_id is None):
        return "skipped"
    contact = Contact(name=card.full_name or emails[0], account_id=account_id, source="sync")
    _fill(contact, card, region)
    ctx.session.add(contact)
    ctx.session.flush()
    for email in emails:
        ctx.index.contacts_by_email.setdefault(email, (contact.id,))
    ctx.index.contact_account[contact.id] = account_id
    ctx.stats.contacts_created += 1
    return "created"
