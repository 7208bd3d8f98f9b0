"""What earlier outcomes weigh against a fresh decision when an item is matched again (SPEC §3.7). Pure.

- ``apply_exclusions``: a person's word over the matcher's. ``decide()`` knows nothing of people; the pipeline
  passes its decision through this with the activity's ``LinkExclusions`` before writing links, so
  re-matching never adds back a link a person took away. Links a person *added* are kept by the writer
  (``pipeline.links``), not here.
- ``keep_earlier_opportunity``: history is stable. An item stays with the opportunity it was linked to
  automatically when that opportunity has closed since (a won deal keeps its correspondence), or when the
  fresh decision is merely ambiguous and still names it as a candidate (a second opportunity opened for the
  account does not send its old mail to the review queue). A definite new answer (a participant added to
  another opportunity, a thread assigned by a person) still moves it.
- ``keep_opportunity_account``: an item that stays with the opportunity it was linked to before (kept here,
  or named again by a fresh decision) keeps that opportunity's account, as its primary account. A contact who
  moved to another account then does not take her old mail off the account of the deal it belongs to (nor
  leave an activity whose accounts lack its opportunity's account); the accounts a fresh decision names are
  linked too, so a contact who was filed under the wrong account shows her mail on the right one as well.
- ``keep_earlier_lead``: so is an item's lead. An address resolves to a contact before a lead (SPEC §3.2), so
  once a lead has become a sale (``Awaiting sale`` makes a contact of its person) a fresh decision names the
  contact and no lead; the lead keeps the mail and meetings it was linked to (its history, the lead process's
  steps they served). Only another lead replaces it; a person can take it off (``crm-sync activity unlink``).

``with_overrides`` applies all four in their order: what re-matching writes (``pipeline.links``,
``pipeline.rematch``) and what ``match explain`` compares with the stored decision (``pipeline.explain``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from sync_service.matching.model import OPP_KEPT, RULE_LETTERS, CandidateIndex, LinkExclusions, MatchDecision

_REMOVED = "removed by a person"


def apply_exclusions(decision: MatchDecision, exclusions: LinkExclusions) -> MatchDecision:
    """The decision without the excluded contacts, accounts, opportunity and lead, each removal explained."""
    if decision.skipped or not exclusions:
        return decision
    lines: list[str] = []
    contacts = _keep(decision.contact_ids, exclusions.contacts, "contact", lines)
    accounts = _keep(decision.account_ids, exclusions.accounts, "account", lines)
    primary = decision.primary_account_id
    if primary is not None and primary in exclusions.accounts:
        primary = accounts[0] if accounts else None
        lines.append(f"primary account {_or_none(primary)}: account {decision.primary_account_id} was {_REMOVED}")
    opportunity, rule = decision.opportunity_id, decision.opportunity_rule
    if opportunity is not None and opportunity in exclusions.opportunities:
        letter = RULE_LETTERS.get(rule or "", rule)
        lines.append(f"no opportunity: opportunity {opportunity} (rule {letter}) was {_REMOVED}")
        opportunity, rule = None, None
    lead = decision.lead_id
    if lead is not None and lead in exclusions.leads:
        lines.append(f"no lead: lead {lead} was {_REMOVED}")
        lead = None
    candidates = tuple(c for c in decision.review_candidates if c not in exclusions.opportunities)
    if candidates != decision.review_candidates:
        removed = sorted(set(decision.review_candidates) - set(candidates))
        lines.append(f"review candidates without {', '.join(map(str, removed))} ({_REMOVED})")
    if not lines:
        return decision
    return replace(
        decision,
        contact_ids=contacts,
        account_ids=accounts,
        primary_account_id=primary,
        opportunity_id=opportunity,
        opportunity_rule=rule,
        lead_id=lead,
        review_candidates=candidates,
        explanation=(*decision.explanation, *lines),
    )


def _keep(ids: tuple[int, ...], excluded: frozenset[int], noun: str, lines: list[str]) -> tuple[int, ...]:
    kept = tuple(i for i in ids if i not in excluded)
    lines += [f"{noun} {i} left out: the link was {_REMOVED}" for i in ids if i in excluded]
    return kept


def _or_none(value: int | None) -> str:
    return "none" if value is None else str(value)


def keep_earlier_opportunity(
    decision: MatchDecision, earlier: int | None, open_opportunities: frozenset[int]
) -> MatchDecision:
    """The decision, or — when history should stand (see the module docstring) — the earlier opportunity."""
    if decision.skipped or earlier is None or decision.opportunity_id == earlier:
        return decision
    if earlier not in open_opportunities:
        why = f"opportunity {earlier} kept: it is no longer open, and the item was linked to it before"
    elif decision.opportunity_id is None and earlier in decision.review_candidates:
        why = f"opportunity {earlier} kept: linked before and still one of the candidates"
    else:
        return decision
    return replace(
        decision,
        opportunity_id=earlier,
        opportunity_rule=OPP_KEPT,
        review_candidates=(),
        explanation=(*decision.explanation, why),
    )


def keep_opportunity_account(
    decision: MatchDecision,
    earlier: int | None,
    opportunity_account: Mapping[int, int | None],
    excluded_accounts: frozenset[int] = frozenset(),
) -> MatchDecision:
    """The decision with the account of the opportunity the item stays with as its primary account (and first
    account link), when that opportunity is the one it was linked to before (``earlier``) — after
    ``keep_earlier_opportunity``. A link to that account a person removed (``excluded_accounts``) stays
    removed."""
    if decision.skipped or earlier is None or decision.opportunity_id != earlier:
        return decision
    account = opportunity_account.get(earlier)
    if account is None or account in excluded_accounts:
        return decision
    if decision.primary_account_id == account and account in decision.account_ids:
        return decision
    why = f"primary account {account}: the account of opportunity {earlier}, which the item stays with"
    return replace(
        decision,
        account_ids=(account, *(a for a in decision.account_ids if a != account)),
        primary_account_id=account,
        explanation=(*decision.explanation, why),
    )


def keep_earlier_lead(decision: MatchDecision, earlier: int | None, excluded: frozenset[int]) -> MatchDecision:
    """The decision, or — when it names no lead — the one the item was linked to before (unless a person took
    that link away: ``excluded``)."""
    if decision.skipped or earlier is None or decision.lead_id is not None or earlier in excluded:
        return decision
    why = f"lead {earlier} kept: the item was linked to it before (its person may be a contact now)"
    return replace(decision, lead_id=earlier, explanation=(*decision.explanation, why))


def with_overrides(
    decision: MatchDecision,
    exclusions: LinkExclusions,
    index: CandidateIndex,
    *,
    earlier_opportunity: int | None,
    earlier_lead: int | None,
) -> MatchDecision:
    """A fresh decision with what earlier outcomes weigh against it (the module docstring), in order.
    ``earlier_opportunity`` / ``earlier_lead``: the item's links before, ``None`` where a person set them (the
    writer keeps a person's link as it is)."""
    decision = apply_exclusions(decision, exclusions)
    decision = keep_earlier_opportunity(decision, earlier_opportunity, index.open_opportunities)
    decision = keep_opportunity_account(decision, earlier_opportunity, index.opportunity_account, exclusions.accounts)
    return keep_earlier_lead(decision, earlier_lead, exclusions.leads)
