"""``overrides.keep_opportunity_account`` (audit 17b, F6): an item that stays with the opportunity it was
linked to keeps that opportunity's account as its primary account; otherwise the decision stands. Pure."""

from __future__ import annotations

from sync_service.matching.model import OPP_PARTICIPANT, SKIP_UNMATCHED, MatchDecision
from sync_service.matching.overrides import keep_opportunity_account

ACCOUNTS = {7: 3, 9: 5, 12: None}
# Contact 13 moved from Acme (3) to Globex (5); the fresh decision still names opportunity 7 of Acme.
MOVED = MatchDecision(
    contact_ids=(13,), account_ids=(5,), primary_account_id=5, opportunity_id=7, opportunity_rule=OPP_PARTICIPANT
)


def test_the_opportunity_it_stays_with_gives_the_primary_account() -> None:
    kept = keep_opportunity_account(MOVED, 7, ACCOUNTS)
    assert kept.primary_account_id == 3 and kept.account_ids == (3, 5)
    assert kept.opportunity_id == 7 and kept.contact_ids == (13,)
    assert kept.explanation[-1] == "primary account 3: the account of opportunity 7, which the item stays with"


def test_nothing_changes_when_the_decision_already_agrees() -> None:
    agreeing = MatchDecision(account_ids=(5, 3), primary_account_id=3, opportunity_id=7)
    assert keep_opportunity_account(agreeing, 7, ACCOUNTS) is agreeing


def test_the_decision_stands_when_the_opportunity_changes_or_has_no_account() -> None:
    assert keep_opportunity_account(MOVED, 9, ACCOUNTS) is MOVED  # a new opportunity: links follow the decision
    assert keep_opportunity_account(MOVED, None, ACCOUNTS) is MOVED  # never linked to one
    without = MatchDecision(account_ids=(5,), primary_account_id=5, opportunity_id=12)
    assert keep_opportunity_account(without, 12, ACCOUNTS) is without  # an opportunity without an account
    skipped = MatchDecision(skip_reason=SKIP_UNMATCHED)
    assert keep_opportunity_account(skipped, 7, ACCOUNTS) is skipped


def test_an_account_a_person_removed_is_not_brought_back() -> None:
    assert keep_opportunity_account(MOVED, 7, ACCOUNTS, frozenset({3})) is MOVED
