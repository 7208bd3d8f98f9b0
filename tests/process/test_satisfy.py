"""``satisfied_by`` rules: every condition on its own, and together."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from sync_service.process.definition import SatisfiedBy
from sync_service.process.satisfy import ActivityFacts, Parties, satisfies

OWNER = "alice@northwind-sales.example"
PARTIES = Parties(participant_ids=frozenset({1, 2}), lead_id=9, owner=OWNER)
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
    sender=OWNER,
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


def test_from_owner_needs_the_owners_address_as_sender() -> None:
    rule = replace(PROPOSAL, from_owner=True)
    assert satisfies(rule, SENT, PARTIES)
    assert satisfies(rule, replace(SENT, sender=" Alice@Northwind-Sales.EXAMPLE"), PARTIES)  # any case
    assert not satisfies(rule, replace(SENT, sender="bob@northwind-sales.example"), PARTIES)  # another rep
    assert not satisfies(rule, replace(SENT, sender=None), PARTIES)  # sender unknown
    assert not satisfies(rule, SENT, replace(PARTIES, owner=None))  # no owner
    assert satisfies(PROPOSAL, replace(SENT, sender="bob@northwind-sales.example"), PARTIES)  # not asked: any sender


def test_a_rule_without_conditions_takes_any_activity_of_its_types() -> None:
    rule = SatisfiedBy(types=("meeting",))
    assert satisfies(rule, replace(SENT, type="meeting", direction=None, contact_ids=frozenset()), Parties())


def test_may_satisfy_is_what_every_rule_of_the_process_needs_first() -> None:
    # Checked for every activity of a lead before its state is read: false only when no step takes it.
    from itertools import product

    from crm_store.seed import shipped_processes
    from sync_service.process.definition import parse_process
    from sync_service.process.satisfy import may_satisfy

    for process in (parse_process(d) for d in shipped_processes()):
        rules = [s.satisfied_by for stage in process.stages for s in stage.steps if s.satisfied_by is not None]
        words = {w for rule in rules for w in rule.keywords}
        subjects = ["", "hello", *(f"Re: {w.upper()} draft" for w in words)]
        for kind, direction, subject in product(("email", "meeting", "call", "task"), ("inbound", "outbound", None),
                                                subjects):  # fmt: skip
            loosest = replace(SENT, type=kind, direction=direction, subject=subject, contact_ids=frozenset({1}),
                              lead_id=9, sender=OWNER)  # fmt: skip
            possible = any(satisfies(rule, loosest, PARTIES) for rule in rules)
            assert may_satisfy(process, kind, direction, subject) == possible, (process.name, kind, direction, subject)


def test_a_definition_is_parsed_once_per_content() -> None:
    import copy

    from crm_store.seed import shipped_processes
    from sync_service.process.store import parsed_process

    definition = copy.deepcopy(shipped_processes()[0])
    first = parsed_process(definition)
    assert parsed_process(copy.deepcopy(definition)) is first  # the same content: remembered
    definition["stages"][0]["steps"][0]["title"] += " (edited)"
    edited = parsed_process(definition)
    assert edited is not first and edited.stages[0].steps[0].title.endswith("(edited)")
