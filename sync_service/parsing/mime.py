"""MIME parsing: raw RFC 5322 bytes → ``MessageHeaders`` / ``MessageBody`` value objects. Pure, no I/O.

Matching needs the headers of every message but the body only of messages that are logged, so the two are
parsed separately: ``parse_headers`` reads the header block only (cheap), ``parse_body`` does the full parse.
Both use the stdlib ``email`` package with the ``compat32`` policy (ARCHITECTURE: ``policy.default`` is 5×
slower and raises on fuzz input); well-formed MIME bodies are cut by ``mime_split`` into the same tree the
stdlib feed parser would build, 3× faster, and clean header blocks are read the same way. compat32 is
lenient but leaves the hard parts to us: it keeps 8-bit header bytes as surrogate escapes, does not decode
RFC 2047 words, and trusts whatever charset a sender declares.

Body layout decisions:
- ``text`` joins the inline text/plain parts; without any, it is the HTML converted by ``html_to_text``.
- ``text/calendar`` and ``application/ics`` parts always go to ``calendar_parts`` (raw bytes, deduplicated).
  They are *also* an attachment only when they are a real file (a file name and
  ``Content-Disposition: attachment``), e.g. ``invite.ics`` — the bare alternative part of an invitation
  is not a document anyone attached.
- ``message/rfc822`` (forwarded mail) becomes ``<subject or 'forwarded'>.eml``; its insides are not walked.
- ``message/delivery-status`` (bounce details) is skipped.
- A part that fails to decode, or an attachment over the size limit, is reported in ``problems``.

The only error raised on purpose is ``ParseError``, when nothing usable exists (empty input, no header).
"""

from __future__ import annotations

import binascii
import quopri
import re
from collections.abc import Iterator
from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32

from sync_service.errors import ParseError
from sync_service.parsing.addresses import parse_addresses
from sync_service.parsing.automated import HEADERS as AUTOMATED_HEADERS
from sync_service.parsing.automated import automated_reason
from sync_service.parsing.charsets import (
    decode_bytes,
    decode_words,
    first_header,
    lenient_b64,
    one_line,
)
from sync_service.parsing.filenames import safe_filename
from sync_service.parsing.html_text import html_to_text
from sync_service.parsing.mail_dates import mail_date, received_date
from sync_service.parsing.message_ids import message_id, message_ids
from sync_service.parsing.mime_split import header_end, parse_header_block, split_message
from sync_service.values import Attachment, MessageBody, MessageHeaders

__all__ = ["decode_bytes", "decode_words", "parse_body", "parse_headers"]

_MAX_DEPTH = 30  # multipart nesting; deeper parts are ignored (fuzzed mail nests thousands deep)
_MAX_PARTS = 1000
_VERBATIM = compat32.clone(max_line_length=0)  # re-serialise forwarded mail without re-folding headers
_CALENDAR_TYPES = frozenset({"text/calendar", "application/ics"})
_BODY_TYPES = frozenset({"text/plain", "text/html"})
_DEFAULT_EXT = {
    "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "application/ics": ".ics",
    "text/vcard": ".vcf", "text/x-vcard": ".vcf", "application/pdf": ".pdf", "image/png": ".png",
    "image/jpeg": ".jpg", "image/gif": ".gif", "application/ms-tnef": ".dat",
}  # fmt: skip

# ---------------------------------------------------------------------------------------------- parsing


def _parse(raw: bytes, *, headers_only: bool) -> Message:
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        raise ParseError("empty message")
    raw = bytes(raw).lstrip(b"\r\n")
    if headers_only:  # do not even decode a body of many megabytes
        raw = raw[: header_end(raw)]
        if (block := parse_header_block(raw)) is not None and block.keys():
            return block  # a clean header block: read without the feed parser's line machinery
    elif (split := split_message(raw)) is not None and split.keys():
        return split  # well-formed MIME: the same tree, cut without the line-by-line feed parser
    try:
        parser = BytesHeaderParser(policy=compat32) if headers_only else BytesParser(policy=compat32)
        msg = parser.parsebytes(raw)
    except RecursionError as exc:  # the feed parser recurses once per multipart level
        raise _NestedTooDeep("MIME structure nested too deeply") from exc
    except Exception as exc:  # compat32 is not known to raise on bytes; the boundary is still ours
        raise ParseError(f"unparsable message: {type(exc).__name__}") from exc
    if not msg.keys():
        msg = _reparse_obsolete(raw, parser)
    if not msg.keys():
        raise ParseError("no header found")
    return msg


