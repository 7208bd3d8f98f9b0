"""SPEC §3.4: the opportunity, first rule that gives exactly one answer; else the review queue."""

from __future__ import annotations

from sync_service.matching.decide import decide
from sync_service.matching.model import OPP_ACCOUNT, OPP_PARTICIPANT, OPP_THREAD, OPP_TOKEN


def chosen(decision):
    return decision.opportunity_id, decision.opportunity_rule, decision.review_candidates


# Rule a: the thread.


def test_thread_by_in_reply_to(index, facts):
    item = facts("carol@globex.com", "rep@ourco.com", in_reply_to=("m1@acme.com",))
    decision = decide(item, index)
    assert chosen(decision) == (7, OPP_THREAD, ())
    assert "opportunity 7 by rule a: the item continues a thread linked to it" in decision.explanation


def test_thread_by_references_with_angle_brackets(index, facts):
    item = facts("carol@globex.com", "rep@ourco.com", references=("<unknown@x>", "<m2@globex.com>"))
    assert chosen(decide(item, index)) == (9, OPP_THREAD, ())


def test_thread_by_outlook_conversation(index, facts):
    item = facts("carol@globex.com", "rep@ourco.com", conversation_id="conv-acme")
    assert chosen(decide(item, index)) == (7, OPP_THREAD, ())


def test_thread_agreeing_twice_is_one_answer(index, facts):
    item = facts(
        "carol@globex.com", "rep@ourco.com", in_reply_to=("m1@acme.com",), conversation_id="conv-acme"
    )
    assert chosen(decide(item, index))[:2] == (7, OPP_THREAD)


def test_two_thread_opportunities_fall_to_the_token(index, facts):
    item = facts(
        "bob@acme.com",
        "rep@ourco.com",
        references=("m1@acme.com", "m2@globex.com"),
        subject="RE: Offer [OPP-10]",
    )
    decision = decide(item, index)
    assert chosen(decision) == (10, OPP_TOKEN, ())
    assert "rule a ambiguous: opportunities 7, 9" in decision.explanation


def test_unknown_thread_falls_through(index, facts):
    item = facts("bob@acme.com", "rep@ourco.com", in_reply_to=("nobody@x",))
    assert chosen(decide(item, index)) == (7, OPP_PARTICIPANT, ())


def test_thread_learned_in_the_same_run(index, facts):
    index.remember_thread("new-message@ourco.com", 10)
    item = facts("bob@acme.com", "rep@ourco.com", in_reply_to=("new-message@ourco.com",))
    assert chosen(decide(item, index)) == (10, OPP_THREAD, ())


# Rule b: the tracking token.


def test_token_in_subject_case_insensitive(index, facts):
    decision = decide(facts("carol@globex.com", "rep@ourco.com", subject="re: Offer [opp-10]"), index)
    assert chosen(decision) == (10, OPP_TOKEN, ())
    assert "opportunity 10 by rule b: tracking token [OPP-10] in the subject" in decision.explanation


def test_token_may_name_a_closed_opportunity(index, facts):
    decision = decide(facts("bob@acme.com", "rep@ourco.com", subject="Invoice [OPP-11]"), index)
    assert chosen(decision) == (11, OPP_TOKEN, ())


def test_unknown_token_is_ignored(index, facts):
    decision = decide(facts("bob@acme.com", "rep@ourco.com", subject="Offer [OPP-999]"), index)
    assert chosen(decision) == (7, OPP_PARTICIPANT, ())


def test_two_tokens_fall_to_the_participants(index, facts):
    item = facts("bob@acme.com", "rep@ourco.com", subject="[OPP-9] and [OPP-10]")
    assert chosen(decide(item, index)) == (7, OPP_PARTICIPANT, ())


def test_the_same_token_twice_is_one_answer(index, facts):
    item = facts("bob@acme.com", "rep@ourco.com", subject="RE: [OPP-10] FW: [OPP-10] and [OPP-999]")
    assert chosen(decide(item, index)) == (10, OPP_TOKEN, ())


