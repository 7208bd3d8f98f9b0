"""SPEC §3.1: the four skip rules, in order, and what a skipped decision carries."""

from __future__ import annotations

import pytest

from sync_service.matching.decide import decide
from sync_service.matching.model import (
    SKIP_AUTOMATED,
    SKIP_INTERNAL,
    SKIP_NEVER_LOG,
    SKIP_UNMATCHED,
    MatchDecision,
)


def assert_bare(decision: MatchDecision) -> None:
    """A skipped decision links nothing and creates nothing."""
    assert decision.skipped
    assert decision.contact_ids == () and decision.account_ids == ()
    assert decision.lead_id is None and decision.primary_account_id is None
    assert decision.opportunity_id is None and decision.review_candidates == ()
    assert decision.new_contacts == () and decision.new_leads == ()
    assert decision.explanation[-1].startswith(f"skipped: {decision.skip_reason}")


def test_internal_only(index, facts):
    decision = decide(facts("rep@ourco.com", "colleague@ourco.com"), index)
    assert decision.skip_reason == SKIP_INTERNAL
    assert decision.direction == "outbound"
    assert_bare(decision)


def test_subdomain_of_internal_domain_is_internal(index, facts):
    decision = decide(facts("rep@ourco.com", "ops@eu.OurCo.com"), index)
    assert decision.skip_reason == SKIP_INTERNAL


@pytest.mark.parametrize("lookalike", ["x@ourco.com.evil.net", "x@notourco.com"])
def test_lookalike_domains_are_external(index, facts, lookalike):
    decision = decide(facts("rep@ourco.com", lookalike), index)
    assert decision.skip_reason == SKIP_UNMATCHED


def test_a_rep_with_a_gmail_address_is_internal_but_gmail_is_not(index, facts):
    assert decide(facts("ann@gmail.com", "rep@ourco.com"), index).skip_reason == SKIP_INTERNAL
    decision = decide(facts("ann@gmail.com", "friend@gmail.com"), index)
    assert decision.skip_reason == SKIP_UNMATCHED
    assert decision.direction == "outbound"


def test_an_internal_public_domain_does_not_make_every_correspondent_internal(make_index, facts):
    index = make_index(internal_domains=frozenset({"ourco.com", "gmail.com"}))
    assert decide(facts("dave@gmail.com", "rep@ourco.com"), index).contact_ids == (14,)


def test_one_external_participant_is_enough(index, facts):
    decision = decide(facts("rep@ourco.com", "colleague@ourco.com", "bob@acme.com"), index)
    assert not decision.skipped
    assert decision.contact_ids == (12,)


def test_event_without_anybody_is_internal(index, facts):
    decision = decide(facts(None, kind="meeting"), index)
    assert decision.skip_reason == SKIP_INTERNAL
    assert decision.direction is None


def test_call_to_a_phone_number_is_not_internal(index, facts):
    call = facts("rep@ourco.com", kind="call", phones=("tel:+1-202-555-0123",))
    decision = decide(call, index)
    assert not decision.skipped
    assert decision.contact_ids == (12,)


def test_automated_mail(index, facts):
    decision = decide(
        facts("bob@acme.com", "rep@ourco.com", automated_reason="List-Unsubscribe header"), index
    )
    assert decision.skip_reason == SKIP_AUTOMATED
    assert decision.direction == "inbound"
    assert "List-Unsubscribe header" in decision.explanation[-1]
    assert_bare(decision)


def test_automated_applies_to_emails_only(index, facts):
    meeting = facts("bob@acme.com", "rep@ourco.com", kind="meeting", automated_reason="Auto-Submitted")
    assert not decide(meeting, index).skipped


def test_internal_comes_before_automated(index, facts):
    item = facts("rep@ourco.com", "colleague@ourco.com", automated_reason="Precedence: bulk")
    assert decide(item, index).skip_reason == SKIP_INTERNAL


@pytest.mark.parametrize(
    "address",
    ["secret@acme.com", "Secret@ACME.com", "anyone@hr-partner.com", "anyone@eu.hr-partner.com"],
)
def test_never_log_wins_over_a_match(index, facts, address):
    decision = decide(facts("bob@acme.com", "rep@ourco.com", address), index)
    assert decision.skip_reason == SKIP_NEVER_LOG
    assert_bare(decision)


@pytest.mark.parametrize("address", ["x@hr-partner.com.evil.net", "x@partner.com", "other@acme.com"])
def test_never_log_does_not_reach_lookalikes(index, facts, address):
    decision = decide(facts("bob@acme.com", "rep@ourco.com", address), index)
    assert decision.skip_reason is None


def test_never_log_phone_number(make_index, facts):
    index = make_index(never_log=frozenset({"+12025550123"}))
    call = facts("rep@ourco.com", kind="call", phones=("(202) 555-0123",))
    assert decide(call, index).skip_reason == SKIP_NEVER_LOG


def test_automated_comes_before_never_log(index, facts):
    item = facts("secret@acme.com", "rep@ourco.com", automated_reason="Auto-Submitted: auto-replied")
    assert decide(item, index).skip_reason == SKIP_AUTOMATED


def test_private_gmail_mail_is_unmatched(index, facts):
    decision = decide(facts("friend@gmail.com", "rep@ourco.com"), index)
    assert decision.skip_reason == SKIP_UNMATCHED
    assert decision.direction == "inbound"
    assert "friend@gmail.com → nothing (public mail provider)" in " / ".join(decision.explanation)
    assert_bare(decision)


def test_unknown_company_is_unmatched_by_default(index, facts):
    assert decide(facts("someone@unknown.org", "rep@ourco.com"), index).skip_reason == SKIP_UNMATCHED


def test_unknown_phone_number_is_unmatched(index, facts):
    call = facts("rep@ourco.com", kind="call", phones=("+44 20 7946 0958",))
    assert decide(call, index).skip_reason == SKIP_UNMATCHED


def test_explanation_names_the_skip(index, facts):
    decision = decide(facts("rep@ourco.com", "colleague@ourco.com"), index)
    assert decision.explanation == (
        "outbound: sender rep@ourco.com is internal",
        "skipped: internal-only — every participant is internal",
    )


def test_skip_reason_is_the_reason_decide_gives(index, facts):
    # ``skip_reason`` screens emails for parsing ahead: it must agree with ``decide`` everywhere.
    from itertools import product

    from sync_service.matching.decide import skip_reason

    people = [None, "rep@ourco.com", "ann@gmail.com", "bob@acme.com", "new@acme.com", "secret@acme.com",
              "x@hr-partner.com", "lena@startup.io", "stranger@unknown.io", "friend@gmail.com", "solo@freelance.io",
              "team@globex.com", "ceo@sub.acme.co.uk"]  # fmt: skip
    for sender, other, automated, policy in product(people, people[1:], (None, "List-Id header"),
                                                    ("none", "account-domains", "all")):  # fmt: skip
        item = facts(sender, *([other] if other else []), automated_reason=automated)
        expected = decide(item, index, policy=policy).skip_reason
        assert skip_reason(item, index, policy=policy) == expected, (sender, other, automated, policy)