class _NestedTooDeep(ParseError):
    """Internal: the full parse gave up; ``parse_body`` falls back to reading the body as text."""


_OBS_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)


def _reparse_obsolete(raw: bytes, parser: BytesParser) -> Message:
    """RFC 5322 obsolete syntax allows blanks before the colon ("Subject  : hi"), which compat32 does not
    read as a header at all. Only tried when no header was found, so normal mail pays nothing."""
    end = header_end(raw)
    return parser.parsebytes(_OBS_FIELD_NAME.sub(rb"\1:", raw[:end]) + raw[end:])


_LINE_BREAKS = re.compile(r"[\r\n]+")


def _header_map(msg: Message, names: frozenset[str] | None = None) -> dict[str, list[str]]:
    """Header name (lower case) → values, unfolded, with raw 8-bit bytes decoded (UTF-8 or cp1252); only
    the ``names`` asked for (a message carries dozens of Received, DKIM and ARC lines nobody reads)."""
    headers: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        key = str(name).strip().lower()
        if names is not None and key not in names:
            continue
        text = str(value)
        if not text.isascii():
            text = decode_bytes(text.encode("utf-8", "surrogateescape"), None)
        if "\n" in text or "\r" in text:
            text = _LINE_BREAKS.sub(" ", text)
        headers.setdefault(key, []).append(text.strip())
    return headers




# ---------------------------------------------------------------------------------------------- headers


# The headers ``parse_headers`` reads (lower case).
_HEADERS_READ = AUTOMATED_HEADERS | frozenset(
    {"subject", "from", "sender", "to", "cc", "bcc", "reply-to", "message-id", "date", "in-reply-to",
     "references", "thread-index", "content-class"}
)  # fmt: skip
_RECEIVED = frozenset({"received"})


def parse_headers(raw: bytes) -> MessageHeaders:
    """Parse the header block of a raw message (the body is not read)."""
    msg = _parse(raw, headers_only=True)
    headers = _header_map(msg, _HEADERS_READ)
    subject = one_line(decode_words(first_header(headers, "subject")))
    from_ = parse_addresses(headers.get("from", []))
    senders = parse_addresses(headers.get("sender", []))
    content_type = _content_type(msg)
    return MessageHeaders(
        message_id=message_id(first_header(headers, "message-id")),
        subject=subject,
        date=_date(msg, first_header(headers, "date")),
        from_=from_,
        to=parse_addresses(headers.get("to", [])),
        cc=parse_addresses(headers.get("cc", [])),
        bcc=parse_addresses(headers.get("bcc", [])),
        reply_to=parse_addresses(headers.get("reply-to", [])),
        sender=senders[0] if senders else None,
        in_reply_to=message_ids(headers.get("in-reply-to", [])),
        references=message_ids(headers.get("references", [])),
        conversation_id=_conversation_id(first_header(headers, "thread-index")),
        automated_reason=automated_reason(headers, subject, from_, content_type),
        content_type=content_type,
        has_calendar=content_type in _CALENDAR_TYPES
        or "calendarmessage" in first_header(headers, "content-class").lower(),
    )




def _content_type(msg: Message) -> str:
    try:
        return msg.get_content_type()
    except Exception:  # a Content-Type compat32 cannot even split; RFC 2045 says assume text/plain
        return "text/plain"


def _date(msg: Message, value: str) -> datetime | None:
    """The Date header's time; when it is missing, unparsable or impossible (``mail_dates``), the newest
    Received header's (read only then: a message carries dozens of them)."""
    return mail_date(value) or received_date(_header_map(msg, _RECEIVED).get("received", []))


