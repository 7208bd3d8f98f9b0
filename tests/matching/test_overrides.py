"""A person's removals applied to a decision (``apply_exclusions``), and the links a decision wants
(``wanted_state``): pure functions shared by the pipeline and re-matching."""

from __future__ import annotations

from sync_service.matching.decide import decide
from sync_service.matching.model import OPP_PARTICIPANT, CandidateIndex, LinkExclusions, MatchDecision
from sync_service.matching.overrides import apply_exclusions
from sync_service.pipeline.link_state import LinkState, wanted_state


def test_no_exclusions_change_nothing(index: CandidateIndex, facts) -> None:  # type: ignore[no-untyped-def]
    d = decide(facts("bob@acme.com", "carol@globex.com"), index)
    assert apply_exclusions(d, LinkExclusions()) is d
    assert apply_exclusions(d, LinkExclusions(contacts=frozenset({99}))) is d  # nothing to remove


def test_removed_contact_account_and_opportunity_are_left_out(index: CandidateIndex, facts) -> None:  # type: ignore[no-untyped-def]
    d = decide(facts("bob@acme.com", "carol@globex.com"), index)
    assert (d.contact_ids, d.account_ids, d.primary_account_id, d.opportunity_id) == ((12, 13), (3, 5), 3, 7)
    out = apply_exclusions(
        d, LinkExclusions(contacts=frozenset({12}), accounts=frozenset({3}), opportunities=frozenset({7}))
    )
    assert (out.contact_ids, out.account_ids, out.primary_account_id) == ((13,), (5,), 5)
    assert out.opportunity_id is None and out.opportunity_rule is None
    tail = out.explanation[len(d.explanation) :]
    assert tail == (
        "contact 12 left out: the link was removed by a person",
        "account 3 left out: the link was removed by a person",
        "primary account 5: account 3 was removed by a person",
        "no opportunity: opportunity 7 (rule d) was removed by a person",
    )


def test_removed_candidates_leave_the_review(index: CandidateIndex, facts) -> None:  # type: ignore[no-untyped-def]
    d = decide(facts("someone@globex.com"), index)
    assert d.review_candidates == (9, 10)
    out = apply_exclusions(d, LinkExclusions(opportunities=frozenset({9})))
    assert out.review_candidates == (10,) and out.opportunity_id is None


def test_skipped_decisions_are_untouched(index: CandidateIndex, facts) -> None:  # type: ignore[no-untyped-def]
    d = decide(facts("pal@gmail.com"), index)
    assert apply_exclusions(d, LinkExclusions(contacts=frozenset({12}))) is d


def _decision(**kw: object) -> MatchDecision:
    return MatchDecision(direction="inbound", **kw)  # type: ignore[arg-type]


def test_wanted_state_keeps_what_a_person_did() -> None:
    current = LinkState(
        auto_accounts=frozenset({3}),
        manual_accounts=(5,),
        manual_contacts=frozenset({13}),
        primary_account=3,
        opportunity=10,
        opportunity_manual=True,
    )
    wanted = wanted_state(current, _decision(account_ids=(5, 8), contact_ids=(12, 13), opportunity_id=7))
    assert wanted.auto_accounts == {8} and wanted.manual_accounts == (5,)  # 5 stays a person's link
    assert wanted.auto_contacts == {12} and wanted.manual_contacts == {13}
    assert wanted.opportunity == 10 and wanted.review is None  # the person's choice
    assert wanted.primary_account == 8  # the decision names none: the first automatic account


def test_wanted_state_review_and_primary_fallback() -> None:
    current = LinkState(manual_accounts=(5,), opportunity=7, review=None)
    wanted = wanted_state(current, _decision(review_candidates=(9, 10), opportunity_rule=None))
    assert wanted.opportunity is None and wanted.review == (9, 10)
    assert wanted.primary_account == 5  # only a person's account is left
    same = wanted_state(wanted, _decision(review_candidates=(9, 10)))
    assert same == wanted


def test_wanted_state_of_an_unchanged_decision_is_the_current_state() -> None:
    d = _decision(
        account_ids=(3,), contact_ids=(12,), primary_account_id=3, opportunity_id=7, opportunity_rule=OPP_PARTICIPANT
    )
    current = LinkState(auto_accounts=frozenset({3}), auto_contacts=frozenset({12}), primary_account=3, opportunity=7)
    assert wanted_state(current, d) == current
