"""Apply a ``MatchDecision`` to an activity: create what the policy allows, set links, review queue.

Links a person made (``manual``) are never removed or overridden here, and links a person removed
(``ActivityLinkExclusion``) are never added back (SPEC §3.7). The wanted links come from
``link_state.wanted_state``, the same function re-matching uses to tell whether anything would change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from crm_store.db import lock_name
from crm_store.models import (
    Activity,
    ActivityAccount,
    ActivityContact,
    ActivityLinkExclusion,
    Contact,
    ContactEmail,
    Lead,
    LeadEmail,
    ReviewItem,
)
from crm_store.models.activities import EXCLUDE_ACCOUNT, EXCLUDE_CONTACT, EXCLUDE_LEAD, EXCLUDE_OPPORTUNITY
from sync_service.matching.model import LinkExclusions, MatchDecision, NewContact, NewLead
from sync_service.matching.overrides import with_overrides
from sync_service.pipeline.context import ProcessContext
from sync_service.pipeline.link_state import LinkState, wanted_state
from sync_service.pipeline.new_contacts import insert_contact, lead_lock_name, lock_name_of

REVIEW_REASON = "several open opportunities match; choose one"


def _create_contact(ctx: ProcessContext, new: NewContact) -> int:
    """The contact of a new person. In a batch it is made without a lookup (``new_contacts``); alone (item by
    item, re-matching) the lookup comes first, under a lock on the address."""
    # No autoflush: what this run creates is flushed and indexed at once, and flushing the batch's pending
    # changes before each statement here would cost more than the contact.
    with ctx.session.no_autoflush:
        if ctx.batch is not None:
            contact_id = ctx.batch.contacts.make(ctx.session, new)
        elif (found := _made_meanwhile(ctx, new.email)) is not None:
            return found
        else:
            contact_id = insert_contact(ctx.session, new)
    ctx.index.contacts_by_email[new.email] = (contact_id,)
    ctx.index.contact_account[contact_id] = new.account_id
    ctx.stats.contacts_created += 1
    return contact_id


def _made_meanwhile(ctx: ProcessContext, email: str) -> int | None:
    """The contact another run (or an import) made for ``email`` since the index was built, now indexed too.
    The lock makes another run creating the same contact wait until this one commits."""
    lock_name(ctx.session, lock_name_of(email))
    existing = ctx.session.execute(
        select(ContactEmail.contact_id, Contact.account_id)
        .join(Contact, Contact.id == ContactEmail.contact_id)
        .where(ContactEmail.email == email)
        .limit(1)
    ).first()
    if existing is None:
        return None
    ctx.index.contacts_by_email[email] = (existing.contact_id,)
    ctx.index.contact_account[existing.contact_id] = existing.account_id
    return int(existing.contact_id)


def _create_lead(ctx: ProcessContext, new: NewLead) -> int:
    """The lead of a new person (policy ``all``). In a batch it is inserted without a lookup and checked at
    the batch's end with its new contacts (``new_contacts``); alone, the lookup comes first, under a lock."""
    session = ctx.session
    with session.no_autoflush:  # as for contacts
        if ctx.batch is None:
            lock_name(session, lead_lock_name(new.email))
            existing = session.scalar(select(LeadEmail.lead_id).where(LeadEmail.email == new.email))
            if existing is not None:
                return int(existing)
        lead_id = _insert_id(
            session, Lead, name=new.name or new.email, company=new.company, origin="sync", owner_id=ctx.owner_id or None
        )
        session.execute(insert(LeadEmail), [{"lead_id": lead_id, "email": new.email, "position": 0}])
        if ctx.batch is not None:
            ctx.batch.contacts.made_lead(new.email, lead_id)
    ctx.index.leads_by_email[new.email] = (lead_id,)
    ctx.stats.leads_created += 1
    return lead_id


def _insert_id(session: Session, model: type[Contact | Lead], **values: object) -> int:
    return int(session.scalars(insert(model).returning(model.id), [values]).one())


def load_exclusions(session: Session, activity_ids: Iterable[int]) -> dict[int, LinkExclusions]:
    """The exclusions of many activities in one query (activities without any are left out)."""
    ids = list(activity_ids)
    found: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    if ids:
        rows = session.execute(
            select(
                ActivityLinkExclusion.activity_id, ActivityLinkExclusion.kind, ActivityLinkExclusion.target_id
            ).where(ActivityLinkExclusion.activity_id.in_(ids))
        )
        for activity_id, kind, target in rows:
            found[activity_id][kind].add(target)
    return {
        activity_id: LinkExclusions(
            contacts=frozenset(kinds[EXCLUDE_CONTACT]),
            accounts=frozenset(kinds[EXCLUDE_ACCOUNT]),
            opportunities=frozenset(kinds[EXCLUDE_OPPORTUNITY]),
            leads=frozenset(kinds[EXCLUDE_LEAD]),
        )
        for activity_id, kinds in found.items()
    }


def state_of(activity: Activity, review: ReviewItem | None) -> LinkState:
    """The stored links of a loaded activity as plain data."""
    return LinkState(
        auto_accounts=frozenset(link.account_id for link in activity.account_links if not link.manual),
        auto_contacts=frozenset(link.contact_id for link in activity.contact_links if not link.manual),
        manual_accounts=tuple(link.account_id for link in activity.account_links if link.manual),
        manual_contacts=frozenset(link.contact_id for link in activity.contact_links if link.manual),
        primary_account=activity.account_id,
        lead=activity.lead_id,
        opportunity=activity.opportunity_id,
        opportunity_manual=activity.opportunity_manual,
        lead_manual=activity.lead_manual,
        review=_open_candidates(review),
    )


