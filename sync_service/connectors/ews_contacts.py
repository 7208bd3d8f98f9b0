"""Outlook contacts (exchangelib ``Contact``) → vCard 3.0 bytes, read by ``sync_service.parsing.vcard``. Pure.

Only what the CRM uses is carried: name parts, display name, company, job title, the SMTP addresses
(EmailAddress1–3; Exchange-internal X.500 addresses are left out) and phone numbers with their kind.
"""

from __future__ import annotations

from typing import Any

# EWS PhoneNumberKey → vCard TEL TYPE ("Entry (PhoneNumber)" in the EWS reference).
_PHONE_TYPES = {
    "BusinessPhone": "WORK,VOICE",
    "BusinessPhone2": "WORK,VOICE",
    "CompanyMainPhone": "WORK,VOICE",
    "AssistantPhone": "WORK,VOICE",
    "Callback": "VOICE",
    "MobilePhone": "CELL",
    "CarPhone": "CELL",
    "RadioPhone": "CELL",
    "HomePhone": "HOME,VOICE",
    "HomePhone2": "HOME,VOICE",
    "BusinessFax": "WORK,FAX",
    "HomeFax": "HOME,FAX",
    "OtherFax": "FAX",
    "Pager": "PAGER",
    "PrimaryPhone": "PREF,VOICE",
    "OtherTelephone": "VOICE",
    "Isdn": "ISDN",
    "Telex": "X-TELEX",
    "TtyTddPhone": "TEXTPHONE",
}

# The properties GetItem returns for each contact.
FIELDS = (
    "display_name",
    "given_name",
    "middle_name",
    "surname",
    "company_name",
    "job_title",
    "email_addresses",
    "phone_numbers",
)


def _escape(value: str) -> str:
    """RFC 2426 text value escaping (backslash, comma, semicolon, newline)."""
    return (
        value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\r\n", "\\n").replace("\n", "\\n")
    )


def _text(value: Any) -> str:
    return " ".join(str(value or "").split())


def _emails(contact: Any) -> list[str]:
    found: list[str] = []
    entries = sorted(contact.email_addresses or (), key=lambda e: str(getattr(e, "label", "")))
    for entry in entries:
        email = _text(getattr(entry, "email", ""))
        if email.lower().startswith("smtp:"):
            email = email[5:]
        if "@" in email and email.lower() not in (f.lower() for f in found):
            found.append(email)
    return found


def to_vcard(contact: Any) -> bytes:
    """One ``BEGIN:VCARD`` … ``END:VCARD`` block for an Outlook contact."""
    given, middle, surname = _text(contact.given_name), _text(contact.middle_name), _text(contact.surname)
    company, emails = _text(contact.company_name), _emails(contact)
    full = _text(contact.display_name) or " ".join(p for p in (given, middle, surname) if p) or company
    full = full or (emails[0] if emails else "")
    lines = [
        "BEGIN:VCARD",
        "VERSION:3.0",
        f"UID:{_escape(str(contact.id))}",
        f"FN:{_escape(full)}",
        f"N:{_escape(surname)};{_escape(given)};{_escape(middle)};;",
    ]
    if company:
        lines.append(f"ORG:{_escape(company)}")
    if _text(contact.job_title):
        lines.append(f"TITLE:{_escape(_text(contact.job_title))}")
    lines.extend(f"EMAIL;TYPE=INTERNET:{_escape(email)}" for email in emails)
    for entry in contact.phone_numbers or ():
        number = _text(getattr(entry, "phone_number", ""))
        if number:
            kind = _PHONE_TYPES.get(str(getattr(entry, "label", "")), "VOICE")
            lines.append(f"TEL;TYPE={kind}:{_escape(number)}")
    lines.append("END:VCARD")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
