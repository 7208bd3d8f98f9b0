"""SPEC §3.6: auto-creation of contacts and leads under CRM_AUTO_CREATE."""

from __future__ import annotations

import pytest

from sync_service.matching.decide import decide
from sync_service.matching.model import SKIP_AUTOMATED, SKIP_NEVER_LOG, SKIP_UNMATCHED, NewContact, NewLead


def test_default_policy_creates_a_contact_at_a_known_domain(index, facts):
    decision = decide(facts(("Nina New", "Nina@Acme.com"), "rep@ourco.com"), index)
    assert decision.new_contacts == (NewContact("nina@acme.com", "Nina New", 3),)
    assert decision.account_ids == (3,)
    assert decision.primary_account_id == 3
    assert decision.contact_ids == ()
    assert "new contact nina@acme.com at account 3 (policy account-domains)" in decision.explanation


def test_contact_at_a_subdomain_joins_the_domain_account(index, facts):
    decision = decide(facts("rep@ourco.com", "jane.doe@eu.sales.acme.co.uk"), index)
    assert decision.new_contacts == (NewContact("jane.doe@eu.sales.acme.co.uk", "Jane Doe", 3),)


def test_one_new_contact_per_unknown_address(index, facts):
    item = facts(
        "rep@ourco.com", "bob@acme.com", "a@acme.com", "A@acme.com", "b@globex.com", "lena@startup.io"
    )
    decision = decide(item, index)
    assert [(c.email, c.account_id) for c in decision.new_contacts] == [
        ("a@acme.com", 3),
        ("b@globex.com", 5),
    ]
    assert decision.account_ids == (3, 5)


def test_policy_none_creates_nothing_but_still_matches(index, facts):
    decision = decide(facts("nina@acme.com", "rep@ourco.com"), index, policy="none")
    assert decision.new_contacts == () and decision.new_leads == ()
    assert not decision.skipped
    assert decision.account_ids == (3,)


def test_never_from_public_providers(index, facts):
    decision = decide(facts("bob@acme.com", "rep@ourco.com", "friend@gmail.com"), index, policy="all")
    assert decision.new_contacts == () and decision.new_leads == ()


def test_never_for_internal_addresses(index, facts):
    decision = decide(facts("bob@acme.com", "rep@ourco.com", "new@dev.ourco.com"), index, policy="all")
    assert decision.new_contacts == () and decision.new_leads == ()


def test_never_for_automated_items(index, facts):
    item = facts("stranger@newco.com", "rep@ourco.com", "nina@acme.com", automated_reason="List-Id header")
    decision = decide(item, index, policy="all")
    assert decision.skip_reason == SKIP_AUTOMATED
    assert decision.new_contacts == () and decision.new_leads == ()


def test_never_for_never_log_items(index, facts):
    item = facts("stranger@newco.com", "rep@ourco.com", "nina@acme.com", "secret@acme.com")
    decision = decide(item, index, policy="all")
    assert decision.skip_reason == SKIP_NEVER_LOG
    assert decision.new_contacts == () and decision.new_leads == ()


def test_known_contacts_and_leads_are_not_created_again(index, facts):
    decision = decide(facts("bob@acme.com", "rep@ourco.com", "lena@startup.io"), index, policy="all")
    assert decision.new_contacts == () and decision.new_leads == ()


def test_policy_all_creates_a_lead_for_an_unknown_sender(index, facts):
    decision = decide(facts(("Otto Owner", "otto@acme-corp.com"), "rep@ourco.com"), index, policy="all")
    assert not decision.skipped
    assert decision.new_leads == (NewLead("otto@acme-corp.com", "Otto Owner", "Acme Corp"),)
    assert decision.lead_id is None and decision.account_ids == ()
    assert "new lead otto@acme-corp.com of company 'Acme Corp' (policy all)" in decision.explanation


def test_lead_company_from_a_subdomain(index, facts):
    decision = decide(facts("info@mail.big-data_works.co.uk", "rep@ourco.com"), index, policy="all")
    assert decision.new_leads == (NewLead("info@mail.big-data_works.co.uk", "Info", "Big Data Works"),)


def test_default_policy_creates_no_lead(index, facts):
    decision = decide(facts("otto@acme-corp.com", "rep@ourco.com"), index)
    assert decision.skip_reason == SKIP_UNMATCHED
    assert decision.new_leads == ()


def test_no_lead_for_a_public_sender(index, facts):
    decision = decide(facts("otto@gmail.com", "rep@ourco.com"), index, policy="all")
    assert decision.skip_reason == SKIP_UNMATCHED


def test_no_lead_for_outbound_mail(index, facts):
    decision = decide(facts("rep@ourco.com", "otto@acme-corp.com"), index, policy="all")
    assert decision.skip_reason == SKIP_UNMATCHED


def test_no_lead_for_an_unknown_recipient_of_inbound_mail(index, facts):
    decision = decide(facts("bob@acme.com", "rep@ourco.com", "otto@acme-corp.com"), index, policy="all")
    assert decision.new_leads == ()


def test_policy_all_creates_lead_and_contacts_together(index, facts):
    decision = decide(facts("otto@acme-corp.com", "rep@ourco.com", "nina@acme.com"), index, policy="all")
    assert [lead.email for lead in decision.new_leads] == ["otto@acme-corp.com"]
    assert [c.email for c in decision.new_contacts] == ["nina@acme.com"]
    assert decision.primary_account_id == 3


def test_a_meeting_organizer_can_become_a_lead(index, facts):
    meeting = facts("otto@acme-corp.com", "rep@ourco.com", kind="meeting")
    assert decide(meeting, index, policy="all").new_leads[0].company == "Acme Corp"


def test_unknown_policy_is_an_error(index, facts):
    with pytest.raises(ValueError, match="auto-create policy"):
        decide(facts("bob@acme.com", "rep@ourco.com"), index, policy="some")  # type: ignore[arg-type]