def _open_candidates(review: ReviewItem | None) -> tuple[int, ...] | None:
    if review is None or review.resolved_at is not None:
        return None
    return tuple(review.candidates)


def apply_decision(
    ctx: ProcessContext,
    activity: Activity,
    decision: MatchDecision,
    exclusions: LinkExclusions | None = None,
    *,
    new: bool = False,
) -> MatchDecision:
    """Write the decision's links (creating the records the policy allows); returns the decision as written:
    without the links a person removed, with an earlier opportunity kept where history should stand (and that
    opportunity's account as the primary account: ``keep_opportunity_account``), with the records it created.
    ``exclusions``: pass them when already loaded. ``new``: the activity was just made (not flushed, no review
    item yet): its links are saved with it at the next flush. In a batch, what the batch knows of the activity
    (``BatchCache.known``) is used instead of queries and kept up to date."""
    known = ctx.batch.known.get(activity) if ctx.batch is not None and not new else None
    if exclusions is None:
        if known is not None:
            exclusions = known.exclusions
        else:
            exclusions = load_exclusions(ctx.session, [activity.id]).get(activity.id, LinkExclusions())
    decision = with_overrides(
        decision,
        exclusions,
        ctx.index,
        earlier_opportunity=None if activity.opportunity_manual else activity.opportunity_id,
        earlier_lead=None if activity.lead_manual else activity.lead_id,
    )
    written = create_records(ctx, decision, exclusions)
    account_ids, contact_ids = list(written.account_ids), list(written.contact_ids)
    if new or known is not None:
        review = known.review if known is not None else None
    else:
        review = ctx.session.scalar(select(ReviewItem).where(ReviewItem.activity_id == activity.id))
    wanted = wanted_state(state_of(activity, review), written)
    removed = _set_links(activity, account_ids, wanted.auto_accounts, contact_ids, wanted.auto_contacts)
    activity.account_id = wanted.primary_account
    activity.lead_id = wanted.lead
    activity.opportunity_id = wanted.opportunity
    if (not new and known is None) or removed:
        # Removed links are deleted before anything else is flushed: a flush inserts before it deletes, and
        # a later update of the activity could add the same link back.
        ctx.session.flush()
    review = _set_review(ctx, activity, review, wanted.review)
    if ctx.batch is not None:
        ctx.batch.remember(activity, exclusions, review)
    return written


def create_records(ctx: ProcessContext, decision: MatchDecision, exclusions: LinkExclusions) -> MatchDecision:
    """Create the contacts and leads the decision proposes (as the policy allowed); the decision with them."""
    contact_ids = list(decision.contact_ids)
    account_ids = list(decision.account_ids)
    for new_contact in decision.new_contacts:
        contact_ids.append(_create_contact(ctx, new_contact))
        if new_contact.account_id not in exclusions.accounts:
            account_ids.append(new_contact.account_id)
    lead_id = decision.lead_id
    for new_lead in decision.new_leads:
        created = _create_lead(ctx, new_lead)
        lead_id = lead_id or created
    contact_ids, account_ids = list(dict.fromkeys(contact_ids)), list(dict.fromkeys(account_ids))
    return replace(decision, contact_ids=tuple(contact_ids), account_ids=tuple(account_ids), lead_id=lead_id)


def _set_links(
    activity: Activity,
    account_order: list[int],
    accounts: frozenset[int],
    contact_order: list[int],
    contacts: frozenset[int],
) -> bool:
    """Make the automatic links equal to the wanted ones; manual links stay. Existing rows are kept (not
    deleted and re-inserted), so the unique constraints never see a transient duplicate. True when a link
    was removed."""
    before = len(activity.account_links) + len(activity.contact_links)
    activity.account_links[:] = [link for link in activity.account_links if link.manual or link.account_id in accounts]
    activity.contact_links[:] = [link for link in activity.contact_links if link.manual or link.contact_id in contacts]
    removed = len(activity.account_links) + len(activity.contact_links) < before
    have = {link.account_id for link in activity.account_links}
    for account_id in dict.fromkeys(account_order):
        if account_id in accounts and account_id not in have:
            activity.account_links.append(ActivityAccount(account_id=account_id))
    have = {link.contact_id for link in activity.contact_links}
    for contact_id in dict.fromkeys(contact_order):
        if contact_id in contacts and contact_id not in have:
            activity.contact_links.append(ActivityContact(contact_id=contact_id))
    return removed


def _set_review(
    ctx: ProcessContext, activity: Activity, review: ReviewItem | None, candidates: tuple[int, ...] | None
) -> ReviewItem | None:
    """Open (or reopen, after a person undid their choice) the review item, update it, or drop it; returns
    the activity's review item after."""
    if candidates:
        if review is None:
            review = ReviewItem(activity=activity, reason=REVIEW_REASON, candidates=list(candidates))
            ctx.session.add(review)
        elif review.resolved_at is not None or list(review.candidates) != list(candidates):
            review.candidates, review.resolved_at = list(candidates), None
    elif review is not None and review.resolved_at is None:
        ctx.session.delete(review)
        if ctx.batch is not None:
            ctx.session.flush()  # deleted before the batch could open a new one (one per activity)
        review = None
    return review
