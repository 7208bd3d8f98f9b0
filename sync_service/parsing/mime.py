"""MIME parsing: raw RFC 5322 bytes → ``MessageHeaders`` / ``MessageBody`` value objects. Pure, no I/O.

Matching needs the headers of every message but the body only of messages that are logged, so the two are
parsed separately: ``parse_headers`` reads the header block only (cheap), ``parse_body`` does the full parse.
Both use the stdlib ``email`` package with the ``compat32`` policy (ARCHITECTURE: ``policy.default`` is 5×
slower and raises on fuzz input). compat32 is lenient but leaves the hard parts to us: it keeps 8-bit header
bytes as surrogate escapes, does not decode RFC 2047 words, and trusts whatever charset a sender declares.

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
import codecs
import contextlib
import quopri
import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from sync_service.errors import ParseError
from sync_service.parsing.filenames import safe_filename
from sync_service.parsing.html_text import html_to_text
from sync_service.values import Address, Attachment, MessageBody, MessageHeaders

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

# ---------------------------------------------------------------------------------------------- text decoding

# Labels mail clients write that Python does not know, or where a superset decodes what is really sent.
_CHARSET_ALIASES = {
    "windows-874": "cp874", "iso-8859-8-i": "iso-8859-8", "x-sjis": "cp932", "shift_jis": "cp932",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "gb2312": "gb18030", "gbk": "gb18030",
    "x-gbk": "gb18030", "big5": "big5hkscs", "iso-8859-1": "cp1252", "latin1": "cp1252",
    "x-mac-roman": "mac_roman", "unicode-1-1-utf-7": "utf-7", "x-unicode20utf8": "utf-8",
}  # fmt: skip
# Codecs that are text encodings to Python but never mail charsets; punycode is also quadratic in time.
_REFUSED_CODECS = frozenset({"punycode", "idna", "unicode-escape", "raw-unicode-escape", "undefined"})
_ASCII_CODECS = frozenset({"ascii"})


def _codec(charset: str | None) -> str | None:
    """The Python codec name for a declared charset, or None when unknown or unsafe."""
    if not charset:
        return None
    label = str(charset).strip().strip("\"'").lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, falling back to UTF-8, then Windows-1252 with replacement.

    Never raises. Unknown charsets are treated as undeclared.
    """
    codec = _codec(charset)
    for candidate in (codec, "utf-8"):
        if candidate:
            try:
                return _clean(data.decode(candidate))
            except (UnicodeError, ValueError):
                pass
    # cp1252 rather than latin-1: it is what "latin-1" and undeclared 8-bit mail really is (WHATWG does the
    # same), and it turns 0x80–0x9F into quotes and dashes instead of invisible C1 controls.
    last = "cp1252" if codec is None or codec in _ASCII_CODECS else codec
    try:
        return _clean(data.decode(last, "replace"))
    except (UnicodeError, ValueError):  # a codec that fails even with errors="replace"
        return _clean(data.decode("cp1252", "replace"))


def _clean(text: str) -> str:
    # NUL cannot be stored in PostgreSQL text; lone surrogates (from utf-7/utf-16 oddities) not even in UTF-8.
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _lenient_b64(data: bytes) -> bytes:
    """Decode as much base64 as possible: junk characters are skipped, padding ends the data (what follows
    it is junk too), a truncated last quantum is dropped."""
    with contextlib.suppress(binascii.Error):
        return binascii.a2b_base64(data)  # fast path: already skips line breaks and stray characters
    clean = re.sub(rb"[^A-Za-z0-9+/=]", b"", data).split(b"=", 1)[0]
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    return binascii.a2b_base64(clean + b"=" * (-len(clean) % 4))


# B words must be base64 to count as encoded words; "=?utf-8?B?!!?=" stays literal text.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bB]\?[A-Za-z0-9+/=]*|[qQ]\?[^?\s]*)\?=")
_EW_RUN = re.compile(rf"{_ENCODED_WORD.pattern}(?:\s*{_ENCODED_WORD.pattern})*")


