"""An address book's text → its cards' texts, without the binary properties crm-sync never reads. Pure.

Why: vobject unfolds a folded value in time quadratic in its length (``getLogicalLines`` copies the whole
logical line once per physical line), so one card with a 30 MB base64 ``PHOTO`` took 11 minutes (audit 17a F2).
crm-sync reads names, organisations, titles, e-mail addresses, phones and UIDs — never photos, logos, sounds or
keys. Those properties (``PHOTO``, ``LOGO``, ``SOUND``, ``KEY``, with a group prefix such as ``item1.PHOTO``),
and any other property that declares base64 data (Outlook's ``X-MS-CARDPICTURE``), are left out here, with their
continuation lines, in one linear pass, before vobject sees the text.

What is left of a card is capped (``MAX_CARD_CHARS``): a card longer than that (a huge ``NOTE``) is reported as
too large instead of being parsed, and its lines are not kept. The cap bounds vobject's quadratic work per card.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# 256,000 characters is hundreds of times what a card's text (without pictures) ever holds; vobject reads even a
# single folded value of that length in about 20 ms.
MAX_CARD_CHARS = 256_000
# Properties with binary (or key) data crm-sync never reads.
_DROPPED = frozenset({"PHOTO", "LOGO", "SOUND", "KEY"})
# Properties crm-sync reads: kept whatever their parameters say.
_READ = frozenset({"BEGIN", "END", "VERSION", "N", "FN", "ORG", "TITLE", "EMAIL", "TEL", "UID"})
# ``[group.]NAME`` then ``;`` parameters or ``:`` value.
_PROPERTY = re.compile(r"[ \t]*(?:[A-Za-z0-9-]+\.)?([A-Za-z0-9-]+)[;:]")
# Base64 declared in the parameters: ``ENCODING=b``, ``ENCODING=BASE64``, or vCard 2.1's bare ``;BASE64``.
_BASE64 = re.compile(r";\s*(?:ENCODING\s*=\s*\"?(?:b|base64)\"?|base64)\s*(?=[;:])", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CardText:
    """One ``BEGIN:VCARD`` … ``END:VCARD`` block: its number, its first line, its text (binary properties left
    out) and its length in characters; ``too_large``: the text passed ``MAX_CARD_CHARS`` and was not kept."""

    number: int
    line: int
    text: str
    size: int
    too_large: bool = False


class _Card:
    def __init__(self, start: int) -> None:
        self.start = start
        self.lines: list[str] = []
        self.size = 0
        self.dropping = False  # inside a left-out property: its continuation lines go too

    def add(self, line: str) -> None:
        self.size += len(line) + 2
        if self.size <= MAX_CARD_CHARS:
            self.lines.append(line)
        else:
            self.lines = []  # nothing of a card too large is parsed: its text is not kept either

    def done(self, number: int, terminated: bool) -> CardText:
        too_large = self.size > MAX_CARD_CHARS
        text = "" if too_large else "\r\n".join(self.lines) + ("\r\n" if terminated else "")
        return CardText(number, self.start, text, self.size, too_large)


def split_cards(text: str) -> list[CardText]:
    """Each block from ``BEGIN:VCARD`` to ``END:VCARD`` (or, unterminated, to the next ``BEGIN:VCARD`` or the end:
    kept so that it is reported, not silently merged), binary properties left out."""
    cards: list[CardText] = []
    current: _Card | None = None
    for line_number, line in enumerate(text.splitlines(), start=1):
        keyword = line.strip().upper()
        if keyword == "BEGIN:VCARD":
            if current is not None:
                cards.append(current.done(len(cards) + 1, terminated=False))
            current = _Card(line_number)
            current.add(line)
            continue
        if current is None:
            continue
        if keyword == "END:VCARD":
            current.add(line)
            cards.append(current.done(len(cards) + 1, terminated=True))
            current = None
        elif not _left_out(current, line):
            current.add(line)
    if current is not None:
        cards.append(current.done(len(cards) + 1, terminated=False))
    return cards


def _left_out(card: _Card, line: str) -> bool:
    """Whether ``line`` belongs to a binary property (which it may start); updates ``card.dropping``."""
    if card.dropping and (not line.strip() or line[0] in " \t" or ":" not in line):
        # A folded line, a blank line, or a line that is no property (vCard 2.1 base64 written unindented).
        return True
    found = _PROPERTY.match(line)
    name = found.group(1).upper() if found else ""
    card.dropping = name in _DROPPED or (name not in _READ and _declares_base64(line))
    return card.dropping


def _declares_base64(line: str) -> bool:
    head = line.split(":", 1)[0] + ":"
    return _BASE64.search(head) is not None
