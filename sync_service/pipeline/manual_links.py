"""Links a person sets or removes on an activity (SPEC §3.7): `review assign`, `activity link|unlink`.

What a person does wins over matching and is remembered:
- a link a person adds is stored as ``manual`` (for an opportunity: ``Activity.opportunity_manual``), so
  re-matching keeps it; adding a link a person had removed before forgets that removal;
- a link a person removes is stored as an ``ActivityLinkExclusion``, so re-matching never adds it back
  (also when it was never linked: "this mail is not about that opportunity" is worth remembering too);
- the activity's documents follow its account and opportunity.

These functions change one activity inside the caller's transaction; the caller then re-matches the item
(``rematch(app, item_ids=[…])``) so that what no person decided is derived again — e.g. a new primary
account, or the review queue after an opportunity was removed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crm_store.models import (
    Account,
    Activity,
    ActivityAccount,
    ActivityContact,
    ActivityLinkExclusion,
    Contact,
    Lead,
    Opportunity,
    ReviewItem,
)
from crm_store.models.activities import EXCLUDE_ACCOUNT, EXCLUDE_CONTACT, EXCLUDE_LEAD, EXCLUDE_OPPORTUNITY
from sync_service.errors import ConfigError
from sync_service.pipeline.documents import relink_documents

LinkKind = Literal["contact", "account", "opportunity", "lead"]
_MODELS: dict[str, type[Contact] | type[Account] | type[Opportunity] | type[Lead]] = {
    EXCLUDE_CONTACT: Contact,
    EXCLUDE_ACCOUNT: Account,
    EXCLUDE_OPPORTUNITY: Opportunity,
    EXCLUDE_LEAD: Lead,
}


def get_activity(session: Session, activity_id: int) -> Activity:
    activity = session.get(Activity, activity_id)
    if activity is None:
        raise ConfigError(f"no activity {activity_id}")
    return activity


def _require(session: Session, kind: str, target_id: int) -> None:
    if session.get(_MODELS[kind], target_id) is None:
        raise ConfigError(f"no {kind} {target_id}")


def assign_opportunity(session: Session, activity_id: int, opportunity_id: int, now: datetime) -> tuple[Activity, bool]:
    """A person chose the opportunity: it is kept by re-matching, the review item is resolved (True when
    there was an open one), the documents move to the opportunity, and the opportunity's account is linked
    when the activity lacks it."""
    activity = get_activity(session, activity_id)
    opportunity = session.get(Opportunity, opportunity_id)
    if opportunity is None:
        raise ConfigError(f"no opportunity {opportunity_id}")
    activity.opportunity_id, activity.opportunity_manual = opportunity.id, True
    _forget_exclusion(session, activity.id, EXCLUDE_OPPORTUNITY, opportunity.id)
    if opportunity.account_id is not None:
        _link_account(session, activity, opportunity.account_id, confirm=False)
    review = session.scalar(select(ReviewItem).where(ReviewItem.activity_id == activity.id))
    resolved = review is not None and review.resolved_at is None
    if review is not None and resolved:
        review.resolved_at = now
    session.flush()
    relink_documents(activity)
    return activity, resolved


def link(session: Session, activity_id: int, kind: LinkKind, target_id: int, now: datetime) -> Activity:
    """Add a contact, account, opportunity or lead link as a person's (manual) link."""
    if kind == EXCLUDE_OPPORTUNITY:
        return assign_opportunity(session, activity_id, target_id, now)[0]
    activity = get_activity(session, activity_id)
    _require(session, kind, target_id)
    _forget_exclusion(session, activity.id, kind, target_id)
    if kind == EXCLUDE_ACCOUNT:
        _link_account(session, activity, target_id)
    elif kind == EXCLUDE_LEAD:
        activity.lead_id, activity.lead_manual = target_id, True
    else:
        existing = next((c for c in activity.contact_links if c.contact_id == target_id), None)
        if existing is None:
            activity.contact_links.append(ActivityContact(contact_id=target_id, manual=True))
        else:
            existing.manual = True
    session.flush()
    relink_documents(activity)
    return activity


def unlink(session: Session, activity_id: int, kind: LinkKind, target_id: int) -> tuple[Activity, bool]:
    """Remove a link and remember that a person removed it; True when the activity had that link."""
    activity = get_activity(session, activity_id)
    _require(session, kind, target_id)
    had = False
    if kind == EXCLUDE_CONTACT:
        had = any(c.contact_id == target_id for c in activity.contact_links)
        activity.contact_links[:] = [c for c in activity.contact_links if c.contact_id != target_id]
    elif kind == EXCLUDE_ACCOUNT:
        had = activity.account_id == target_id or any(a.account_id == target_id for a in activity.account_links)
        activity.account_links[:] = [a for a in activity.account_links if a.account_id != target_id]
        if activity.account_id == target_id:
            activity.account_id = activity.account_links[0].account_id if activity.account_links else None
    elif kind == EXCLUDE_LEAD:
        had = activity.lead_id == target_id
        if had:
            activity.lead_id, activity.lead_manual = None, False
    elif activity.opportunity_id == target_id:
        had = True
        activity.opportunity_id, activity.opportunity_manual = None, False
    _remember_exclusion(session, activity.id, kind, target_id)
    session.flush()
    relink_documents(activity)
    return activity, had


def _link_account(session: Session, activity: Activity, account_id: int, *, confirm: bool = True) -> None:
    """A manual account link; ``confirm``: an automatic link to it becomes a person's link too."""
    existing = next((a for a in activity.account_links if a.account_id == account_id), None)
    if existing is None:
        activity.account_links.append(ActivityAccount(account_id=account_id, manual=True))
    elif confirm:
        existing.manual = True
    _forget_exclusion(session, activity.id, EXCLUDE_ACCOUNT, account_id)
    if activity.account_id is None:
        activity.account_id = account_id


def _remember_exclusion(session: Session, activity_id: int, kind: str, target_id: int) -> None:
    exists = session.scalar(
        select(ActivityLinkExclusion.id).where(
            ActivityLinkExclusion.activity_id == activity_id,
            ActivityLinkExclusion.kind == kind,
            ActivityLinkExclusion.target_id == target_id,
        )
    )
    if exists is None:
        session.add(ActivityLinkExclusion(activity_id=activity_id, kind=kind, target_id=target_id))


def _forget_exclusion(session: Session, activity_id: int, kind: str, target_id: int) -> None:
    session.execute(
        delete(ActivityLinkExclusion).where(
            ActivityLinkExclusion.activity_id == activity_id,
            ActivityLinkExclusion.kind == kind,
            ActivityLinkExclusion.target_id == target_id,
        )
    )