def _conversation_id(value: str) -> str | None:
    """Outlook's Thread-Index: 22 bytes identify the conversation root, 5 more per reply."""
    data = re.sub(r"\s+", "", value).encode("ascii", "ignore")
    if not data:
        return None
    try:
        decoded = binascii.a2b_base64(data + b"=" * (-len(data) % 4), strict_mode=True)
    except binascii.Error:
        return None
    if len(decoded) < 22:
        return None
    return binascii.b2a_base64(decoded[:22], newline=False).decode("ascii")


# ---------------------------------------------------------------------------------------------- body


def parse_body(raw: bytes, *, max_attachment_bytes: int = 25 * 1024 * 1024) -> MessageBody:
    """Parse the whole message: text, raw HTML, attachments and calendar parts."""
    body = _BodyBuilder(max_attachment_bytes)
    try:
        msg = _parse(raw, headers_only=False)
    except _NestedTooDeep:
        msg = BytesHeaderParser(policy=compat32).parsebytes(raw)  # its payload is the raw body text
        body.problems.append("MIME structure nested too deeply; the body was read as plain text")
    for index, part in enumerate(_leaves(msg)):
        if index >= _MAX_PARTS:
            body.problems.append(f"more than {_MAX_PARTS} MIME parts; the rest were ignored")
            break
        try:
            body.add(part)
        except Exception as exc:  # one undecodable part must not lose the rest of the message
            body.problems.append(f"MIME part {index + 1} skipped: {type(exc).__name__}")
    return body.build()


def _leaves(msg: Message) -> Iterator[Message]:
    """Depth-first leaf parts; forwarded messages are leaves. Iterative: fuzzed mail nests very deep."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        if part.is_multipart() and part.get_content_maintype() != "message":
            payload = part.get_payload()  # a list: no decoding happens for multiparts
            if depth < _MAX_DEPTH and isinstance(payload, list):
                stack.extend((sub, depth + 1) for sub in reversed(payload) if isinstance(sub, Message))
        else:
            yield part


class _BodyBuilder:
    def __init__(self, max_attachment_bytes: int) -> None:
        self.max_attachment_bytes = max_attachment_bytes
        self.texts: list[str] = []
        self.htmls: list[str] = []
        self.attachments: list[Attachment] = []
        self.calendars: dict[bytes, None] = {}  # ordered set
        self.problems: list[str] = []

    def add(self, part: Message) -> None:
        ctype = part.get_content_type()
        maintype = ctype.partition("/")[0]  # get_content_maintype(), without looking the header up again
        if ctype == "message/delivery-status":
            return
        if maintype == "message":  # rfc822, global (and partial, external-body)
            self._add_attachment(part, ctype, *_forwarded(part))
            return
        _repair_8bit_params(part)
        disposition = part.get_content_disposition()
        filename = _filename(part)
        is_file = filename is not None or disposition == "attachment"
        if maintype == "multipart":  # a multipart with no usable boundary: its raw text
            ctype = "text/plain"
        data = _payload_bytes(part)
        if ctype in _CALENDAR_TYPES:
            self.calendars[data] = None
            if filename is not None and disposition == "attachment":
                self._add_attachment(part, ctype, filename, data)
        elif ctype in _BODY_TYPES and not is_file:
            text = decode_bytes(data, _charset(part, data)).replace("\r\n", "\n")
            (self.texts if ctype == "text/plain" else self.htmls).append(text)
        else:
            self._add_attachment(part, ctype, filename or _content_location(part), data)

    def _add_attachment(self, part: Message, ctype: str, filename: str | None, data: bytes) -> None:
        name = safe_filename(filename, default="attachment" + _DEFAULT_EXT.get(ctype, ""))
        if len(data) > self.max_attachment_bytes:
            self.problems.append(
                f"attachment {name!r} dropped: {len(data)} bytes, over the limit of {self.max_attachment_bytes} bytes"
                " (CRM_MAX_ATTACHMENT_BYTES)"
            )
            return
        content_id = message_id(str(part.get("content-id", "")))
        disposition = part.get_content_disposition()
        inline = disposition == "inline" or (disposition is None and content_id is not None)
        self.attachments.append(Attachment(name, ctype, data, inline=inline, content_id=content_id))

    def build(self) -> MessageBody:
        html = "\n".join(self.htmls) if self.htmls else None
        text = "\n".join(self.texts) if self.texts else html_to_text(html or "")
        return MessageBody(
            text=text,
            html=html,
            attachments=tuple(self.attachments),
            calendar_parts=tuple(self.calendars),
            problems=tuple(self.problems),
        )


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)""", re.IGNORECASE)


