"""A fast structural split of well-formed MIME into the same ``Message`` tree the stdlib feed parser builds.

The stdlib ``email`` feed parser reads a message line by line, and compiles a new regular expression for
every multipart boundary; for a typical 11 KB message that is most of the cost of parsing it. Here each
header block is still parsed by the stdlib (``BytesHeaderParser``, ``compat32``), but bodies are cut with
``bytes.find`` on the boundary delimiter lines and payloads are set whole.

Only the shapes whose stdlib result is certain are handled: every multipart has a boundary, at least one
delimiter and its close delimiter; every header block is followed by a blank line (or ends the part); no part
is ``message/*`` or ``multipart/digest`` (the stdlib parses those bodies as messages). Anything else returns
``None`` and the caller runs the stdlib parser, so odd and damaged mail takes the one well-tested path.
``tests/parsing/test_mime_split.py`` checks that both paths give equal results, on fixtures and on
hypothesis-generated mail. Pure, no I/O.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

__all__ = ["header_end", "parse_header_block", "split_message"]

_MAX_DEPTH = 8  # deeper nesting goes to the stdlib parser (and its limits)
_HEADERS = BytesHeaderParser(policy=compat32)
_EOLS = (b"\r\n", b"\n", b"\r")
# A header field as the feed parser reads it: a name of printable characters, a colon, blanks (dropped), the
# rest of the line and its continuation lines (those starting with a blank).
_FIELD = re.compile(r"([\041-\071\073-\176]+):[ \t]*([^\n]*\n(?:[ \t][^\n]*\n)*)")


def split_message(raw: bytes) -> Message | None:
    """The ``compat32`` message tree of ``raw`` (leading line breaks already stripped), or ``None`` when
    the message is not of a shape this splitter handles."""
    try:
        return _part(raw, 0)
    except Exception:  # e.g. a Content-Type compat32 cannot split, a boundary that is not bytes
        return None


def _part(data: bytes, depth: int) -> Message | None:
    split = _header_block(data)
    if split is None:
        return None
    head, body = split
    msg = parse_header_block(head) or _HEADERS.parsebytes(head)
    if msg.get_payload():  # a line in the header block that is not a header: the stdlib reads it as body
        return None
    if depth and not msg.keys() and head.strip():
        return None
    ctype = msg.get_content_type()
    maintype = ctype.split("/", 1)[0]
    if maintype == "message" or ctype == "multipart/digest":
        return None
    if maintype != "multipart":
        msg.set_payload(body.decode("ascii", "surrogateescape"))
        return msg
    if depth >= _MAX_DEPTH:
        return None
    boundary = msg.get_boundary()
    if not boundary:
        return None
    pieces = _pieces(body, ("--" + boundary).encode("ascii", "surrogateescape"))
    if pieces is None:
        return None
    parts: list[Message] = []
    for piece in pieces:
        sub = _part(piece, depth + 1)
        if sub is None:
            return None
        parts.append(sub)
    msg.set_payload(parts)  # type: ignore[arg-type]  # compat32 keeps a multipart's parts as a list
    return msg


def parse_header_block(head: bytes) -> Message | None:
    """The ``compat32`` message of a clean header block (optionally ending with its empty line), as the feed
    parser builds it — the same raw names and values, the same unfolding — or ``None`` for anything the feed
    parser would treat specially: a bare CR, a continuation first, a line that is no header, a misplaced
    ``From `` line, text after the empty line. One regular expression match per header field."""
    text = head.decode("ascii", "surrogateescape")
    if "\r" in text and "\r" in text.replace("\r\n", ""):
        return None
    if not text.endswith("\n"):
        text += "\n"  # values lose their trailing line break anyway
    msg = Message()
    position = 0
    if text.startswith("From "):  # an mbox envelope line
        position = text.index("\n") + 1
        msg.set_unixfrom(text[: position - (2 if text[position - 2] == "\r" else 1)])
    while (field := _FIELD.match(text, position)) is not None:
        msg.set_raw(field[1], field[2].rstrip("\r\n"))
        position = field.end()
    return msg if text[position:] in ("", "\n", "\r\n") else None


def header_end(data: bytes) -> int:
    """Where a header block ends: after the first empty line (LF or CRLF), else the end of ``data``."""
    ends = [found + len(blank) for blank in (b"\n\n", b"\n\r\n") if (found := data.find(blank)) >= 0]
    return min(ends) if ends else len(data)


def _header_block(data: bytes) -> tuple[bytes, bytes] | None:
    """``(header block, body)``: the block ends at the first empty line, which belongs to it."""
    for eol in _EOLS:
        if data.startswith(eol):  # no headers at all
            return b"", data[len(eol) :]
    end = header_end(data)  # no empty line: the whole part is header block
    head = data[:end]
    if head.count(b"\r") != head.count(b"\r\n"):
        return None  # a bare CR is a line break to the stdlib: lines we would not see
    return head, data[end:]


def _pieces(body: bytes, delimiter: bytes) -> list[bytes] | None:
    """The parts between delimiter lines, each without the line break before its next delimiter (RFC 2046:
    it belongs to the delimiter). ``None`` without a first delimiter or without a close delimiter."""
    pieces: list[bytes] = []
    start: int | None = None  # where the current part begins
    position = 0
    while True:
        found = body.find(delimiter, position)
        if found < 0:
            return None  # no close delimiter
        position = found + len(delimiter)
        if found and body[found - 1] not in (0x0A, 0x0D):
            continue  # not at the start of a line
        rest = position
        close = body.startswith(b"--", rest)
        if close:
            rest += 2
        while rest < len(body) and body[rest] in (0x20, 0x09):
            rest += 1
        if rest < len(body):
            eol = next((e for e in _EOLS if body.startswith(e, rest)), None)
            if eol is None:
                continue  # "--boundaryX": some other line
            rest += len(eol)
        if start is not None:
            piece = body[start:found]
            if not piece:
                return None  # back-to-back delimiter lines: the stdlib has its own reading of those
            for eol in _EOLS:
                if piece.endswith(eol):
                    piece = piece[: -len(eol)]
                    break
            pieces.append(piece)
        if close:
            return pieces if start is not None else None
        start = rest
        position = rest
