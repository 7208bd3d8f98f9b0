"""Microsoft Graph ``contact`` JSON → vCard 3.0 bytes (RFC 2426), read by :mod:`sync_service.parsing.vcard`.

Pure: no I/O. Follows the contact resource (https://learn.microsoft.com/graph/api/resources/contact):
names (``displayName``, ``givenName``, ``middleName``, ``surname``), ``companyName`` / ``department``,
``jobTitle``, ``emailAddresses`` (``[{name, address}]``), ``businessPhones`` / ``homePhones`` (lists) and
``mobilePhone``. The pipeline then fills CRM contacts matched by email address, or creates contacts (or, under
``all``, leads) as the policy ``CRM_AUTO_CREATE`` allows (:mod:`sync_service.pipeline.contacts`,
:mod:`sync_service.matching.cards`).
"""

from __future__ import annotations

from typing import Any

_PHONES = (("businessPhones", "WORK,VOICE"), ("mobilePhone", "CELL"), ("homePhones", "HOME,VOICE"))


def _escape(value: Any) -> str:
    """A TEXT value: backslash, comma, semicolon and line breaks escaped; control characters dropped."""
    text = str(value or "").replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch == "\n" or ch >= " ")
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n").strip()


def _emails(contact: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for entry in contact.get("emailAddresses") or []:
        address = str((entry or {}).get("address") or "").strip() if isinstance(entry, dict) else ""
        if "@" in address and not address.startswith("/") and " " not in address and address not in found:
            found.append(address)  # Exchange legacy DNs ("/o=ExchangeLabs/…") are not mail addresses
    return found


def _phones(contact: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for field, kind in _PHONES:
        value = contact.get(field)
        for number in value if isinstance(value, list) else [value]:
            if isinstance(number, str) and number.strip():
                found.append((kind, number.strip()))
    return found


def contact_to_vcard(contact: dict[str, Any]) -> bytes:
    """One Graph contact as a vCard; ``ValueError`` when it has neither a name, a company nor an email."""
    emails = _emails(contact)
    given, middle, family = (str(contact.get(k) or "").strip() for k in ("givenName", "middleName", "surname"))
    company = str(contact.get("companyName") or "").strip()
    full = str(contact.get("displayName") or "").strip() or " ".join(p for p in (given, middle, family) if p)
    full = full or company or (emails[0] if emails else "")
    if not full:
        raise ValueError("contact has no name, company or email address")
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{_escape(contact.get('id'))}", f"FN:{_escape(full)}"]
    title, suffix = str(contact.get("title") or ""), str(contact.get("generation") or "")
    lines.append("N:" + ";".join(_escape(p) for p in (family, given, middle, title, suffix)))
    if company or contact.get("department"):
        lines.append(f"ORG:{_escape(company)};{_escape(contact.get('department'))}")
    if contact.get("jobTitle"):
        lines.append(f"TITLE:{_escape(contact['jobTitle'])}")
    lines.extend(f"EMAIL;TYPE=INTERNET:{_escape(address)}" for address in emails)
    lines.extend(f"TEL;TYPE={kind}:{_escape(number)}" for kind, number in _phones(contact))
    if contact.get("lastModifiedDateTime"):
        lines.append(f"REV:{_escape(contact['lastModifiedDateTime'])}")
    lines.append("END:VCARD")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
