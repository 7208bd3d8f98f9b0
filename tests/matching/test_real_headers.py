"""Real-world headers through the header parser and the matcher: ``parse_headers`` → ``facts_of`` → ``decide``.

Each rule has a case that must match and one that must not: display names with commas, encoded words, IDN
domains, upper-case addresses, Reply-To differing from From, mailing lists, out-of-office replies, forwarded
mail, Outlook conversations. The world is the hand-built index of ``conftest.py``.
"""

from __future__ import annotations

import base64

import pytest

from sync_service.matching.decide import decide
from sync_service.matching.model import (
    OPP_ACCOUNT,
    OPP_PARTICIPANT,
    OPP_THREAD,
    OPP_TOKEN,
    SKIP_AUTOMATED,
    SKIP_INTERNAL,
    SKIP_UNMATCHED,
    CandidateIndex,
    MatchDecision,
)
from sync_service.parsing.mime import parse_headers
from sync_service.pipeline.email_facts import facts_of

REP = "rep@ourco.com"


def mail(*headers: str, body: str = "Hello") -> bytes:
    names = {h.split(":", 1)[0].lower() for h in headers}
    defaults = [f"To: {REP}"] if "to" not in names else []
    defaults += ["Subject: Hello"] if "subject" not in names else []
    lines = ["Message-ID: <x1@example.test>", "Date: Mon, 02 Nov 2026 09:00:00 +0000", *defaults, *headers]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode("utf-8")


