"""An activity's links as plain data, and the links a decision wants — without touching the database.

Both the writer (``links.apply_decision``) and re-matching (which must tell cheaply whether an activity's
links would change, without loading it) derive the wanted links from here, so they cannot disagree.

Rules (SPEC §3.7): links a person made (``manual`` rows, ``opportunity_manual``, ``lead_manual``) are kept;
the automatic links become exactly the decision's; the primary account falls back to a manual account
link when the decision reaches none; the review queue holds the candidates while no opportunity is linked
and no person chose one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sync_service.matching.model import MatchDecision


@dataclass(frozen=True, slots=True)
class LinkState:
    auto_accounts: frozenset[int] = frozenset()
    auto_contacts: frozenset[int] = frozenset()
    manual_accounts: tuple[int, ...] = ()  # in the order a person added them
    manual_contacts: frozenset[int] = frozenset()
    primary_account: int | None = None
    lead: int | None = None
    opportunity: int | None = None
    opportunity_manual: bool = False
    lead_manual: bool = False
    review: tuple[int, ...] | None = None  # candidates of the open review item, None when there is none


def wanted_state(current: LinkState, decision: MatchDecision) -> LinkState:
    """What ``current`` becomes once ``decision`` (exclusions applied, new records created) is written."""
    manual = set(current.manual_accounts)
    accounts = [a for a in dict.fromkeys(decision.account_ids) if a not in manual]
    contacts = frozenset(decision.contact_ids) - current.manual_contacts
    primary = decision.primary_account_id
    if primary is None:
        primary = next(iter([*accounts, *current.manual_accounts]), None)
    opportunity = current.opportunity if current.opportunity_manual else decision.opportunity_id
    needs_review = bool(decision.review_candidates) and opportunity is None and not current.opportunity_manual
    return replace(
        current,
        auto_accounts=frozenset(accounts),
        auto_contacts=contacts,
        primary_account=primary,
        lead=current.lead if current.lead_manual else decision.lead_id,
        opportunity=opportunity,
        review=tuple(decision.review_candidates) if needs_review else None,
    )
