"""parse_headers: addresses, encoded words, ids, dates, Outlook conversation, automated-mail markers."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from sync_service.errors import ParseError
from sync_service.parsing.mime import decode_bytes, decode_words, parse_headers


def message(*headers: str, body: str = "body\n") -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")


# ------------------------------------------------------------------------------------------- nothing usable


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n ", b"\r\n\r\njust a body without headers\r\n"])
def test_input_without_headers_raises_parse_error(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse_headers(raw)


def test_obsolete_blank_before_colon_is_still_read() -> None:
    headers = parse_headers(b"Subject   : Saying Hello\r\nFrom  : John <j@example.com>\r\n\r\nhi\r\n")
    assert headers.subject == "Saying Hello"
    assert [a.email for a in headers.from_] == ["j@example.com"]


# ------------------------------------------------------------------------------------------- encoded words


def test_subject_encoded_words_are_joined_without_the_whitespace_between_them() -> None:
    raw = message("Subject: =?utf-8?Q?Gr=C3=BC?= =?utf-8?Q?=C3=9Fe?= and =?utf-8?B?w7w=?=")
    assert parse_headers(raw).subject == "Grüße and ü"


def test_multibyte_character_split_across_two_words_is_reassembled() -> None:
    # "ü" is C3 BC: split between two B words, which the RFC forbids but mailers do.
    first, second = base64.b64encode(b"M\xc3").decode(), base64.b64encode(b"\xbcller").decode()
    assert parse_headers(message(f"Subject: =?UTF-8?B?{first}?= =?UTF-8?B?{second}?=")).subject == "Müller"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("=?x-unknown?Q?Caf=C3=A9?=", "Café"),  # unknown charset: UTF-8 guessed
        ("=?x-unknown?Q?Caf=E9?=", "Café"),  # unknown charset, not UTF-8: cp1252
        ("=?utf-8?Q?Caf=E9?=", "Caf\ufffd"),  # declared charset that does not fit: replacement
        ("=?punycode?Q?abc?=", "abc"),  # a Python codec that is no mail charset is ignored
        ("=?utf-8?B?w7w?=", "ü"),  # missing padding
        ("=?utf-8?B?!!?=", "=?utf-8?B?!!?="),  # not base64: not an encoded word at all
        ("=?utf-8*de?Q?Stra=C3=9Fe?=", "Straße"),  # RFC 2231 language tag
        ("=?iso-8859-1?q?a_b?=", "a b"),
    ],
)
def test_bad_encoded_words_never_raise(header: str, expected: str) -> None:
    assert decode_words(header) == expected
    assert parse_headers(message(f"Subject: {header}")).subject == expected


def test_raw_utf8_and_raw_cp1252_subjects() -> None:
    assert parse_headers(b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\n").subject == "Grüße"
    assert parse_headers(b"Subject: Caf\xe9 \x93quoted\x94\r\n\r\n").subject == "Café “quoted”"


def test_decode_bytes_fallbacks() -> None:
    assert decode_bytes("Привет".encode("cp1251"), "windows-1251") == "Привет"
    assert decode_bytes(b"caf\xc3\xa9", "us-ascii") == "café"  # mislabelled UTF-8
    assert decode_bytes(b"caf\xe9", "us-ascii") == "café"
    assert decode_bytes(b"caf\xe9", "no-such-charset") == "café"
    assert decode_bytes(b"a\x00b", "utf-8") == "ab"  # NUL cannot be stored in PostgreSQL text


# ------------------------------------------------------------------------------------------- addresses


def test_display_names_with_commas_quotes_and_encoded_words() -> None:
    raw = message(
        'To: "Doe, Jane" <jane@example.com>, =?utf-8?Q?M=C3=BCller=2C_J=C3=B6rg?= <joerg@example.de>,',
        ' "=?utf-8?Q?Ren=C3=A9?=" <rene@example.fr>, "O\'Brien \\"Pat\\"" <pat@example.ie>',
    )
    to = parse_headers(raw).to
    assert [(a.email, a.name) for a in to] == [
        ("jane@example.com", "Doe, Jane"),
        ("joerg@example.de", "Müller, Jörg"),
        ("rene@example.fr", "René"),
        ("pat@example.ie", 'O\'Brien "Pat"'),
    ]


def test_outlook_single_quoted_display_name() -> None:
    assert parse_headers(message("From: 'Anna Berg' <anna@example.com>")).from_[0].name == "Anna Berg"


def test_groups_missing_brackets_garbage_and_duplicates() -> None:
    raw = message(
        "To: Team: a@example.com, B <b@example.com>;, undisclosed-recipients:;, garbage,",
        " John Doe john@example.com, <>, @nolocal.example, nodomain@, A@EXAMPLE.COM",
    )
    to = parse_headers(raw).to
    assert [a.email for a in to] == ["a@example.com", "b@example.com", "john@example.com"]
    assert to[2].name == "John Doe"


def test_emails_are_lower_cased_and_idn_domains_compare_equal() -> None:
    headers = parse_headers(
        message(
            "From: Jörg <JOERG@XN--MLLER-KVA.DE>",
            "To: joerg@Müller.de, x@xn--invalid-punycode-.example",
            "Cc: <  Spaced@Example.COM  >",
        )
    )
    assert headers.from_[0].email == "joerg@müller.de"
    assert headers.from_[0].domain == "müller.de"
    assert headers.to[0].email == headers.from_[0].email
    assert headers.to[1].email == "x@xn--invalid-punycode-.example"  # undecodable label kept as written
    assert headers.cc[0].email == "spaced@example.com"


def test_raw_utf8_display_name_and_sender_reply_to() -> None:
    headers = parse_headers(
        b"From: J\xc3\xb6rg M\xc3\xbcller <j@example.de>\r\n"
        b"Sender: Assistant <assist@example.de>\r\nReply-To: team@example.de\r\n\r\n"
    )
    assert headers.from_[0].name == "Jörg Müller"
    assert headers.sender is not None and headers.sender.email == "assist@example.de"
    assert headers.sender_address == headers.from_[0]
    assert [a.email for a in headers.reply_to] == ["team@example.de"]


def test_multiple_to_headers_are_all_read() -> None:
    headers = parse_headers(message("To: a@example.com", "To: b@example.com"))
    assert [a.email for a in headers.to] == ["a@example.com", "b@example.com"]


# ------------------------------------------------------------------------------------------- ids and dates


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<abc@example.com>", "abc@example.com"),
        ("  <abc@ex\r\n ample.com>  ", "abc@example.com"),
        ("abc@example.com", "abc@example.com"),
        ("<abc@example.com> (added by relay)", "abc@example.com"),
        ("<>", None),
        ("   ", None),
    ],
)
def test_message_id(value: str, expected: str | None) -> None:
    assert parse_headers(message(f"Message-ID: {value}", "Subject: x")).message_id == expected


def test_missing_message_id_is_none() -> None:
    assert parse_headers(message("Subject: x")).message_id is None


def test_in_reply_to_and_references() -> None:
    headers = parse_headers(
        message(
            "In-Reply-To: <b@example.com> (Mary's message of Tuesday)",
            "References: <a@example.com>\r\n <b@example.com> <a@example.com>",
        )
    )
    assert headers.in_reply_to == ("b@example.com",)
    assert headers.references == ("a@example.com", "b@example.com")
    bare = parse_headers(message("In-Reply-To: c@example.com", "References: junk, d@example.com"))
    assert bare.in_reply_to == ("c@example.com",)
    assert bare.references == ("d@example.com",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue, 14 May 2024 09:31:05 +0200", datetime(2024, 5, 14, 7, 31, 5, tzinfo=UTC)),
        ("14 May 2024 09:31:05 -0000", datetime(2024, 5, 14, 9, 31, 5, tzinfo=UTC)),  # naive → UTC
        ("Tue, 14 May 2024 09:31:05", datetime(2024, 5, 14, 9, 31, 5, tzinfo=UTC)),
        ("Tue, 14 May 2024 09:31:05 EST", datetime(2024, 5, 14, 14, 31, 5, tzinfo=UTC)),
        ("yesterday around noon", None),
        ("Tue, 99 Foo 2024 99:99:99 +9999", None),
        ("", None),
    ],
)
def test_date_is_utc_or_none(value: str, expected: datetime | None) -> None:
    date = parse_headers(message(f"Date: {value}", "Subject: x")).date
    assert date == expected
    if date is not None:
        assert date.utcoffset() is not None and date.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------- Outlook


def test_conversation_id_is_the_thread_index_root() -> None:
    root = bytes(range(1, 23))
    reply = base64.b64encode(root + b"\x00\x01\x02\x03\x04").decode()
    expected = base64.b64encode(root).decode()
    assert parse_headers(message(f"Thread-Index: {reply}")).conversation_id == expected
    assert parse_headers(message(f"Thread-Index: {expected}")).conversation_id == expected


@pytest.mark.parametrize("value", ["", "not base64!!", base64.b64encode(b"too short").decode()])
def test_invalid_thread_index_gives_no_conversation(value: str) -> None:
    assert parse_headers(message(f"Thread-Index: {value}", "Subject: x")).conversation_id is None


def test_content_type_and_calendar_flags() -> None:
    assert parse_headers(message("Subject: x")).content_type == "text/plain"
    assert parse_headers(message("Content-Type: TEXT/HTML; charset=utf-8")).content_type == "text/html"
    assert parse_headers(message("Content-Type: garbage")).content_type == "text/plain"
    invite = parse_headers(message('Content-Type: text/calendar; method="REQUEST"'))
    assert invite.has_calendar
    outlook = parse_headers(
        message("Content-Class: urn:content-classes:calendarmessage", "Content-Type: multipart/alternative")
    )
    assert outlook.has_calendar
    assert not parse_headers(message("Content-Type: multipart/mixed; boundary=x")).has_calendar


# ------------------------------------------------------------------------------------------- automated mail


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (["List-Unsubscribe: <mailto:u@list.example>"], "List-Unsubscribe header"),
        (["List-Id: Sales list <sales.list.example>"], "List-Id header"),
        (["Precedence: bulk"], "Precedence: bulk"),
        (["Precedence: JUNK"], "Precedence: junk"),
        (["Precedence: list"], "Precedence: list"),
        (["Auto-Submitted: auto-replied"], "Auto-Submitted: auto-replied"),
        (["Auto-Submitted: auto-generated; owner-email=x@example.com"], "Auto-Submitted: auto-generated"),
        (["Auto-Submitted: auto-replied (vacation)"], "Auto-Submitted: auto-replied"),
        (["X-Autoreply: yes"], "X-Autoreply header"),
        (["X-Autorespond: Out of office"], "X-Autorespond header"),
        (["X-MS-Exchange-Inbox-Rules-Loop: anna@example.com"], "X-MS-Exchange-Inbox-Rules-Loop"),
        (["Content-Type: multipart/report; report-type=delivery-status; boundary=x"], "multipart/report"),
        (["Return-Path: <>", "From: Mail Delivery System <postmaster@mx.example>"], "mailer-daemon"),
        (["From: MAILER-DAEMON@mx.example"], "mailer-daemon"),
        (["Subject: Automatic reply: Proposal"], "auto-reply subject"),
        (["Subject: Out of Office: Proposal"], "auto-reply subject"),
        (["Subject: Out of Office AutoReply: Proposal"], "auto-reply subject"),
        (["Subject: Autoreply: Proposal"], "auto-reply subject"),
        (["Subject: [Auto-Reply] Proposal"], "auto-reply subject"),
        (["Subject: Abwesenheitsnotiz: Angebot"], "auto-reply subject"),
        (["Subject: Automatische Antwort: Angebot"], "auto-reply subject"),
        (["Subject: =?utf-8?Q?R=C3=A9ponse_automatique=C2=A0:_Offre?="], "auto-reply subject"),
        (["Subject: =?utf-8?Q?Respuesta_autom=C3=A1tica:_Oferta?="], "auto-reply subject"),
        (["Subject: Automatisch antwoord: Offerte"], "auto-reply subject"),
        (["Subject: Autosvar: Offert"], "auto-reply subject"),
    ],
)
def test_automated_reason(headers: list[str], reason: str) -> None:
    sender = [] if any(h.startswith("From:") for h in headers) else ["From: anna@example.com"]
    found = parse_headers(message(*sender, *headers)).automated_reason
    assert found is not None and reason in found
    assert "\n" not in found


@pytest.mark.parametrize(
    "headers",
    [
        ["Subject: Proposal"],
        ["X-Auto-Response-Suppress: All", "Subject: Proposal"],  # Outlook puts this on ordinary mail
        ["Auto-Submitted: no"],
        ["Auto-Submitted: No (manual)"],  # RFC 3834 allows a comment after the keyword
        ["Precedence: first-class"],
        ["Subject: Re: Out of office plans for the team"],
        ["Subject: Re: Automatic reply: are these useful?"],
        ["Return-Path: <>", "Subject: hello"],
    ],
)
def test_ordinary_mail_is_not_automated(headers: list[str]) -> None:
    assert parse_headers(message("From: anna@example.com", *headers)).automated_reason is None


def test_headers_only_parse_ignores_the_body() -> None:
    raw = message("Subject: big", body="x" * 2_000_000 + "\r\nSubject: not a header\r\n")
    assert parse_headers(raw).subject == "big"
