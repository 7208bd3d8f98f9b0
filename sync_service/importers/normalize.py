"""Cell values of import files: names, lists, domains, email addresses, phones, amounts, dates.

Every parser raises ``ValueError`` with a one-line reason; the importer adds the line number
(``csvfile.at_line``). Text loses NUL and the other control characters (PostgreSQL cannot store NUL; an escape
sequence in a name would reach the admin's terminal). Domains and email domains come out in the form matching
compares (SPEC §3): Unicode, lower-case, IDNA ``xn--`` labels decoded — the same form as
``matching.domains.normalize_domain``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import idna

from sync_service.matching.domains import is_public_mail_domain, normalize_domain
from sync_service.matching.phones import to_e164
from sync_service.parsing.charsets import clean_text as storable_text

_LDH_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_BRACKETED_EMAIL = re.compile(r"[<(]\s*(?:mailto:|smtp:)?([^<>()\s]+@[^<>()\s]+?)\s*[>)]", re.IGNORECASE)
_AMOUNT = re.compile(r"^(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d{1,2})?$")
_MAX_AMOUNT = Decimal("999999999999.99")  # Numeric(14, 2)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DOTTED_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_LOCAL_PART_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f-\x9f<>(),;:\"\[\]\\]")
# C0 and C1 control characters and DEL, except those str.split() takes for whitespace (tab, line breaks, \x1c-\x1f,
# \x85): those become a space.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
MAX_EMAIL = 320  # ContactEmail, LeadEmail and User hold an address in a String(320)


def clean_text(cell: str) -> str:
    """Runs of whitespace (line breaks included) become one space; ends are stripped; NUL, other control
    characters and lone surrogates are removed (``charsets.clean_text``)."""
    return " ".join(_CONTROL.sub("", storable_text(cell)).split())


def name_key(name: str) -> str:
    """The case-insensitive key of a name (``Account.name_key``; CSV joins by name)."""
    return clean_text(name).lower()


def split_list(cell: str, separator: str = ";") -> list[str]:
    """``"a; b;;c "`` → ``["a", "b", "c"]``."""
    return [part.strip() for part in cell.split(separator) if part.strip()]


def hostname(text: str) -> str:
    """Validate a host name and return it in Unicode lower case (``xn--`` labels decoded)."""
    host = text.strip().rstrip(".").lower()
    if not host:
        raise ValueError("empty domain")
    labels = host.split(".")
    if len(labels) < 2:
        raise ValueError(f"'{text}' is not a domain name (it has no dot)")
    decoded = [_label(label, text) for label in labels]
    if labels[-1].isdigit():
        raise ValueError(f"'{text}' is an IP address, not a domain name")
    if len(".".join(_ascii(label) for label in decoded)) > 253:
        raise ValueError(f"'{text}' is too long for a domain name")
    return normalize_domain(".".join(decoded))


def _label(label: str, text: str) -> str:
    if label.isascii() and not label.startswith("xn--"):
        if not _LDH_LABEL.match(label):
            raise ValueError(f"'{text}' is not a valid domain name (label '{label}')")
        return label
    try:
        return idna.decode(idna.encode(label, uts46=True))
    except idna.IDNAError as exc:
        raise ValueError(f"'{text}' is not a valid domain name ({exc})") from exc


def _ascii(label: str) -> str:
    return label if label.isascii() else idna.encode(label).decode("ascii")


def account_domain(cell: str) -> str:
    """An account's domain as people write it: ``https://www.Acme.com/``, ``@acme.com`` → ``acme.com``."""
    text = _SCHEME.sub("", cell.strip())
    text = text.split("/", 1)[0].lstrip("@")
    if text.lower().startswith("www."):
        text = text[4:]
    domain = hostname(text)
    if is_public_mail_domain(domain):
        raise ValueError(f"'{domain}' is a public mail provider, not a company domain")
    return domain


