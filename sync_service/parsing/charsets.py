"""Text decoding for mail: declared charsets (with the aliases mail clients really use), RFC 2047 encoded
words, lenient base64. Never raises on bad input: undecodable bytes become replacement characters."""

from __future__ import annotations

import binascii
import codecs
import contextlib
import re

# Labels mail clients write that Python does not know, or where a superset decodes what is really sent.
_CHARSET_ALIASES = {
    "windows-874": "cp874", "iso-8859-8-i": "iso-8859-8", "x-sjis": "cp932", "shift_jis": "cp932",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "gb2312": "gb18030", "gbk": "gb18030",
    "x-gbk": "gb18030", "big5": "big5hkscs", "iso-8859-1": "cp1252", "latin1": "cp1252",
    "x-mac-roman": "mac_roman", "unicode-1-1-utf-7": "utf-7", "x-unicode20utf8": "utf-8",
}  # fmt: skip
# Codecs that are text encodings to Python but never mail charsets; punycode is also quadratic in time.
_REFUSED_CODECS = frozenset({"punycode", "idna", "unicode-escape", "raw-unicode-escape", "undefined"})


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
                return clean_text(data.decode(candidate))
            except (UnicodeError, ValueError):
                pass
    # cp1252 rather than latin-1: it is what "latin-1" and undeclared 8-bit mail really is (WHATWG does the
    # same), and it turns 0x80–0x9F into quotes and dashes instead of invisible C1 controls.
    last = "cp1252" if codec in (None, "ascii") else codec
    try:
        return clean_text(data.decode(last, "replace"))
    except (UnicodeError, ValueError):  # a codec that fails even with errors="replace"
        return clean_text(data.decode("cp1252", "replace"))


def decode_text_file(raw: bytes) -> str:
    """A whole text file (a calendar, an address book) of unknown encoding: UTF-8 (a BOM allowed), UTF-16 with
    a BOM, else Windows-1252 (a superset of Latin-1 in what 8-bit exports really hold), with replacement."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16", errors="replace")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def clean_text(text: str) -> str:
    # NUL cannot be stored in PostgreSQL text; lone surrogates (from utf-7/utf-16 oddities) not even in UTF-8.
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def lenient_b64(data: bytes) -> bytes:
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
EW_RUN = re.compile(rf"{_ENCODED_WORD.pattern}(?:\s*{_ENCODED_WORD.pattern})*")


def _word_bytes(match: re.Match[str]) -> tuple[str, bytes]:
    charset = match.group(1).split("*", 1)[0]  # RFC 2231 language suffix: =?utf-8*en?Q?…?=
    encoding, payload = match.group(2)[0], match.group(2)[2:].encode("utf-8", "replace")
    if encoding in "bB":
        return charset, lenient_b64(payload)
    return charset, binascii.a2b_qp(payload, header=True)


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words; whitespace between adjacent words is dropped, as the RFC says."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pos = 0
    for run in EW_RUN.finditer(text):
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

def one_line(text: str) -> str:
    return clean_text(" ".join(text.split()))


def first_header(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""
