"""`crm-sync match explain`: which rule linked an item and why, what a person changed, what matching says now.

The explanation stored with the item (``SyncedItem.facts["decision"]``) is the one the links were written
from. A fresh decision is taken over the current CRM data, with rule a seeing the thread as it stood before
the item (as re-matching does); when it says something else, both are shown — the next re-match applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.models import Account, Activity, Contact, Lead, Opportunity, ReviewItem, SyncedItem
from sync_service.bootstrap import App
from sync_service.errors import ConfigError
from sync_service.matching.decide import decide
from sync_service.matching.load import build_index, thread_keys
from sync_service.matching.model import CandidateIndex, LinkExclusions, MatchDecision
from sync_service.matching.overrides import with_overrides
from sync_service.pipeline.items import decision_outcome, decision_to_json, facts_from_json, stored_decision
from sync_service.pipeline.links import load_exclusions
from sync_service.retention import PURGED

_RULES = {
    "thread": "a (the thread it belongs to)",
    "token": "b (tracking token in the subject)",
    "participant": "c (the only open opportunity of a participant)",
    "account": "d (the only open opportunity of the primary account)",
    "kept": "of an earlier match, kept (closed since, or still a candidate)",
}


def explain_activity(app: App, session: Session, activity_id: int) -> list[str]:
    activity = session.get(Activity, activity_id)
    if activity is None:
        raise ConfigError(f"no activity {activity_id}")
    item = session.get(SyncedItem, activity.item_id) if activity.item_id else None
    lines = [_headline(activity, item), *_links(session, activity)]
    if item is None:
        return [*lines, "not a synced item (created by a person or the process): no matching decision"]
    exclusions = load_exclusions(session, [activity.id]).get(activity.id, LinkExclusions())
    lines += _exclusions(session, exclusions)
    earlier = _Earlier(
        None if activity.opportunity_manual else activity.opportunity_id,
        None if activity.lead_manual else activity.lead_id,
        logged=True,
    )
    return lines + _decisions(app, session, item, exclusions, earlier)


def explain_message(app: App, session: Session, message_id: str) -> list[str]:
    """The same for an email found by its Message-ID: also says why an email was *not* logged."""
    key = message_id.strip().strip("<>")
    item = session.scalar(select(SyncedItem).where(SyncedItem.message_id == key).limit(1))
    if item is None:
        raise ConfigError(f"no synced email with Message-ID <{key}>")
    activity_id = session.scalar(select(Activity.id).where(Activity.item_id == item.id))
    if activity_id is not None:
        return explain_activity(app, session, activity_id)
    head = f"email <{key}> {item.subject!r}: not logged ({item.skip_reason or 'not matched yet'})"
    if item.skip_reason == PURGED:  # its facts are gone: nothing to decide over
        return [head, "its bytes and facts were purged after the retention (crm-sync purge skipped): not matched again"]
    return [head, *_decisions(app, session, item, LinkExclusions())]


def _headline(activity: Activity, item: SyncedItem | None) -> str:
    when = activity.start_at.strftime("%Y-%m-%d %H:%M UTC") if activity.start_at else "no date"
    ident = f", Message-ID <{item.message_id}>" if item is not None and item.message_id else ""
    direction = f" {activity.direction}" if activity.direction else ""
    return f"activity {activity.id}: {activity.type}{direction} {activity.subject!r}, {when}{ident}"


def _links(session: Session, activity: Activity) -> list[str]:
    def mark(manual: bool) -> str:
        return " (linked by a person)" if manual else ""

    lines = ["links now:"]
    lines.append(f"  primary account: {_account(session, activity.account_id)}")
    lines += [f"  account: {_account(session, a.account_id)}{mark(a.manual)}" for a in activity.account_links]
    lines += [f"  contact: {_contact(session, c.contact_id)}{mark(c.manual)}" for c in activity.contact_links]
    if activity.lead_id is not None:
        lead = session.get(Lead, activity.lead_id)
        chosen_lead = " (linked by a person)" if activity.lead_manual else ""
        lines.append(f"  lead: {lead.name if lead else '?'} [{activity.lead_id}]{chosen_lead}")
    opportunity = _opportunity(session, activity.opportunity_id)
    chosen = " (chosen by a person: matching keeps it)" if activity.opportunity_manual else ""
    lines.append(f"  opportunity: {opportunity}{chosen}")
    review = session.scalar(select(ReviewItem).where(ReviewItem.activity_id == activity.id))
    if review is not None:
        state = "resolved" if review.resolved_at is not None else "open"
        candidates = ", ".join(_opportunity(session, c) for c in review.candidates)
        lines.append(f"  review: {state} — candidates {candidates}")
    return lines


def _exclusions(session: Session, exclusions: LinkExclusions) -> list[str]:
    if not exclusions:
        return []
    lines = ["links removed by a person (matching never adds them back):"]
    lines += [f"  contact: {_contact(session, c)}" for c in sorted(exclusions.contacts)]
    lines += [f"  account: {_account(session, a)}" for a in sorted(exclusions.accounts)]
    lines += [f"  opportunity: {_opportunity(session, o)}" for o in sorted(exclusions.opportunities)]
    lines += [f"  lead: {_lead(session, lead)}" for lead in sorted(exclusions.leads)]
    return lines


@dataclass(frozen=True, slots=True)
class _Earlier:
    """The links re-matching keeps where a fresh decision names none (``apply_decision``): not a person's."""

    opportunity: int | None = None
    lead: int | None = None
    logged: bool = False  # the item has an activity: re-matching never takes it away


