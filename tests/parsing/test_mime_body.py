"""parse_body (text, HTML, charsets, attachments, calendar parts, limits) and html_to_text."""

from __future__ import annotations

import base64
from email.message import Message

import pytest

from sync_service.errors import ParseError
from sync_service.parsing.html_text import html_to_text
from sync_service.parsing.mime import parse_body

HEAD = "From: a@example.com\r\nTo: b@example.com\r\nSubject: t\r\nMIME-Version: 1.0\r\n"


def single(content_type: str, body: bytes | str, *extra: str) -> bytes:
    data = body.encode("utf-8") if isinstance(body, str) else body
    headers = HEAD + f"Content-Type: {content_type}\r\n" + "".join(f"{h}\r\n" for h in extra)
    return headers.encode("ascii") + b"\r\n" + data


def multipart(subtype: str, *parts: str, boundary: str = "BOUNDARY") -> bytes:
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--\r\n"
    return (HEAD + f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n' + body).encode("utf-8")


def b64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii")


# ------------------------------------------------------------------------------------------- text and HTML


def test_plain_text_with_crlf_is_normalised() -> None:
    body = parse_body(single("text/plain; charset=utf-8", "line one\r\nline two\r\n"))
    assert body.text == "line one\nline two\n"
    assert body.html is None
    assert body.attachments == () and body.calendar_parts == () and body.problems == ()


def test_plain_text_is_preferred_and_html_kept_raw() -> None:
    raw = multipart(
        "alternative",
        "Content-Type: text/plain; charset=utf-8\r\n\r\nplain version",
        "Content-Type: text/html; charset=utf-8\r\n\r\n<p>html <b>version</b></p>",
    )
    body = parse_body(raw)
    assert body.text.strip() == "plain version"
    assert body.html is not None and "<b>version</b>" in body.html


def test_html_only_is_converted_to_text() -> None:
    body = parse_body(single("text/html; charset=utf-8", "<html><body><p>Hello&nbsp;<i>you</i></p></body></html>"))
    assert body.text == "Hello you"
    assert body.html is not None and body.html.startswith("<html>")


def test_html_charset_from_meta_tag() -> None:
    html = '<html><head><meta charset="windows-1251"></head><body>Привет</body></html>'
    body = parse_body(single("text/html", html.encode("cp1251")))
    assert body.text == "Привет"


@pytest.mark.parametrize(
    ("charset", "data", "expected"),
    [
        ("windows-1251", "Добрый день".encode("cp1251"), "Добрый день"),
        ("iso-2022-jp", "見積もり".encode("iso2022_jp"), "見積もり"),
        ("koi8-r", "Привет".encode("koi8_r"), "Привет"),
        ("x-unknown-charset", "Grüße".encode(), "Grüße"),
        ("x-unknown-charset", "Grüße".encode("cp1252"), "Grüße"),
        ("us-ascii", "Grüße".encode(), "Grüße"),  # mislabelled
        ("utf-8", b"bad \xff byte", "bad \ufffd byte"),
        ('"UTF-8"', b"quoted", "quoted"),
    ],
)
def test_every_charset_decodes_without_raising(charset: str, data: bytes, expected: str) -> None:
    body = parse_body(single(f"text/plain; charset={charset}", data, "Content-Transfer-Encoding: 8bit"))
    assert body.text == expected


def test_quoted_printable_with_sloppy_transfer_encoding_name() -> None:
    raw = single("text/plain; charset=utf-8", "Gr=C3=BC=C3=9Fe", "Content-Transfer-Encoding: Quoted-Printable;")
    assert parse_body(raw).text == "Grüße"


def test_inline_text_parts_are_joined() -> None:
    raw = multipart(
        "mixed",
        "Content-Type: text/plain\r\n\r\nfirst",
        "Content-Type: image/png\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64(b"\x89PNG"),
        "Content-Type: text/plain\r\n\r\nsecond",
    )
    body = parse_body(raw)
    assert body.text.split() == ["first", "second"]
    assert [a.filename for a in body.attachments] == ["attachment.png"]


def test_multipart_without_boundary_is_read_as_text() -> None:
    body = parse_body(single("multipart/mixed", "no boundary here"))
    assert "no boundary here" in body.text


# ------------------------------------------------------------------------------------------- attachments


def test_attachment_with_rfc2231_filename_inline_flag_and_content_id() -> None:
    raw = multipart(
        "related",
        'Content-Type: text/html\r\n\r\n<img src="cid:logo@x">',
        "Content-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64(b"\x89PNG-logo"),
        "Content-Type: application/pdf\r\n"
        "Content-Disposition: attachment; filename*=utf-8''Angebot%20f%C3%BCr%20M%C3%BCller.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" + b64(b"%PDF-1.7"),
    )
    logo, pdf = parse_body(raw).attachments
    assert (logo.filename, logo.media_type, logo.data, logo.inline, logo.content_id) == (
        "attachment.png", "image/png", b"\x89PNG-logo", True, "logo@x",
    )  # fmt: skip
    assert (pdf.filename, pdf.media_type, pdf.data, pdf.inline) == (
        "Angebot für Müller.pdf", "application/pdf", b"%PDF-1.7", False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="=?utf-8?B?0J/RgNCw0LnRgS5wZGY=?="', "Прайс.pdf"),  # encoded word
        ("attachment; filename*=iso-8859-1''caf%E9.pdf", "café.pdf"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="C:\\\\x\\\\evil.exe"', "evil.exe"),
        ("attachment; filename*=utf-8''a%00b.pdf", "ab.pdf"),
        ("attachment", "attachment.pdf"),
    ],
)
def test_attachment_names_are_decoded_and_made_safe(disposition: str, expected: str) -> None:
    raw = multipart(
        "mixed",
        "Content-Type: text/plain\r\n\r\nhi",
        f"Content-Type: application/pdf\r\nContent-Disposition: {disposition}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" + b64(b"%PDF"),
    )
    (attachment,) = parse_body(raw).attachments
    assert attachment.filename == expected


def test_raw_utf8_filename_is_not_mangled() -> None:
    raw = (
        HEAD + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        'Content-Type: text/plain\r\nContent-Disposition: attachment; filename="Müller.txt"\r\n\r\nx\r\n--b--\r\n'
    ).encode("utf-8")
    assert [a.filename for a in parse_body(raw).attachments] == ["Müller.txt"]


def test_text_part_with_filename_is_an_attachment_not_the_body() -> None:
    raw = multipart(
        "mixed",
        "Content-Type: text/plain\r\n\r\nthe body",
        'Content-Type: text/plain; name="notes.txt"\r\n\r\nthe notes',
    )
    body = parse_body(raw)
    assert body.text.strip() == "the body"
    assert [(a.filename, a.data.strip()) for a in body.attachments] == [("notes.txt", b"the notes")]


def test_broken_base64_takes_what_decodes() -> None:
    raw = multipart(
        "mixed",
        "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29ybGQ=!!junk after padding",
        "Content-Type: application/octet-stream; name=x.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "QUJD%%%REVG\r\nR",  # junk in the middle, truncated last quantum
    )
    body = parse_body(raw)
    assert body.text == "Hello world"
    assert body.attachments[0].data == b"ABCDEF"
    assert body.problems == ()


def test_attachment_over_the_limit_is_dropped_and_reported() -> None:
    raw = multipart(
        "mixed",
        "Content-Type: text/plain\r\n\r\nsee attached",
        'Content-Type: application/zip; name="big.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + b64(b"x" * 2000),
        'Content-Type: application/zip; name="small.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + b64(b"x" * 10),
    )
    body = parse_body(raw, max_attachment_bytes=1000)
    assert [a.filename for a in body.attachments] == ["small.zip"]
    (problem,) = body.problems
    assert "big.zip" in problem and "2000" in problem and "\n" not in problem


# ------------------------------------------------------------------------------------------- forwarded, calendar


def test_forwarded_message_becomes_an_eml_attachment_named_after_its_subject() -> None:
    inner = "From: c@example.com\r\nSubject: =?utf-8?Q?Pr=C3=BCfung_1/2?=\r\n\r\ninner body\r\n"
    raw = multipart("mixed", "Content-Type: text/plain\r\n\r\nFYI", "Content-Type: message/rfc822\r\n\r\n" + inner)
    body = parse_body(raw)
    assert body.text.strip() == "FYI"
    (forwarded,) = body.attachments
    assert forwarded.filename == "Prüfung 1_2.eml"
    assert forwarded.media_type == "message/rfc822"
    assert forwarded.data.startswith(b"From: c@example.com") and b"inner body" in forwarded.data


def test_forwarded_message_without_subject_and_base64_encoded() -> None:
    inner = b"From: c@example.com\r\n\r\nno subject\r\n"
    raw = multipart(
        "mixed",
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(inner),
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64(b"Subject: encoded\r\n\r\nx\r\n"),
    )
    first, second = parse_body(raw).attachments
    assert (first.filename, first.data) == ("forwarded.eml", inner)
    assert second.filename == "encoded.eml"


ICS = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"


def test_calendar_alternative_goes_to_calendar_parts_only() -> None:
    raw = multipart(
        "alternative",
        "Content-Type: text/plain\r\n\r\nYou are invited",
        "Content-Type: text/calendar; method=REQUEST; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64(ICS),
    )
    body = parse_body(raw)
    assert body.calendar_parts == (ICS,)
    assert body.attachments == ()
    assert body.text.strip() == "You are invited"


def test_attached_ics_file_is_calendar_part_and_attachment_without_duplicates() -> None:
    raw = multipart(
        "mixed",
        "Content-Type: text/calendar; method=REQUEST\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(ICS),
        'Content-Type: application/ics; name="invite.ics"\r\nContent-Disposition: attachment; filename="invite.ics"'
        "\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(ICS),
    )
    body = parse_body(raw)
    assert body.calendar_parts == (ICS,)  # same bytes twice: one calendar part
    assert [(a.filename, a.media_type) for a in body.attachments] == [("invite.ics", "application/ics")]


def test_delivery_status_is_skipped() -> None:
    raw = multipart(
        "report",
        "Content-Type: text/plain\r\n\r\nUndeliverable",
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nAction: failed\r\n",
    )
    body = parse_body(raw)
    assert body.text.strip() == "Undeliverable" and body.attachments == ()


# ------------------------------------------------------------------------------------------- robustness


def test_deep_nesting_does_not_recurse_forever() -> None:
    depth = 2000
    opening = "".join(f'--b{i}\r\nContent-Type: multipart/mixed; boundary="b{i + 1}"\r\n\r\n' for i in range(depth))
    raw = (HEAD + 'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n' + opening + "deep\r\n").encode()
    body = parse_body(raw)
    assert "deep" in body.text
    assert body.problems == ("MIME structure nested too deeply; the body was read as plain text",)


def test_parse_error_only_when_nothing_usable() -> None:
    with pytest.raises(ParseError):
        parse_body(b"")
    with pytest.raises(ParseError):
        parse_body(b"\r\n\r\nno headers at all")
    assert parse_body(b"Subject: only a header\r\n").text == ""


def test_one_bad_part_does_not_lose_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Message.get_content_disposition

    def exploding(self: Message) -> str | None:
        if self.get_content_type() == "application/x-boom":
            raise RuntimeError("boom")
        return original(self)

    monkeypatch.setattr(Message, "get_content_disposition", exploding)
    raw = multipart(
        "mixed",
        "Content-Type: text/plain\r\n\r\nkept",
        "Content-Type: application/x-boom\r\n\r\nx",
        'Content-Type: application/pdf; name="kept.pdf"\r\n\r\n%PDF',
    )
    body = parse_body(raw)
    assert body.text.strip() == "kept"
    assert [a.filename for a in body.attachments] == ["kept.pdf"]
    assert body.problems == ("MIME part 2 skipped: RuntimeError",)


# ------------------------------------------------------------------------------------------- html_to_text


def test_html_to_text_structure() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style><script>x()</script></head>"
        "<body><h1>Offer</h1><p>Dear&nbsp;Anna,<br>see   the\n terms:</p>"
        "<ul><li>one</li><li>two</li></ul><table><tr><td>a</td><td>b</td></tr></table>"
        "<p>&lt;ok&gt; &amp; &#8364;5 &euro;</p></body></html>"
    )
    assert html_to_text(html) == "Offer\n\nDear Anna,\nsee the terms:\n\n- one\n- two\n\na b\n\n<ok> & €5 €"


def test_html_to_text_never_swallows_a_body_after_an_unclosed_head() -> None:
    assert html_to_text("<head><title>x</title><p>visible text") == "visible text"


def test_html_to_text_keeps_pre_lines_and_drops_invisible_characters() -> None:
    assert html_to_text("<pre>a\n  b</pre>") == "a\nb"
    assert html_to_text("pre\u200b\u200cview\ufeff") == "preview"


@pytest.mark.parametrize("html", ["", "<", "<<<>>>", "<a href='", "&#xffffffff;", "<script>", "</p></div>", "\x00"])
def test_html_to_text_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)
