"""Address headers → ``Address`` values: encoded display names (with commas), missing angle brackets,
IDN domains decoded so both spellings compare equal, Outlook's quoted names. An address over 254 characters
is dropped like one without a domain (unusable); a display name is cut at 300 characters (what a contact's
name can hold), so both backends store what the parser gives."""

from __future__ import annotations

import contextlib
import re
import unicodedata
from email.utils import getaddresses

from sync_service.parsing.charsets import EW_RUN, clean_text, decode_words, one_line
from sync_service.values import Address

MAX_ADDRESS_CHARS = 254  # RFC 5321 §4.5.3.1.3: a longer path cannot be used; contact_emails.email is String(320)
MAX_NAME_CHARS = 300  # contacts.name and leads.name are String(300); a longer display name is noise, cut there

_QUOTED_OR_WORDS = re.compile(rf'("(?:[^"\\]|\\.)*")|({EW_RUN.pattern})')

# The plain shapes that make up most address headers, read without ``getaddresses`` (which parses character by
# character): ``a@b.example``, ``Ann Lee <a@b.example>``, ``"Lee, Ann" <a@b.example>``, separated by commas.
# Anything else (comments, groups, quoted pairs, odd characters) goes to ``getaddresses``; the tests check
# that both read these shapes the same.
_DOT_ATOMS = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_ADDR_SPEC = rf"{_DOT_ATOMS}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_PHRASE_WORD = r'[^\s()<>@,;:\\"\[\]]+'
_PLAIN_ADDRESS = re.compile(
    rf'[ \t]*(?:({_ADDR_SPEC})|(?:"([^"\\\r\n]*)"|({_PHRASE_WORD}(?:[ \t]+{_PHRASE_WORD})*))[ \t]*<({_ADDR_SPEC})>)'
    r"[ \t]*(?:,|\Z)"
)


def plain_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """``getaddresses(values)`` for headers made only of the plain shapes above, else None."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        position, end = 0, len(value)
        while position < end:
            match = _PLAIN_ADDRESS.match(value, position)
            if match is None or match.end() == position:
                return None
            bare, quoted, words, angled = match.groups()
            if bare is not None:
                pairs.append(("", bare))
            else:
                pairs.append((quoted if quoted is not None else " ".join(words.split()), angled))
            position = match.end()
            if value[position - 1] == "," and position == end:
                return None  # a trailing comma: getaddresses has its own reading of an empty element
        if not value:
            return None
    return pairs


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


def parse_addresses(values: list[str]) -> tuple[Address, ...]:
    prepared = [_quote_encoded_words(v) for v in values if v]
    try:
        pairs = plain_addresses(prepared)
        if pairs is None:
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
    domain = normalize_domain(domain)
    if not sep or not local or not domain:
        return None
    email = clean_text(f"{local.lower()}@{domain}")
    if len(email) > MAX_ADDRESS_CHARS:  # no server delivers to it: as unusable as one without a domain
        return None
    name = one_line(decode_words(name))
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":  # Outlook writes 'Anna Berg'
        name = name[1:-1].strip()
    return Address(email=email, name=name[:MAX_NAME_CHARS].rstrip())


def normalize_domain(domain: str) -> str:
    """Lower-case, with IDNA ``xn--`` labels decoded, so both spellings of a domain compare equal."""
    labels = []
    for label in domain.strip().strip(".").lower().split("."):
        if label.startswith("xn--") and len(label) <= 63:
            with contextlib.suppress(UnicodeError):  # not valid punycode: keep the label as written
                label = label.encode("ascii").decode("idna").lower()
        labels.append(label)
    return unicodedata.normalize("NFC", ".".join(labels))