def _charset(part: Message, data: bytes) -> str | None:
    try:
        declared = part.get_content_charset()
    except Exception:  # RFC 2231 charset parameters in an unknown charset
        declared = None
    if declared is None and part.get_content_subtype() == "html":
        meta = _META_CHARSET.search(data[:4096])  # HTML mail often names its charset only in <meta>
        declared = meta.group(1).decode("ascii") if meta else None
    return declared


def _repair_8bit_params(part: Message) -> None:
    """Re-store raw 8-bit Content-Type / Content-Disposition values as decoded text; otherwise compat32
    turns every non-ASCII byte of a file name into U+FFFD."""
    for name in ("content-type", "content-disposition"):
        raw = [str(value) for key, value in part.raw_items() if key.lower() == name]
        if all(value.isascii() for value in raw):
            continue
        del part[name]
        for value in raw:
            part[name] = decode_bytes(value.encode("utf-8", "surrogateescape"), None)


def _content_location(part: Message) -> str | None:
    # Apple Mail and some webmailers name inline parts only by Content-Location.
    location = str(part.get("content-location", "")).strip()
    return location or None


def _filename(part: Message) -> str | None:
    """The part's file name: RFC 2231 (``filename*=``), ``name=`` of Content-Type, encoded words."""
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        return None
    if not name.isascii():  # raw 8-bit bytes compat32 kept as surrogate escapes
        name = decode_bytes(name.encode("utf-8", "surrogateescape"), None)
    return decode_words(name)


def _transfer_encoding(part: Message) -> str:
    value = str(part.get("content-transfer-encoding", "")).lower()
    return (re.findall(r"[a-z0-9-]+", value) or [""])[0]


def _payload_bytes(part: Message) -> bytes:
    """The part's content with its transfer encoding undone; broken base64 yields what decodes."""
    normalised = _transfer_encoding(part)
    if normalised == "base64":
        try:
            text = part.get_payload()
        except (TypeError, LookupError):  # 8-bit junk plus an RFC 2231 charset: compat32 cannot decode it
            text = None
        if isinstance(text, str):
            return lenient_b64(text.encode("ascii", "ignore"))
    data = part.get_payload(decode=True)  # undoes qp / uuencode when spelled exactly; else the raw bytes
    if not isinstance(data, bytes):
        return b""
    if normalised == "quoted-printable" and str(part.get("content-transfer-encoding")).lower() != normalised:
        # compat32 only undoes an exactly spelled CTE; "quoted-printable;" and the like arrive here raw.
        data = quopri.decodestring(data)
    return data


def _forwarded(part: Message) -> tuple[str, bytes]:
    """A forwarded message as ``(file name, bytes)``, named after its subject."""
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        data, inner = _payload_bytes(part), None
    else:
        data = inner.as_bytes(policy=_VERBATIM)
        cte = _transfer_encoding(part)
        if cte in ("base64", "quoted-printable"):
            # RFC 2046 forbids encoding message/rfc822, but clients do; compat32 then parsed the encoded
            # text itself as the message.
            data = lenient_b64(data) if cte == "base64" else quopri.decodestring(data)
            inner = None
    if inner is None:
        inner = BytesHeaderParser(policy=compat32).parsebytes(data)
    subject = one_line(decode_words(first_header(_header_map(inner), "subject")))
    # The subject becomes a file name: a "/" in it is not a path, keep the words on both sides.
    return re.sub(r"[/\\]", "_", subject or "forwarded") + ".eml", data
