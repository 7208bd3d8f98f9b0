"""SPEC §3.2–3.3 and §3.5: resolving participants, the accounts reached, the primary account, the lead."""

from __future__ import annotations

from sync_service.matching.decide import decide
from sync_service.matching.resolve import is_internal, never_log_entry, resolve_address, resolve_phone


def test_contact_by_secondary_address_in_upper_case(index):
    res = resolve_address("BOB.Smith@ACME.com", index)
    assert (res.via, res.contact_ids, res.account_ids) == ("contact", (12,), (3,))
    assert res.describe() == "contact 12 (account 3)"


def test_contact_wins_over_lead_and_domain(make_index):
    index = make_index(leads_by_email={"bob@acme.com": (40,)})
    assert resolve_address("bob@acme.com", index).via == "contact"


def test_all_contacts_sharing_an_address(index, facts):
    assert resolve_address("team@globex.com", index).contact_ids == (15, 16)
    decision = decide(facts("team@globex.com", "rep@ourco.com"), index)
    assert decision.contact_ids == (15, 16)
    assert decision.account_ids == (5,)


def test_lead(index, facts):
    res = resolve_address("Lena@Startup.io", index)
    assert (res.via, res.lead_ids, res.account_ids) == ("lead", (40,), ())
    decision = decide(facts("lena@startup.io", "rep@ourco.com"), index)
    assert decision.lead_id == 40
    assert decision.account_ids == () and decision.primary_account_id is None


def test_lead_is_the_first_participant_resolving_to_one(make_index, facts):
    index = make_index(leads_by_email={"lena@startup.io": (40,), "max@other.io": (42,)})
    decision = decide(facts("rep@ourco.com", "max@other.io", "lena@startup.io"), index)
    assert decision.lead_id == 42


def test_no_lead_when_nobody_is_one(index, facts):
    assert decide(facts("bob@acme.com", "rep@ourco.com"), index).lead_id is None


def test_account_by_domain(index):
    res = resolve_address("new@acme.com", index)
    assert (res.via, res.account_ids, res.matched_domain) == ("domain", (3,), "acme.com")
    assert res.describe() == "account 3 by domain acme.com"


def test_account_by_a_subdomain(index):
    res = resolve_address("x@eu.sales.acme.co.uk", index)
    assert (res.via, res.account_ids, res.matched_domain) == ("domain", (3,), "acme.co.uk")


def test_the_longest_owned_domain_wins(make_index):
    index = make_index(account_by_domain={"acme.com": 3, "labs.acme.com": 4})
    assert resolve_address("x@eu.labs.acme.com", index).account_ids == (4,)


def test_unknown_domain_resolves_to_nothing(index):
    res = resolve_address("x@unknown.org", index)
    assert not res.resolved and not res.public_domain
    assert res.describe() == "nothing"


def test_public_domain_never_resolves_to_an_account(make_index):
    index = make_index(account_by_domain={"gmail.com": 99, "acme.com": 3})
    res = resolve_address("stranger@gmail.com", index)
    assert not res.resolved and res.public_domain
    assert resolve_address("stranger@googlemail.com", index).account_ids == ()


def test_contact_with_a_gmail_address_matches(index, facts):
    decision = decide(facts("Dave@GMail.com", "rep@ourco.com"), index)
    assert decision.contact_ids == (14,)
    assert decision.primary_account_id == 3


def test_contact_without_account(index, facts):
    decision = decide(facts("solo@freelance.io", "rep@ourco.com"), index)
    assert decision.contact_ids == (17,)
    assert decision.account_ids == () and decision.primary_account_id is None


def test_idn_domains(index):
    assert resolve_address("uwe@bücher.de", index).contact_ids == (18,)
    assert resolve_address("UWE@xn--bcher-kva.de", index).contact_ids == (18,)
    assert resolve_address("new@sales.xn--bcher-kva.de", index).account_ids == (8,)
    assert resolve_address("new@Sales.BÜCHER.de", index).account_ids == (8,)


def test_participants_deduplicated_in_order(index, facts):
    decision = decide(facts("bob@acme.com", "rep@ourco.com", "BOB@acme.com", "carol@globex.com"), index)
    assert decision.contact_ids == (12, 13)
    assert sum(line.startswith("sender bob@acme.com →") for line in decision.explanation) == 1
    assert not any(line.startswith("recipient bob@acme.com") for line in decision.explanation)


