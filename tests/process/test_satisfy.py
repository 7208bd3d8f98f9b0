"""``satisfied_by`` rules: every condition on its own, and together."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from sync_service.process.definition import SatisfiedBy
from sync_service.process.satisfy import ActivityFacts, Parties, satisfies

PARTIES = Parties(participant_ids=frozenset({1, 2}), lead_id=9)
PROPOSAL = SatisfiedBy(types=("email",), direction="outbound", has_attachment=True, with_participant=True)
SENT = ActivityFacts(
    id=5,
    type="email",
    status="completed",
    at=datetime(2026, 11, 2, tzinfo=UTC),
    direction="outbound",
    subject="Our proposal",
    has_attachment=True,
    contact_ids=frozenset({2, 3}),
)


def test_the_proposal_email_satisfies_submit_the_proposal() -> None:
    assert satisfies(PROPOSAL, SENT, PARTIES)


@pytest.mark.parametrize(
    "change",
    [
        {"type": "meeting"},
        {"direction": "inbound"},
        {"direction": None},
        {"has_attachment": False},
        {"contact_ids": frozenset({3})},
        {"contact_ids": frozenset()},
    ],
)
def test_each_condition_must_hold(change: dict) -> None:
    assert not satisfies(PROPOSAL, replace(SENT, **change), PARTIES)


def test_keywords_match_the_subject_case_insensitively() -> None:
    rule = SatisfiedBy(types=("email",), keywords=("Contract", "signed"))
    assert satisfies(rule, replace(SENT, subject="RE: the CONTRACT"), PARTIES)
    assert satisfies(rule, replace(SENT, subject="all signed!"), PARTIES)
    assert not satisfies(rule, replace(SENT, subject="Pricing"), PARTIES)


def test_with_lead_needs_the_process_lead() -> None:
    rule = SatisfiedBy(types=("meeting", "call"), with_lead=True)
    call = replace(SENT, type="call", lead_id=9)
    assert satisfies(rule, call, PARTIES)
    assert not satisfies(rule, replace(call, lead_id=8), PARTIES)
    assert not satisfies(rule, replace(call, lead_id=None), Parties())


def test_a_rule_without_conditions_takes_any_activity_of_its_types() -> None:
    rule = SatisfiedBy(types=("meeting",))
    assert satisfies(rule, replace(SENT, type="meeting", direction=None, contact_ids=frozenset()), Parties())