def _word_bytes(match: re.Match[str]) -> tuple[str, bytes]:
    charset = match.group(1).split("*", 1)[0]  # RFC 2231 language suffix: =?utf-8*en?Q?…?=
    encoding, payload = match.group(2)[0], match.group(2)[2:].encode("utf-8", "replace")
    if encoding in "bB":
        return charset, _lenient_b64(payload)
    return charset, binascii.a2b_qp(payload, header=True)


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words; whitespace between adjacent words is dropped, as the RFC says."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pos = 0
    for run in _EW_RUN.finditer(text):
        out.append(text[pos : run.start()])
        out.append(_decode_run(run.group(0)))
        pos = run.end()
    out.append(text[pos:])
    return "".join(out)


def _decode_run(run: str) -> str:
    # Adjacent words in one charset are joined as bytes first: senders split multi-byte characters
    # across words although the RFC forbids it.
    chunks: list[tuple[str, bytes]] = []
    for match in _ENCODED_WORD.finditer(run):
        charset, data = _word_bytes(match)
        if chunks and chunks[-1][0].lower() == charset.lower():
            chunks[-1] = (charset, chunks[-1][1] + data)
        else:
            chunks.append((charset, data))
    return "".join(decode_bytes(data, charset) for charset, data in chunks)


# ---------------------------------------------------------------------------------------------- parsing


def _parse(raw: bytes, *, headers_only: bool) -> Message:
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        raise ParseError("empty message")
    raw = bytes(raw).lstrip(b"\r\n")
    if headers_only:  # do not even decode a body of many megabytes
        raw = raw[: _header_end(raw)]
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


def _header_end(raw: bytes) -> int:
    blank_line = re.search(rb"\r?\n\r?\n", raw)
    return blank_line.end() if blank_line else len(raw)


def _reparse_obsolete(raw: bytes, parser: BytesParser) -> Message:
    """RFC 5322 obsolete syntax allows blanks before the colon ("Subject  : hi"), which compat32 does not
    read as a header at all. Only tried when no header was found, so normal mail pays nothing."""
    end = _header_end(raw)
    return parser.parsebytes(_OBS_FIELD_NAME.sub(rb"\1:", raw[:end]) + raw[end:])


def _header_map(msg: Message) -> dict[str, list[str]]:
    """Header name (lower case) → values, unfolded, with raw 8-bit bytes decoded (UTF-8 or cp1252)."""
    headers: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        text = str(value)
        if not text.isascii():
            text = decode_bytes(text.encode("utf-8", "surrogateescape"), None)
        text = re.sub(r"[\r\n]+", " ", text).strip()
        headers.setdefault(str(name).strip().lower(), []).append(text)
    return headers