def test_primary_account_inbound_is_the_senders(index, facts):
    decision = decide(facts("carol@globex.com", "rep@ourco.com", "bob@acme.com"), index)
    assert decision.direction == "inbound"
    assert decision.account_ids == (5, 3)
    assert decision.primary_account_id == 5


def test_primary_account_outbound_is_the_first_recipients(index, facts):
    decision = decide(facts("rep@ourco.com", "bob@acme.com", "carol@globex.com"), index)
    assert decision.direction == "outbound"
    assert decision.primary_account_id == 3
    decision = decide(facts("rep@ourco.com", "carol@globex.com", "bob@acme.com"), index)
    assert decision.primary_account_id == 5


def test_primary_account_outbound_skips_recipients_without_account(index, facts):
    decision = decide(facts("rep@ourco.com", "lena@startup.io", "friend@gmail.com", "bob@acme.com"), index)
    assert decision.primary_account_id == 3


def test_primary_account_falls_back_to_the_first_account_reached(index, facts):
    decision = decide(facts("lena@startup.io", "rep@ourco.com", "carol@globex.com", "bob@acme.com"), index)
    assert decision.direction == "inbound"
    assert decision.primary_account_id == 5


def test_accounts_include_domain_accounts(index, facts):
    decision = decide(facts("bob@acme.com", "rep@ourco.com", "new@globex.com"), index)
    assert decision.account_ids == (3, 5)
    assert decision.contact_ids == (12,)


def test_meeting_organizer_and_attendees(index, facts):
    meeting = facts("rep@ourco.com", "carol@globex.com", kind="meeting")
    decision = decide(meeting, index)
    assert decision.direction == "outbound"
    assert "attendee carol@globex.com → contact 13 (account 5)" in decision.explanation


def test_no_sender_has_no_direction(index, facts):
    decision = decide(facts(None, "bob@acme.com", kind="meeting"), index)
    assert decision.direction is None
    assert decision.primary_account_id == 3


def test_phones_resolve_to_contacts_then_leads(index, facts):
    assert resolve_phone("+12025550123", index).contact_ids == (12,)
    assert resolve_phone("+493012345678", index).lead_ids == (41,)
    assert not resolve_phone("+442079460958", index).resolved
    call = facts("rep@ourco.com", kind="call", phones=("202.555.0123 x7", "+49 (0)30 1234-5678"))
    decision = decide(call, index)
    assert decision.contact_ids == (12,)
    assert decision.lead_id == 41
    assert decision.primary_account_id == 3


def test_phone_default_region_comes_from_the_index(make_index, facts):
    index = make_index(default_region="DE")
    call = facts("rep@ourco.com", kind="call", phones=("030 12345678",))
    assert decide(call, index).lead_id == 41


def test_explanation_lines(index, facts):
    decision = decide(facts("bob@acme.com", "rep@ourco.com"), index)
    assert decision.explanation[:3] == (
        "inbound: sender bob@acme.com is external",
        "sender bob@acme.com → contact 12 (account 3)",
        "primary account 3: the sender's account",
    )


def test_is_internal(index):
    assert is_internal("REP@ourco.com", index)
    assert is_internal("new@dev.ourco.com", index)
    assert is_internal("ann@gmail.com", index)
    assert not is_internal("bob@acme.com", index)
    assert not is_internal("x@ourco.co", index)


def test_never_log_entry(index):
    assert never_log_entry("secret@acme.com", index) == "secret@acme.com"
    assert never_log_entry("x@a.b.hr-partner.com", index) == "hr-partner.com"
    assert never_log_entry("bob@acme.com", index) is None
    assert never_log_entry("+12025550123", index) is None


def test_internal_and_never_log_prefilter_agree_with_the_domain_facts(index):
    """``under_any`` only saves the domain-facts lookup: subdomains and parents still count."""
    from sync_service.matching.resolve import domain_facts, under_any

    assert under_any("eu.sales.ourco.com", index.internal_domains)
    assert not under_any("notourco.com", index.internal_domains)
    assert is_internal("x@eu.ourco.com", index) and not is_internal("x@notourco.com", index)
    assert never_log_entry("x@mail.hr-partner.com", index) == "hr-partner.com"
    assert never_log_entry("x@nothr-partner.com", index) is None
    for domain in ("acme.com", "eu.ourco.com", "gmail.com", "mail.hr-partner.com", "nothr-partner.com"):
        facts = domain_facts(domain, index)
        assert facts.internal <= under_any(domain, index.internal_domains)
        assert (facts.never_log is None) or under_any(domain, index.never_log)