def email_address(cell: str) -> str:
    """A loosely validated address (one ``@``, a dotted domain), lower-cased, domain IDN-normalised."""
    text = cell.strip()
    if text[:7].lower() == "mailto:":
        text = text[7:].split("?", 1)[0]
    if len(text) > MAX_EMAIL:
        raise ValueError(f"'{text[:40]}…' is {len(text)} characters, the longest e-mail address allowed is {MAX_EMAIL}")
    local, at, domain = text.rpartition("@")
    if not at or "@" in local or not local:
        raise ValueError(f"'{cell.strip()}' is not an email address")
    if _LOCAL_PART_FORBIDDEN.search(local):
        raise ValueError(f"'{cell.strip()}' is not an email address (bad characters before the @)")
    try:
        host = hostname(domain)
    except ValueError as exc:
        raise ValueError(f"'{cell.strip()}' is not an email address: {exc}") from exc
    return f"{local.lower()}@{host}"


def optional_email(cell: str) -> str | None:
    """``email_address`` for a cell that may be empty."""
    return email_address(cell) if cell.strip() else None


def outlook_email(cell: str) -> str | None:
    """An address from an Outlook export cell; None for an empty cell or an Exchange X.500 address.

    Outlook writes ``Jane Doe (jane@acme.com)``, ``Jane <jane@acme.com>``, ``SMTP:jane@acme.com`` or, for
    Exchange-internal entries, ``/o=ExchangeLabs/ou=…/cn=…`` which has no SMTP address to import.
    """
    text = cell.strip()
    if not text:
        return None
    bracketed = _BRACKETED_EMAIL.search(text)
    if bracketed:
        return email_address(bracketed.group(1))
    if "@" not in text and "/o=" in text.lower():
        return None
    if text[:5].lower() == "smtp:":
        text = text[5:]
    return email_address(text)


@dataclass(frozen=True, slots=True)
class Phone:
    kind: str
    raw: str
    e164: str | None

    @property
    def key(self) -> str:
        return self.e164 or clean_text(self.raw)


def phone(kind: str, cell: str, default_region: str) -> Phone:
    """The number as written plus its E.164 form (None when it is not a possible number)."""
    raw = clean_text(cell)
    if len(raw) > 100:
        raise ValueError(f"phone number '{raw[:20]}…' is too long")
    return Phone(kind, raw, to_e164(raw, default_region))


def unique_phones(phones: list[Phone]) -> tuple[Phone, ...]:
    """Drop repeats of the same number (same E.164, or same text when it has none)."""
    seen: set[str] = set()
    out = []
    for item in phones:
        if item.key not in seen:
            seen.add(item.key)
            out.append(item)
    return tuple(out)


def amount(cell: str) -> Decimal | None:
    """``1200.5``, ``1,200.50`` (comma thousands separators, dot decimals, at most 2 decimals); None if empty."""
    text = cell.strip()
    if not text:
        return None
    if not _AMOUNT.match(text):
        raise ValueError(f"amount '{text}' is not a number like 1200.50 or 1,200.50")
    value = Decimal(text.replace(",", "")).quantize(Decimal("0.01"))
    if value > _MAX_AMOUNT:
        raise ValueError(f"amount '{text}' is too large")
    return value


def day(cell: str) -> date | None:
    """ISO ``YYYY-MM-DD``, or ``DD.MM.YYYY`` (the dotted form is never month-first); None if empty.

    Slashed dates are refused: ``03/04/2025`` is March 4th in the US and April 3rd elsewhere.
    """
    text = cell.strip()
    if not text:
        return None
    try:
        if _ISO_DATE.match(text):
            return date.fromisoformat(text)
        dotted = _DOTTED_DATE.match(text)
        if dotted:
            return date(int(dotted.group(3)), int(dotted.group(2)), int(dotted.group(1)))
    except ValueError as exc:
        raise ValueError(f"date '{text}' does not exist ({exc})") from exc
    raise ValueError(f"date '{text}' must be written YYYY-MM-DD (or DD.MM.YYYY)")
