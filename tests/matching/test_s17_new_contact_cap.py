"""One item creates at most MAX_NEW_CONTACTS contacts (audit 17a F9): a message to a distribution list, or a
meeting with thousands of attendees at a customer's domain, creates none of them, says so in one line of the
explanation and is still linked to the account. Below the cap nothing changes."""

from __future__ import annotations

from sync_service.matching.decide import MAX_NEW_CONTACTS, decide


def test_more_than_the_cap_creates_none_and_says_so_in_one_line(index, facts) -> None:
    many = [f"person{i}@acme.com" for i in range(MAX_NEW_CONTACTS + 1)]
    decision = decide(facts("rep@ourco.com", *many, "bob@acme.com"), index)
    assert decision.new_contacts == ()
    assert decision.contact_ids == (12,) and decision.account_ids == (3,) and not decision.skipped
    [line] = [line for line in decision.explanation if "not created" in line]
    assert line.startswith(f"{MAX_NEW_CONTACTS + 1} new contacts not created: more than {MAX_NEW_CONTACTS} in one item")
    assert not any(line.startswith("new contact ") for line in decision.explanation)


def test_a_meeting_with_thousands_of_attendees_creates_none(index, facts) -> None:
    attendees = [f"a{i}@acme.com" for i in range(5000)]
    decision = decide(facts("rep@ourco.com", *attendees, kind="event"), index)
    assert decision.new_contacts == () and decision.account_ids == (3,)
    assert any(line.startswith("5000 new contacts not created") for line in decision.explanation)


def test_up_to_the_cap_every_new_person_is_created(index, facts) -> None:
    people = [f"person{i}@acme.com" for i in range(MAX_NEW_CONTACTS)]
    decision = decide(facts("rep@ourco.com", *people), index)
    assert [c.email for c in decision.new_contacts] == people
    assert not any("not created" in line for line in decision.explanation)