def _decisions(
    app: App, session: Session, item: SyncedItem, exclusions: LinkExclusions, earlier: _Earlier = _Earlier()
) -> list[str]:
    stored = stored_decision(item)
    fresh, index = _fresh_decision(app, session, item)
    # The overrides re-matching applies (``links.apply_decision``): else a kept link would always read as a
    # difference the next re-match applies, and it never does.
    fresh = with_overrides(fresh, exclusions, index, earlier_opportunity=earlier.opportunity, earlier_lead=earlier.lead)
    if stored is None:
        return ["no stored decision (synced before decisions were kept)", *_decision_lines("decision now", fresh)]
    at = str(stored.get("at", "?"))[:19].replace("T", " ")
    lines = [f"decision stored {at} UTC — {_summary(stored.get('skip_reason'), stored.get('rule'))}:"]
    lines += [f"  {line}" for line in stored.get("explanation", [])]
    if decision_outcome(decision_to_json(fresh, datetime.now(UTC))) == decision_outcome(stored):
        return [*lines, "a fresh decision now concludes the same"]
    if fresh.skipped and earlier.logged:  # e.g. its domain was removed from the account since
        title = "a fresh decision now would not log it; it stays logged with its links (re-matching never un-logs)"
        return lines + _decision_lines(title, fresh)
    return lines + _decision_lines("a fresh decision now differs (the next re-match applies it)", fresh)


def _decision_lines(title: str, decision: MatchDecision) -> list[str]:
    return [
        f"{title} — {_summary(decision.skip_reason, decision.opportunity_rule)}:",
        *(f"  {line}" for line in decision.explanation),
    ]


def _summary(skip_reason: object, rule: object) -> str:
    if skip_reason:
        return f"not logged: {skip_reason}"
    if rule:
        return f"opportunity by rule {_RULES.get(str(rule), str(rule))}"
    return "logged without an opportunity"


def _fresh_decision(app: App, session: Session, item: SyncedItem) -> tuple[MatchDecision, CandidateIndex]:
    settings = app.settings
    index = build_index(session, settings.internal_domains, settings.phone_region, threads=False)
    if item.sent_at is not None:
        index.thread_opportunity.update(thread_keys(session, sent_before=item.sent_at, exclude_items=[item.id]))
    index.thread_opportunity.update(thread_keys(session, manual_only=True, exclude_items=[item.id]))
    return decide(facts_from_json(item.facts), index, policy=settings.auto_create), index


def _account(session: Session, account_id: int | None) -> str:
    if account_id is None:
        return "none"
    account = session.get(Account, account_id)
    return f"{account.name if account else '?'} [{account_id}]"


def _contact(session: Session, contact_id: int) -> str:
    contact = session.get(Contact, contact_id)
    if contact is None:
        return f"? [{contact_id}]"
    email = f" <{contact.primary_email}>" if contact.primary_email else ""
    return f"{contact.name}{email} [{contact_id}]"


def _lead(session: Session, lead_id: int) -> str:
    lead = session.get(Lead, lead_id)
    return f"{lead.name if lead else '?'} [{lead_id}]"


def _opportunity(session: Session, opportunity_id: int | None) -> str:
    if opportunity_id is None:
        return "none"
    opportunity = session.get(Opportunity, opportunity_id)
    return f"{opportunity.title if opportunity else '?'} [{opportunity_id}]"
