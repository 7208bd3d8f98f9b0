"""Is a calendar event a call or a meeting (SPEC §4), and which phone numbers does it name (SPEC §3.8)?

Pure functions over :class:`CalendarEvent`. An event is a **call** when a category says call / phone call,
its summary starts with the word "Call" or "Phone", or its location is a phone number or a ``tel:`` URI;
otherwise it is a **meeting**. Numbers are returned as written; E.164 normalisation belongs to matching.
"""

from __future__ import annotations

import re
from typing import Literal

import phonenumbers

from sync_service.values import CalendarEvent

__all__ = ["event_activity_type", "event_phone_numbers"]

_CALL_CATEGORY = re.compile(r"(phone|tele(phone)?)?[\s_-]*calls?|phone", re.IGNORECASE)
# "Call with ACME", "Phone: Bob", "call - ACME" but not "Callisto review" or "Phoneix".
_CALL_SUMMARY = re.compile(r"\s*(call|phone)\b", re.IGNORECASE)
# tel:+1-555-123-4567 (RFC 3966; visual separators tolerated, parameters such as ;ext= dropped).
_TEL_URI = re.compile(r"\btel:[ \t]*(\+?[0-9][0-9().\- \t/]*[0-9])", re.IGNORECASE)
# A location that is nothing but a phone number: digits, +, spaces and the usual separators, maybe an ext.
_PHONE_ONLY = re.compile(r"\+?[0-9(][0-9().\-\s/]*[0-9](\s*(x|ext\.?|extension)\s*[0-9]{1,6})?", re.I)
_DATE_LIKE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}")


def event_activity_type(event: CalendarEvent) -> Literal["call", "meeting"]:
    """``"call"`` or ``"meeting"`` by the rules of SPEC §4."""
    if any(_CALL_CATEGORY.fullmatch(category.strip()) for category in event.categories):
        return "call"
    if _CALL_SUMMARY.match(event.summary):
        return "call"
    location = event.location.strip()
    if location.lower().startswith("tel:") or _is_phone_number(location):
        return "call"
    return "meeting"


def event_phone_numbers(event: CalendarEvent) -> tuple[str, ...]:
    """Phone numbers as written: from the location (``tel:`` URIs, the whole location when it is a number,
    else international ``+…`` numbers inside it), then ``tel:`` URIs in the description. No duplicates."""
    location = event.location.strip()
    found = [match.group(1).strip() for match in _TEL_URI.finditer(location)]
    if not found and _is_phone_number(location):
        found.append(location)
    elif not found:
        found.extend(match.raw_string for match in phonenumbers.PhoneNumberMatcher(location, None))
    found.extend(match.group(1).strip() for match in _TEL_URI.finditer(event.description))
    return tuple(dict.fromkeys(number for number in found if number))


def _is_phone_number(text: str) -> bool:
    """True when the whole text is a phone number: a possible international number (``+`` or ``00``
    prefix, checked with ``phonenumbers``) or a plausible national one (7–15 digits, not a date)."""
    text = text.strip()
    if not text or not _PHONE_ONLY.fullmatch(text) or _DATE_LIKE.search(text):
        return False
    international = "+" + text[2:] if text.startswith("00") else text
    if international.startswith("+"):
        try:
            return phonenumbers.is_possible_number(phonenumbers.parse(international, None))
        except phonenumbers.NumberParseException:
            return False
    main = re.split(r"(?i)x|ext", text)[0]
    return 7 <= sum(ch.isdigit() for ch in main) <= 15
