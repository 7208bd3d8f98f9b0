"""Address headers → ``Address`` values: encoded display names (with commas), missing angle brackets,
IDN domains decoded so both spellings compare equal, Outlook's quoted names."""

from __future__ import annotations

import contextlib
import re
import unicodedata
from email.utils import getaddresses

from sync_service.parsing.charsets import EW_RUN, clean_text, decode_words, one_line
from sync_service.values import Address

_QUOTED_OR_WORDS = re.compile(rf'("(?:[^"\\]|\\.)*")|({EW_RUN.pattern})')


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
    name = one_line(decode_words(name))
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":  # Outlook writes 'Anna Berg'
        name = name[1:-1].strip()
    return Address(email=clean_text(f"{local.lower()}@{domain}"), name=name)


def normalize_domain(domain: str) -> str:
    """Lower-case, with IDNA ``xn--`` labels decoded, so both spellings of a domain compare equal."""
    labels = []
    for label in domain.strip().strip(".").lower().split("."):
        if label.startswith("xn--") and len(label) <= 63:
            with contextlib.suppress(UnicodeError):  # not valid punycode: keep the label as written
                label = label.encode("ascii").decode("idna").lower()
        labels.append(label)
    return unicodedata.normalize("NFC", ".".join(labels))
