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
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import select

from crm_store.columns import limit
from crm_store.db import lock_names
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


def _emails(card: ContactCard) -> tuple[str, ...]:
    return tuple(dict.fromkeys(e for e in map(normalize_email, card.emails) if e))


def card_lock_names(ctx: ProcessContext, cards: Iterable[ContactCard]) -> list[str]:
    """The locks applying ``cards`` takes: each address's contact lock, and the lead lock of each address a card
    may create a contact or lead under (its ``plan_new_card``, pure over the index: the same before and after
    the cards are applied) — the names a batch's new contacts and leads are locked under (``new_contacts``).
    Taken all at once, in one ``lock_names`` statement (key order) before the first card is applied, two runs
    over address books sharing people in any order, or a card and a batch's new-contact check, wait for each
    other instead of deadlocking. Only the cards that may create take lead locks: an address book of thousands
    of colleagues' and private cards must not fill PostgreSQL's lock table (``max_locks_per_transaction``)."""
    contact_locks: dict[str, None] = {}
    lead_locks: dict[str, None] = {}
    for card in cards:
        emails = _emails(card)
        contact_locks.update(dict.fromkeys(emails))
        plan = plan_new_card(emails, ctx.index, ctx.settings.auto_create)
        if plan.action != "nothing":
            lead_locks.update(dict.fromkeys(plan.emails))
    return [*map(lock_name_of, contact_locks), *map(lead_lock_name, lead_locks)]


def fitted(card: ContactCard) -> ContactCard:
    """The card with each text cut to its column (a phone number too long for one dropped). A synced address
    book is not a file an admin can fix and import again: an over-long name is shortened, as a name taken from
    mail is (``new_contacts``), instead of failing the whole book on PostgreSQL (audit 17a)."""
    texts = {
        name: getattr(card, name)[:length]
        for name, column in (("full_name", Contact.name), *((f, getattr(Contact, f)) for f in _FIELDS))
        if (length := limit(column)) is not None and len(getattr(card, name)) > length
    }
    longest_phone = limit(ContactPhone.raw) or 0
    phones = tuple(phone for phone in card.phones if not longest_phone or len(phone[1]) <= longest_phone)
    if not texts and phones == card.phones:
        return card
    return replace(card, **texts, phones=phones)


def apply_card(ctx: ProcessContext, card: ContactCard, *, locked: bool = False) -> str:
    """Returns what happened: ``updated``, ``unchanged``, ``created`` or ``skipped``. ``locked``: the caller holds
    the card's locks already (``card_lock_names``, taken for all the cards of an address book at once)."""
    card = fitted(card)
    emails = _emails(card)
    # Another worker importing the same card (or mail making the same person) waits (one statement, key order).
    if not locked:
        lock_names(ctx.session, card_lock_names(ctx, [card]))
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