def _first(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""


# ---------------------------------------------------------------------------------------------- headers


def parse_headers(raw: bytes) -> MessageHeaders:
    """Parse the header block of a raw message (the body is not read)."""
    msg = _parse(raw, headers_only=True)
    headers = _header_map(msg)
    subject = _one_line(decode_words(_first(headers, "subject")))
    from_ = _addresses(headers.get("from", []))
    senders = _addresses(headers.get("sender", []))
    content_type = _content_type(msg)
    return MessageHeaders(
        message_id=_message_id(_first(headers, "message-id")),
        subject=subject,
        date=_date(_first(headers, "date")),
        from_=from_,
        to=_addresses(headers.get("to", [])),
        cc=_addresses(headers.get("cc", [])),
        bcc=_addresses(headers.get("bcc", [])),
        reply_to=_addresses(headers.get("reply-to", [])),
        sender=senders[0] if senders else None,
        in_reply_to=_message_ids(headers.get("in-reply-to", [])),
        references=_message_ids(headers.get("references", [])),
        conversation_id=_conversation_id(_first(headers, "thread-index")),
        automated_reason=automated_reason(headers, subject, from_, content_type),
        content_type=content_type,
        has_calendar=content_type in _CALENDAR_TYPES
        or "calendarmessage" in _first(headers, "content-class").lower(),
    )


def _one_line(text: str) -> str:
    return _clean(" ".join(text.split()))


def _content_type(msg: Message) -> str:
    try:
        return msg.get_content_type()
    except Exception:  # a Content-Type compat32 cannot even split; RFC 2045 says assume text/plain
        return "text/plain"


def _message_id(value: str) -> str | None:
    match = re.search(r"<([^<>]*)>", value)
    ident = re.sub(r"\s+", "", match.group(1) if match else value)
    return ident.strip("<>") or None


def _message_ids(values: list[str]) -> tuple[str, ...]:
    ids: list[str] = []
    for value in values:
        found = re.findall(r"<([^<>]+)>", value)
        # Without angle brackets (broken clients), keep the tokens that look like ids.
        candidates = found or [token for token in re.split(r"[\s,]+", value) if "@" in token]
        ids.extend(re.sub(r"\s+", "", c) for c in candidates)
    return tuple(dict.fromkeys(i for i in ids if i))


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:  # "-0000" or no zone: RFC 5322 says UTC is the best guess
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


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


# ---------------------------------------------------------------------------------------------- addresses

_QUOTED_OR_WORDS = re.compile(rf'("(?:[^"\\]|\\.)*")|({_EW_RUN.pattern})')


def _quote_encoded_words(value: str) -> str:
    """Decode encoded words into quoted strings *before* splitting the list, so ``=?utf-8?Q?Doe,_John?=``
    stays one display name instead of being cut at its comma."""

    def replace(match: re.Match[str]) -> str:
        quoted = match.group(1)
        if quoted is not None and "=?" not in quoted:
            return quoted
        text = re.sub(r"\\(.)", r"\1", quoted[1:-1]) if quoted is not None else match.group(0)
        return '"' + decode_words(text).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return _QUOTED_OR_WORDS.sub(replace, value)


def _addresses(values: list[str]) -> tuple[Address, ...]:
    prepared = [_quote_encoded_words(v) for v in values if v]
    try:
        pairs = getaddresses(prepared)
    except Exception:  # getaddresses has had IndexError bugs on garbage; fall back to bare addresses
        pairs = [("", found) for v in prepared for found in re.findall(r"[^\s<>,;:\"]+@[^\s<>,;:\"]+", v)]
    found: dict[str, Address] = {}
    for name, addr in pairs:
        address = _address(name, addr)
        if address and address.email not in found:
            found[address.email] = address
    return tuple(found.values())


def _address(name: str, addr: str) -> Address | None:
    addr = addr.strip().strip("<>").strip()
    if " " in addr or "\t" in addr:  # missing angle brackets: "John Doe john@example.com"
        tokens = addr.split()
        with_at = [i for i, token in enumerate(tokens) if "@" in token]
        if not with_at:
            return None
        addr = tokens.pop(with_at[-1]).strip("<>")
        name = name or " ".join(tokens)
    local, sep, domain = addr.rpartition("@")
    domain = _domain(domain)
    if not sep or not local or not domain:
        return None
    name = _one_line(decode_words(name)).strip("\"' ")
    return Address(email=_clean(f"{local.lower()}@{domain}"), name=name)


def _domain(domain: str) -> str:
    """Lower-case, with IDNA ``xn--`` labels decoded, so both spellings of a domain compare equal."""
    labels = []
    for label in domain.strip().strip(".").lower().split("."):
        if label.startswith("xn--") and len(label) <= 63:
            with contextlib.suppress(UnicodeError):  # not valid punycode: keep the label as written
                label = label.encode("ascii").decode("idna").lower()
        labels.append(label)
    return unicodedata.normalize("NFC", ".".join(labels))


# ---------------------------------------------------------------------------------------------- automated mail

# Subject prefixes of automatic replies: Outlook/Exchange ("Automatic reply:", "Out of Office:",
# "Out of Office AutoReply:") in the languages Outlook ships, plus common responders ("Autoreply:",
# "[Auto-Reply]"). Only a prefix counts, so "Re: Out of office plans" from a person is kept.
_AUTO_REPLY_WORDS = (
    r"automatic reply|auto[- ]?reply|auto[- ]?response|out of (?:the )?office(?: auto ?reply)?"
    r"|abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique|absence du bureau"
    r"|respuesta autom[aá]tica|fuera de la oficina|risposta automatica|fuori sede"
    r"|automatisch antwoord|afwezigheidsbericht|autosvar|automatisk svar|automatiskt svar"
    r"|automaattinen vastaus|resposta autom[aá]tica|automatyczna odpowied[zź]"
    r"|automatick[aá] odpov[eě][dď]|automatikus v[aá]lasz|otomatik yan[ıi]t"
    r"|автоматический ответ|автоответ|自动回复|自動回覆|自動応答|자동 회신"
)
_AUTO_REPLY_SUBJECT = re.compile(
    rf"^\s*(?:\[\s*(?:{_AUTO_REPLY_WORDS})\s*\]|(?:{_AUTO_REPLY_WORDS})\s*[:：])", re.IGNORECASE
)
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_PRESENCE_MARKERS = (  # header → reason; the value does not matter
    ("list-unsubscribe", "List-Unsubscribe header"),
    ("list-id", "List-Id header"),
    ("x-autoreply", "X-Autoreply header"),
    ("x-autorespond", "X-Autorespond header"),
    # Exchange stamps this on messages its inbox rules generate: out-of-office replies and rule forwards.
    ("x-ms-exchange-inbox-rules-loop", "X-MS-Exchange-Inbox-Rules-Loop header (Exchange automatic reply)"),
    ("x-failed-recipients", "X-Failed-Recipients header (bounce)"),
)


def automated_reason(
    headers: dict[str, list[str]], subject: str, from_: tuple[Address, ...], content_type: str
) -> str | None:
    """One line naming why this message is bulk or automated (SPEC §3 skip rules), or None.

    ``X-Auto-Response-Suppress`` alone is deliberately *not* a marker: Outlook puts it on ordinary mail.
    """
    for name, reason in _PRESENCE_MARKERS:
        if name in headers:
            return reason
    precedence = _token(_first(headers, "precedence"))
    if precedence in _BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    auto_submitted = _token(_first(headers, "auto-submitted"))
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    if _token(_first(headers, "x-autogenerated")) == "reply":
        return "X-Autogenerated: Reply"
    if content_type == "multipart/report":
        return "delivery report (multipart/report)"
    if _from_mailer_daemon(headers, from_):
        return "delivery report (mailer-daemon sender)"
    match = _AUTO_REPLY_SUBJECT.match(subject)
    if match:
        return f"auto-reply subject ({match.group(0).strip()})"
    return None


def _token(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _from_mailer_daemon(headers: dict[str, list[str]], from_: tuple[Address, ...]) -> bool:
    local = from_[0].email.partition("@")[0] if from_ else ""
    if local == "mailer-daemon":
        return True
    # An empty envelope sender with a postmaster / "Mail Delivery System" From is a bounce.
    null_return = any(v.strip() in ("<>", "") for v in headers.get("return-path", []))
    name = from_[0].name.lower() if from_ else ""
    return null_return and (local == "postmaster" or name.startswith("mail delivery"))


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
        if ctype == "message/delivery-status":
            return
        if part.get_content_maintype() == "message":  # rfc822, global (and partial, external-body)
            self._add_attachment(part, ctype, *_forwarded(part))
            return
        _repair_8bit_params(part)
        disposition = part.get_content_disposition()
        filename = _filename(part)
        is_file = filename is not None or disposition == "attachment"
        if part.get_content_maintype() == "multipart":  # a multipart with no usable boundary: its raw text
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
                f"attachment {name!r} dropped: {len(data)} bytes, limit {self.max_attachment_bytes}"
            )
            return
        content_id = _message_id(str(part.get("content-id", "")))
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
            return _lenient_b64(text.encode("ascii", "ignore"))
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
            data = _lenient_b64(data) if cte == "base64" else quopri.decodestring(data)
            inner = None
    if inner is None:
        inner = BytesHeaderParser(policy=compat32).parsebytes(data)
    subject = _one_line(decode_words(_first(_header_map(inner), "subject")))
    # The subject becomes a file name: a "/" in it is not a path, keep the words on both sides.
    return re.sub(r"[/\\]", "_", subject or "forwarded") + ".eml", data
