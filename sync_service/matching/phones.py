"""Phone numbers to E.164 (SPEC §3.8), the form the ``CandidateIndex`` phone keys use.

Accepts what calendars and address books hold: ``tel:`` URIs (RFC 3966, with ``;ext=`` or
``;phone-context=``), spaces, dashes, dots, brackets, a national trunk ``(0)``, and extensions written
``x123`` / ``ext. 5`` / ``#5``. The extension is dropped: a switchboard number identifies the company line.
"""

from __future__ import annotations

import re

import phonenumbers

# What a written phone number may contain once a tel: prefix and URI parameters are gone. Anything with
# other letters ("Room 312", "Building 2") is a location, not a number, even if digits can be pulled out.
_PHONE_TEXT = re.compile(
    r"^\+?[\d\s().\-/]+(?:\s*(?:ext\.?|extension|x|#)\s*\d+)?$",
    re.IGNORECASE,
)
_MIN_DIGITS = 5


def to_e164(raw: str, default_region: str = "US") -> str | None:
    """``"(202) 555-0123 x12"`` → ``"+12025550123"``; None when it is not a possible phone number."""
    text = raw.strip()
    number_part = text
    if text[:4].lower() == "tel:":
        text = "tel:" + text[4:]  # phonenumbers only recognises the lower-case scheme
        number_part = text[4:].split(";", 1)[0]
    if not _looks_like_phone(number_part):
        return None
    found = _parse(text, default_region.upper() or None)
    if found is None and number_part.lstrip().startswith("00"):
        # "0049 30 …": 00 is the international prefix of most of the world, though not of the default region
        # (the US dials 011; no national number there starts with 00).
        found = _parse("+" + number_part.lstrip()[2:], None)
    return found


def _parse(text: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    # A local-only number ("555-0100" with no area code) is possible to dial nearby but has no E.164 form:
    # "+15550100" would be no number at all, and could never meet the same line written in full.
    if phonenumbers.is_possible_number_with_reason(parsed) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _looks_like_phone(text: str) -> bool:
    text = text.strip()
    if not _PHONE_TEXT.match(text):
        return False
    return sum(ch.isdigit() for ch in text) >= _MIN_DIGITS
