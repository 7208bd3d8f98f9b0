"""Audit 16 finding 9: no-reply / system senders are logged to their account but never auto-created as a
contact or lead (``matching.role_addresses``, used by ``decide`` and by address-book cards)."""

from __future__ import annotations

import pytest

from sync_service.matching.decide import decide
from sync_service.matching.model import SKIP_UNMATCHED, NewContact, NewLead
from sync_service.matching.role_addresses import is_role_address


@pytest.mark.parametrize(
    "email",
    [
        "noreply@acme.com",
        "no-reply@acme.com",
        "No_Reply@acme.com",
        "noreply+abc@acme.com",
        "no.reply@acme.com",
        "donotreply@acme.com",
        "do-not-reply@acme.com",
        "DoNotReply@acme.com",
        "MAILER-DAEMON@mx.acme.com",
        "mailer_daemon@acme.com",
        "postmaster@acme.com",
        "Postmaster@acme.com",
        "bounce@acme.com",
        "bounces+12345-abc@acme.com",
        "bounces-123@acme.com",
        "notifications@acme.com",
        "notification@acme.com",
        "no-reply-billing@acme.com",
        "notifications.github@acme.com",
        "billing-noreply@acme.com",  # a role word after a department's: as common as before it
        "invoice.no-reply@acme.com",
        "calendar-notification@acme.com",
        "jane.noreply@acme.com",
    ],
)
def test_role_addresses_are_recognised(email: str) -> None:
    assert is_role_address(email)


@pytest.mark.parametrize(
    "email",
    [
        "nina@acme.com",
        "norbert.reply@acme.com",
        "noreplyinvoices@acme.com",  # one word that merely starts with one
        "bouncer@acme.com",
        "postmistress@acme.com",
        "support@acme.com",  # shared mailboxes people answer from are not on the list
        "sales@acme.com",
        "billing@acme.com",
    ],
)
def test_people_and_shared_mailboxes_are_not_role_addresses(email: str) -> None:
    assert not is_role_address(email)


def test_a_noreply_sender_is_logged_to_its_account_but_no_contact_is_made(index, facts):
    decision = decide(facts(("Acme Billing", "noreply@acme.com"), "rep@ourco.com"), index)
    assert not decision.skipped
    assert decision.new_contacts == ()
    assert decision.account_ids == (3,) and decision.primary_account_id == 3
    assert "no contact or lead for noreply@acme.com: a no-reply / system address" in decision.explanation


def test_a_postmaster_ndr_is_logged_to_its_account_but_no_contact_is_made(index, facts):
    decision = decide(facts(("Postmaster", "postmaster@acme.com"), "rep@ourco.com"), index, policy="all")
    assert not decision.skipped
    assert decision.new_contacts == () and decision.new_leads == ()
    assert decision.primary_account_id == 3


def test_other_new_people_of_the_same_mail_are_still_created(index, facts):
    item = facts(("Acme Billing", "No-Reply+inv42@acme.com"), "rep@ourco.com", ("Nina New", "nina@acme.com"))
    decision = decide(item, index)
    assert decision.new_contacts == (NewContact("nina@acme.com", "Nina New", 3),)


def test_no_lead_for_a_noreply_sender_at_an_unknown_domain(index, facts):
    decision = decide(facts(("Newco", "do-not-reply@newco.com"), "rep@ourco.com"), index, policy="all")
    assert decision.new_leads == ()
    assert decision.skip_reason == SKIP_UNMATCHED  # nobody of the CRM in it, and nobody to create
    # a person at the same domain still becomes a lead
    person = decide(facts(("Nora New", "nora@newco.com"), "rep@ourco.com"), index, policy="all")
    assert person.new_leads == (NewLead("nora@newco.com", "Nora New", "Newco"),)