def match(raw: bytes, index: CandidateIndex, **kw: str) -> MatchDecision:
    return decide(facts_of(parse_headers(raw), REP), index, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- display names


def test_quoted_display_names_with_commas_keep_every_address(index: CandidateIndex) -> None:
    d = match(
        mail('From: "Smith, Bob" <bob@acme.com>', f'To: "Rep, Our" <{REP}>, "Doe, Carol" <carol@globex.com>'), index
    )
    assert d.contact_ids == (12, 13) and d.primary_account_id == 3
    assert (d.opportunity_id, d.opportunity_rule) == (7, OPP_ACCOUNT)  # rule c: 7 and 9; rule d (Acme): 7 only
    facts = facts_of(parse_headers(mail('From: "Smith, Bob" <bob@acme.com>')), REP)
    assert facts.sender is not None and facts.sender.name == "Smith, Bob"


def test_unquoted_comma_in_a_display_name_loses_no_address(index: CandidateIndex) -> None:
    d = match(mail("From: Smith, Bob <bob@acme.com>"), index)  # broken but common: "Smith" alone is no address
    assert d.contact_ids == (12,) and d.opportunity_id == 7 and d.opportunity_rule == OPP_PARTICIPANT


def test_a_comma_name_never_becomes_an_address_of_its_own(index: CandidateIndex) -> None:
    d = match(mail('From: "pal@gmail.com, Bob" <stranger@gmail.com>'), index)
    assert d.skip_reason == SKIP_UNMATCHED  # the quoted name is text, not Bob's address


# ------------------------------------------------------------------------------------------- encoded words


def test_encoded_word_display_name_and_idn_domain(index: CandidateIndex) -> None:
    raw = mail("From: =?utf-8?Q?M=C3=BCller=2C_Uwe?= <uwe@xn--bcher-kva.de>")
    facts = facts_of(parse_headers(raw), REP)
    assert facts.sender is not None and (facts.sender.email, facts.sender.name) == ("uwe@bücher.de", "Müller, Uwe")
    d = decide(facts, index)
    assert d.contact_ids == (18,) and d.primary_account_id == 8


def test_encoded_subject_carries_the_tracking_token(index: CandidateIndex) -> None:
    subject = "=?iso-8859-1?q?Angebot_f=FCr_Sie_=5BOPP-9=5D?="  # "Angebot für Sie [OPP-9]"
    d = match(mail("From: bob@acme.com", f"Subject: {subject}"), index)
    assert d.opportunity_id == 9 and d.opportunity_rule == OPP_TOKEN


def test_a_token_split_by_a_broken_encoded_word_is_no_token(index: CandidateIndex) -> None:
    d = match(mail("From: carol@globex.com", "Subject: =?utf-8?B?!!!?= [OPP-x9]"), index)
    assert d.opportunity_rule == OPP_PARTICIPANT and d.opportunity_id == 9  # rule c, not a bogus token


# ------------------------------------------------------------------------------------------- IDN and case


@pytest.mark.parametrize("written", ["uwe@xn--bcher-kva.de", "UWE@XN--BCHER-KVA.DE", "Uwe@Bücher.DE"])
def test_idn_addresses_in_any_spelling_match_the_contact(index: CandidateIndex, written: str) -> None:
    assert match(mail(f"From: <{written}>"), index).contact_ids == (18,)


def test_unknown_person_at_an_idn_domain_reaches_the_account(index: CandidateIndex) -> None:
    d = match(mail("From: new@eu.xn--bcher-kva.de"), index)
    assert d.account_ids == (8,) and [c.email for c in d.new_contacts] == ["new@eu.bücher.de"]


def test_lookalike_of_an_idn_domain_reaches_nothing(index: CandidateIndex) -> None:
    assert match(mail("From: uwe@xn--bcher-kva.de.evil.example"), index).skip_reason == SKIP_UNMATCHED


def test_upper_case_addresses(index: CandidateIndex) -> None:
    d = match(mail("From: BOB.SMITH@ACME.COM", "To: Rep@OurCo.COM"), index)
    assert d.contact_ids == (12,) and d.direction == "inbound"
    assert match(mail("From: REP@OURCO.COM", "To: Colleague@OURCO.com"), index).skip_reason == SKIP_INTERNAL
    assert match(mail("From: BOB@ACME.COM.EVIL.IO"), index).skip_reason == SKIP_UNMATCHED


# ------------------------------------------------------------------------------------------- Reply-To


def test_reply_to_a_contact_logs_mail_sent_through_a_tool(index: CandidateIndex) -> None:
    d = match(mail("From: Acme via Helpdesk <noreply@helpdesk-tool.io>", "Reply-To: Bob <bob@acme.com>"), index)
    assert not d.skipped and d.contact_ids == (12,)
    assert d.primary_account_id == 3 and "Reply-To address bob@acme.com" in "\n".join(d.explanation)
    assert d.opportunity_id == 7 and d.new_contacts == ()  # helpdesk-tool.io is no account: nobody created


def test_the_senders_own_account_wins_over_its_reply_to(index: CandidateIndex) -> None:
    d = match(mail("From: carol@globex.com", "Reply-To: bob@acme.com"), index)
    assert d.primary_account_id == 5 and d.account_ids == (5, 3) and d.contact_ids == (13, 12)


def test_reply_to_an_unknown_private_address_stays_private(index: CandidateIndex) -> None:
    d = match(mail("From: pal@gmail.com", "Reply-To: pal.other@gmail.com"), index)
    assert d.skip_reason == SKIP_UNMATCHED


def test_reply_to_equal_to_from_or_internal_adds_nobody(index: CandidateIndex) -> None:
    same = match(mail("From: Bob <bob@acme.com>", "Reply-To: BOB@acme.com"), index)
    assert [line for line in same.explanation if "reply-to" in line] == []
    internal = match(mail(f"From: {REP}", "To: colleague@ourco.com", "Reply-To: sales@ourco.com"), index)
    assert internal.skip_reason == SKIP_INTERNAL


def test_reply_to_at_a_known_domain_becomes_a_contact(index: CandidateIndex) -> None:
    d = match(mail("From: noreply@helpdesk-tool.io", "Reply-To: support@globex.com"), index)
    assert [(c.email, c.account_id) for c in d.new_contacts] == [("support@globex.com", 5)]
    assert d.primary_account_id == 5


# ------------------------------------------------------------------------------------------- mailing lists


def test_mailing_list_post_by_a_contact_is_skipped(index: CandidateIndex) -> None:
    d = match(
        mail(
            "From: Bob <bob@acme.com>",
            "To: partners@lists.acme.com",
            "List-Id: Acme partners <partners.lists.acme.com>",
            "List-Post: <mailto:partners@lists.acme.com>",
            "Precedence: list",
        ),
        index,
    )
    assert d.skip_reason == SKIP_AUTOMATED and "List-Id" in d.explanation[-1]
    assert d.new_contacts == () and d.contact_ids == ()


def test_newsletter_with_only_list_unsubscribe_is_skipped(index: CandidateIndex) -> None:
    raw = mail("From: news@acme.com", "List-Unsubscribe: <https://acme.com/u?x=1>, <mailto:u@acme.com>")
    assert match(raw, index).skip_reason == SKIP_AUTOMATED


def test_a_person_writing_about_a_list_is_not_a_list(index: CandidateIndex) -> None:
    d = match(mail("From: bob@acme.com", "Subject: The price list you asked for", "Precedence: first-class"), index)
    assert not d.skipped and d.opportunity_id == 7


# ------------------------------------------------------------------------------------------- out of office


@pytest.mark.parametrize(
    "headers",
    [
        # Outlook / Exchange Online
        ("Subject: Automatic reply: Rocket specs", "Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All"),
        ("Subject: Out of Office: Rocket specs", "X-MS-Exchange-Inbox-Rules-Loop: bob@acme.com"),
        ("Subject: Abwesenheitsnotiz: Angebot",),  # Outlook in German, no header at all
        ("Subject: On vacation", "Auto-Submitted: auto-replied (vacation)"),  # Gmail / Sieve
        ("Subject: Re: Rocket specs", "X-Autoreply: yes"),
        ("Subject: Re: Rocket specs", "X-Mail-Autoreply: yes"),
        ("Subject: Re: Rocket specs", "X-POST-MessageClass: 9; Autoresponder"),
        ("Subject: Re: Rocket specs", "X-Precedence: auto_reply"),
    ],
)
def test_out_of_office_replies_are_skipped(index: CandidateIndex, headers: tuple[str, ...]) -> None:
    d = match(mail("From: Bob <bob@acme.com>", *headers), index)
    assert d.skip_reason == SKIP_AUTOMATED and d.new_contacts == ()


@pytest.mark.parametrize(
    "subject",
    [
        "RE: Automatic reply: Rocket specs",  # a person answering an auto-reply
        "FW: Out of Office: Rocket specs",  # a person forwarding one
        "Out of office plans for Q3",  # no colon: a subject, not a marker
    ],
)
def test_people_writing_about_auto_replies_are_logged(index: CandidateIndex, subject: str) -> None:
    d = match(mail("From: bob@acme.com", f"Subject: {subject}", "X-Auto-Response-Suppress: All"), index)
    assert not d.skipped and d.contact_ids == (12,)


# ------------------------------------------------------------------------------------------- forwarded mail


def _forward(sender: str, to: str, subject: str) -> bytes:
    inner = "From: carol@globex.com\r\nTo: rep@ourco.com\r\nSubject: Domes\r\n\r\nPlease quote.\r\n"
    return mail(
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        'Content-Type: multipart/mixed; boundary="b"',
        body=f"--b\r\nContent-Type: text/plain\r\n\r\nFYI\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n{inner}--b--",
    )


def test_forwarding_a_customer_mail_to_a_colleague_is_internal(index: CandidateIndex) -> None:
    assert match(_forward(REP, "colleague@ourco.com", "Fwd: Domes"), index).skip_reason == SKIP_INTERNAL


def test_forwarding_to_a_customer_is_logged_for_that_customer(index: CandidateIndex) -> None:
    d = match(_forward(REP, "bob@acme.com", "Fwd: Domes"), index)
    assert d.direction == "outbound" and d.contact_ids == (12,) and d.opportunity_id == 7
    assert 13 not in d.contact_ids  # Carol is inside the forwarded message only


def test_forwarded_tracking_token_still_links(index: CandidateIndex) -> None:
    d = match(_forward(REP, "bob@acme.com", "FW: Domes [OPP-10]"), index)
    assert d.opportunity_id == 10 and d.opportunity_rule == OPP_TOKEN


def test_customer_forwarding_our_mail_to_a_colleague(index: CandidateIndex) -> None:
    d = match(_forward("bob@acme.com", "anna@acme.com", "Fwd: Offer"), index)
    assert d.direction == "inbound" and d.primary_account_id == 3
    assert [c.email for c in d.new_contacts] == ["anna@acme.com"]  # the colleague at a known account


# ------------------------------------------------------------------------------------------- threads


def _thread_index(root: bytes, replies: int = 1) -> str:
    return base64.b64encode(root + b"\x01" * 5 * replies).decode()


def test_outlook_thread_index_links_to_the_conversation(make_index) -> None:  # type: ignore[no-untyped-def]
    root = bytes(range(22))
    conversation = base64.b64encode(root).decode()
    index = make_index(thread_opportunity={conversation: 10})
    d = match(mail("From: carol@globex.com", f"Thread-Index: {_thread_index(root)}", "Thread-Topic: Domes"), index)
    assert d.opportunity_id == 10 and d.opportunity_rule == OPP_THREAD


def test_another_conversation_does_not_link(make_index) -> None:  # type: ignore[no-untyped-def]
    index = make_index(thread_opportunity={base64.b64encode(bytes(range(22))).decode(): 10})
    other = _thread_index(bytes(range(1, 23)))
    d = match(mail("From: carol@globex.com", f"Thread-Index: {other}"), index)
    assert d.opportunity_id == 9 and d.opportunity_rule == OPP_PARTICIPANT


def test_references_with_folding_and_no_brackets(index: CandidateIndex) -> None:
    d = match(mail("From: carol@globex.com", "References: <zzz@old.example>\r\n <m1@acme.com>"), index)
    assert d.opportunity_id == 7 and d.opportunity_rule == OPP_THREAD
    broken = match(mail("From: carol@globex.com", "In-Reply-To: m2@globex.com"), index)
    assert broken.opportunity_id == 9 and broken.opportunity_rule == OPP_THREAD


def test_account_rule_reached_through_reply_to(index: CandidateIndex) -> None:
    d = match(mail("From: noreply@helpdesk-tool.io", "Reply-To: someone@acme.com"), index)
    assert d.opportunity_id == 7 and d.opportunity_rule == OPP_ACCOUNT