def test_malformed_tokens_are_not_tokens(index, facts):
    item = facts("bob@acme.com", "rep@ourco.com", subject="OPP-10 [OPP10] [OPP-x]")
    assert chosen(decide(item, index)) == (7, OPP_PARTICIPANT, ())


# Rule c: the participants' open opportunities.


def test_participant_rule(index, facts):
    decision = decide(facts("bob@acme.com", "rep@ourco.com"), index)
    assert chosen(decision) == (7, OPP_PARTICIPANT, ())
    assert "opportunity 7 by rule c: the only open opportunity with contact 12" in decision.explanation


def test_participant_rule_by_phone(index, facts):
    call = facts("rep@ourco.com", kind="call", phones=("+1 202-555-0123",))
    assert chosen(decide(call, index)) == (7, OPP_PARTICIPANT, ())


def test_contacts_sharing_one_opportunity_is_one_answer(make_index, facts):
    index = make_index(open_opps_by_contact={12: (7,), 13: (7,)})
    item = facts("bob@acme.com", "rep@ourco.com", "carol@globex.com")
    assert chosen(decide(item, index)) == (7, OPP_PARTICIPANT, ())


def test_two_participant_opportunities_fall_to_the_account(index, facts):
    decision = decide(facts("bob@acme.com", "rep@ourco.com", "carol@globex.com"), index)
    assert chosen(decision) == (7, OPP_ACCOUNT, ())
    assert "opportunity 7 by rule d: the only open opportunity of account 3" in decision.explanation


# Rule d: the primary account's open opportunities.


def test_account_rule_without_contacts(index, facts):
    assert chosen(decide(facts("new@acme.com", "rep@ourco.com"), index)) == (7, OPP_ACCOUNT, ())


def test_account_rule_uses_the_primary_account_only(index, facts):
    # Outbound: primary is Globex (first recipient) with two open opportunities, Acme's one is not used.
    decision = decide(facts("rep@ourco.com", "new@globex.com", "new@acme.com"), index)
    assert chosen(decision) == (None, None, (9, 10))


# No rule gives exactly one answer.


def test_review_candidates_from_the_account(index, facts):
    decision = decide(facts("new@globex.com", "rep@ourco.com"), index)
    assert chosen(decision) == (None, None, (9, 10))
    assert decision.account_ids == (5,)
    assert decision.explanation[-1] == "no opportunity: review candidates 9, 10"


def test_review_candidates_come_from_rule_c_before_d(make_index, facts):
    index = make_index(open_opps_by_contact={13: (10, 9)}, open_opps_by_account={5: (9, 10, 20)})
    decision = decide(facts("carol@globex.com", "rep@ourco.com"), index)
    assert chosen(decision) == (None, None, (9, 10))


def test_ambiguous_threads_and_tokens_give_review_candidates(make_index, facts):
    """SPEC §3.4: no rule gave exactly one answer, so a person chooses among those the first ambiguous rule found."""
    index = make_index(open_opps_by_account={})
    item = facts("solo@freelance.io", "rep@ourco.com", references=("m1@acme.com", "m2@globex.com"))
    decision = decide(item, index)
    assert chosen(decision) == (None, None, (7, 9))
    assert decision.explanation[-1] == "no opportunity: review candidates 7, 9"
    tokens = decide(facts("new@globex.com", "rep@ourco.com", subject="[OPP-10] vs [OPP-9]"), index)
    assert chosen(tokens) == (None, None, (9, 10))


def test_an_ambiguous_thread_comes_before_the_account_candidates(index, facts):
    item = facts("new@globex.com", "rep@ourco.com", references=("m1@acme.com", "m2@globex.com"))
    assert chosen(decide(item, index)) == (None, None, (7, 9))


def test_no_opportunity_at_all(index, facts):
    decision = decide(facts("solo@freelance.io", "rep@ourco.com"), index)
    assert chosen(decision) == (None, None, ())
    assert decision.explanation[-1] == "no opportunity"
