"""Audit 16 finding 2: what a new address-book card becomes under CRM_AUTO_CREATE (``matching.cards``), the
policy mail follows (SPEC §3.6): never from public mail providers only, a lead (not a contact) under ``all``."""

from __future__ import annotations

import pytest

from sync_service.matching.cards import plan_new_card
from sync_service.matching.model import CandidateIndex


@pytest.mark.parametrize("policy", ["none", "account-domains", "all"])
@pytest.mark.parametrize(
    "emails", [["friend@gmail.com"], ["mom@yahoo.com"], ["x@gmx.fr", "x@mail.yahoo.com"], ["x@hotmail.it"]]
)
def test_a_card_at_public_providers_only_is_never_created(
    index: CandidateIndex, emails: list[str], policy: str
) -> None:
    plan = plan_new_card(emails, index, policy)
    assert plan.action == "nothing" and plan.emails == ()


def test_default_policy_a_card_at_an_account_domain_is_a_contact_of_it(index: CandidateIndex) -> None:
    plan = plan_new_card(["Person@Acme.com"], index, "account-domains")
    assert (plan.action, plan.account_id, plan.emails) == ("contact", 3, ("person@acme.com",))
    sub = plan_new_card(["jane@eu.sales.acme.co.uk"], index, "account-domains")
    assert (sub.action, sub.account_id) == ("contact", 3)


def test_default_policy_an_unknown_company_card_is_nothing(index: CandidateIndex) -> None:
    assert plan_new_card(["ceo@randombiz.com"], index, "account-domains").action == "nothing"


def test_policy_all_an_unknown_company_card_is_a_lead_not_a_contact(index: CandidateIndex) -> None:
    plan = plan_new_card(["ceo@randombiz.com"], index, "all")
    assert (plan.action, plan.account_id, plan.emails, plan.deciding) == (
        "lead",
        None,
        ("ceo@randombiz.com",),
        "ceo@randombiz.com",
    )
    assert plan_new_card(["person@acme.com"], index, "all").action == "contact"  # an account's domain: contact


def test_policy_none_creates_nothing(index: CandidateIndex) -> None:
    assert plan_new_card(["person@acme.com"], index, "none").action == "nothing"


@pytest.mark.parametrize("policy", ["account-domains", "all"])
def test_a_mixed_card_is_decided_by_its_company_address_and_keeps_both(index: CandidateIndex, policy: str) -> None:
    plan = plan_new_card(["jane.private@gmail.com", "jane@acme.com"], index, policy)
    assert (plan.action, plan.account_id, plan.deciding) == ("contact", 3, "jane@acme.com")
    assert plan.emails == ("jane.private@gmail.com", "jane@acme.com")


def test_a_mixed_card_at_an_unknown_company_is_a_lead_under_all_only(index: CandidateIndex) -> None:
    emails = ["kim@gmail.com", "kim@newco.io"]
    assert plan_new_card(emails, index, "account-domains").action == "nothing"
    plan = plan_new_card(emails, index, "all")
    assert (plan.action, plan.deciding, plan.emails) == ("lead", "kim@newco.io", ("kim@gmail.com", "kim@newco.io"))


def test_the_first_address_at_an_account_decides_over_an_unknown_company(index: CandidateIndex) -> None:
    plan = plan_new_card(["kim@newco.io", "kim@globex.com"], index, "all")
    assert (plan.action, plan.account_id, plan.deciding) == ("contact", 5, "kim@globex.com")


@pytest.mark.parametrize("policy", ["account-domains", "all"])
@pytest.mark.parametrize("email", ["colleague@ourco.com", "dev@lab.ourco.com", "ann@gmail.com"])
def test_internal_addresses_are_never_created(index: CandidateIndex, email: str, policy: str) -> None:
    assert plan_new_card([email], index, policy).action == "nothing"


def test_internal_addresses_are_left_out_of_a_new_contact(index: CandidateIndex) -> None:
    plan = plan_new_card(["rep@ourco.com", "nina@acme.com"], index, "all")
    assert (plan.action, plan.emails) == ("contact", ("nina@acme.com",))


@pytest.mark.parametrize("policy", ["account-domains", "all"])
@pytest.mark.parametrize("email", ["noreply@acme.com", "postmaster@acme.com", "no-reply@newco.io"])
def test_no_reply_and_system_cards_are_never_created(index: CandidateIndex, email: str, policy: str) -> None:
    assert plan_new_card([email], index, policy).action == "nothing"


def test_a_role_address_on_a_person_card_neither_decides_nor_is_kept(index: CandidateIndex) -> None:
    plan = plan_new_card(["noreply@acme.com", "kim@newco.io"], index, "all")
    assert (plan.action, plan.emails) == ("lead", ("kim@newco.io",))


@pytest.mark.parametrize("emails", [["secret@acme.com"], ["pat@hr-partner.com"], ["nina@acme.com", "x@hr-partner.com"]])
def test_never_log_cards_are_never_created(index: CandidateIndex, emails: list[str]) -> None:
    assert plan_new_card(emails, index, "all").action == "nothing"


def test_a_card_without_an_address_is_nothing(index: CandidateIndex) -> None:
    assert plan_new_card([], index, "all").action == "nothing"
