"""The date of an email: its ``Date`` header, or else the time its last server received it. Pure.

``email.utils.parsedate_tz`` applies its own two-digit-year rule to any year below 100 *as a number*, so
``Mon, 1 Jan 0001`` came out as 2001, and ``55`` as 2055. Here the year is read as written:
- two digits (RFC 5322 §4.3, obs-year): 00–49 → 20xx, 50–99 → 19xx; three digits: + 1900;
  four digits: as they are;
- a date before 1970, past 9999 or not convertible to UTC (9999-12-31 at -1200) is no real mail date, and
  neither is one that cannot be parsed: ``received_date`` gives the best other date the message has, the
  newest ``Received`` header's; the pipeline falls back to the fetch time when there is none either.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_tz

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_YEAR_AFTER_MONTH = re.compile(rf"\b{_MONTH}[\s,-]+(\d+)\b", re.IGNORECASE)
FIRST_YEAR = 1970


def mail_date(value: str) -> datetime | None:
    """The UTC time of a ``Date`` header value; None when it is missing, unparsable or impossible."""
    if not value:
        return None
    try:
        parsed = parsedate_tz(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    year, offset = _year_as_written(value, parsed[0]), parsed[9]
    if year < FIRST_YEAR:
        return None
    try:
        zone = UTC if offset is None else timezone(timedelta(seconds=offset))  # none / -0000: UTC (RFC 5322)
        return datetime(year, *parsed[1:6], tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError):  # year 10000, day 31 of February, 9999-12-31 at -1200
        return None


def received_date(values: list[str]) -> datetime | None:
    """The date of the first (newest) ``Received`` header that has a usable one (it follows the last ';')."""
    for value in values:
        _, sep, when = value.rpartition(";")
        if sep and (found := mail_date(when.strip())) is not None:
            return found
    return None


def _year_as_written(value: str, parsed: int) -> int:
    """``parsed`` unless the year token after the month is the one it came from, read by its digit count."""
    match = _YEAR_AFTER_MONTH.search(value)
    if match is None:
        return parsed
    token = match.group(1)
    number = int(token)
    if number not in (parsed, parsed - 1900, parsed - 2000):
        return parsed  # not the year parsedate read: keep its reading
    if len(token) <= 2:
        return number + (2000 if number < 50 else 1900)
    if len(token) == 3:
        return number + 1900
    return number
