"""Build the ``CandidateIndex`` from the database — the only SQLAlchemy code in ``matching``.

One pass per table with plain column selects (no ORM objects), so 100,000 contacts load in about a second.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import (
    AccountDomain,
    Activity,
    Contact,
    ContactEmail,
    ContactPhone,
    LeadEmail,
    LeadPhone,
    NeverLog,
    Opportunity,
    OpportunityParticipant,
    SyncedItem,
    User,
)
from crm_store.models.sales import OPEN
from sync_service.matching.domains import is_public_mail_domain, normalize_domain, normalize_email
from sync_service.matching.model import CandidateIndex


def _never_log_key(value: str) -> str:
    return normalize_email(value) if "@" in value else normalize_domain(value)


K = TypeVar("K")


def _group(pairs: Iterable[tuple[K | None, int]]) -> dict[K, tuple[int, ...]]:
    grouped: dict[K, list[int]] = defaultdict(list)
    for key, value in pairs:
        if key is not None and value not in grouped[key]:
            grouped[key].append(value)
    return {k: tuple(v) for k, v in grouped.items()}


def _emails(rows: Iterable[tuple[str | None, int]]) -> dict[str, tuple[int, ...]]:
    return _group((normalize_email(e) if e else None, i) for e, i in rows)


def build_index(session: Session, internal_domains: frozenset[str], region: str = "US") -> CandidateIndex:
    users = {normalize_email(email): uid for uid, email in session.execute(select(User.id, User.email))}
    # A rep registered with a public address makes that address internal, never the whole provider.
    user_domains = {d for d in (e.rpartition("@")[2] for e in users) if not is_public_mail_domain(d)}
    opps = session.execute(select(Opportunity.id, Opportunity.account_id, Opportunity.status)).all()
    open_ids = frozenset(oid for oid, _aid, status in opps if status == OPEN)
    participants = session.execute(
        select(OpportunityParticipant.contact_id, OpportunityParticipant.opportunity_id)
    ).all()
    threads: dict[str, int] = {}
    rows = session.execute(
        select(SyncedItem.message_id, SyncedItem.facts, Activity.opportunity_id)
        .join(Activity, Activity.item_id == SyncedItem.id)
        .where(Activity.opportunity_id.is_not(None))
    )
    for message_id, facts, opp_id in rows:
        if message_id:
            threads[message_id] = opp_id
        conversation = (facts or {}).get("conversation_id")
        if conversation:
            threads[conversation] = opp_id
    return CandidateIndex(
        internal_domains=frozenset(internal_domains | user_domains),
        user_emails=users,
        never_log=frozenset(_never_log_key(v) for v in session.scalars(select(NeverLog.value))),
        contacts_by_email=_emails(session.execute(select(ContactEmail.email, ContactEmail.contact_id)).all()),
        contacts_by_phone=_group(session.execute(select(ContactPhone.e164, ContactPhone.contact_id)).all()),
        contact_account=dict(session.execute(select(Contact.id, Contact.account_id)).all()),
        leads_by_email=_emails(session.execute(select(LeadEmail.email, LeadEmail.lead_id)).all()),
        leads_by_phone=_group(session.execute(select(LeadPhone.e164, LeadPhone.lead_id)).all()),
        account_by_domain={
            normalize_domain(d): a
            for d, a in session.execute(select(AccountDomain.domain, AccountDomain.account_id)).all()
        },
        open_opps_by_contact=_group((c, o) for c, o in participants if o in open_ids),
        open_opps_by_account=_group((a, o) for o, a, _s in opps if o in open_ids),
        open_opportunities=open_ids,
        opportunity_account={oid: aid for oid, aid, _s in opps},
        thread_opportunity=threads,
        default_region=region,
    )
