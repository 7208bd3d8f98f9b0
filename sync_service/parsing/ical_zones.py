"""Time-zone definitions that cannot be read are left out, not the file (SPEC §6, audit 17a F5).

icalendar refuses a whole file when one VTIMEZONE holds a value it cannot read (``TZOFFSETFROM:+2500``,
``banana``), even a VTIMEZONE no event uses: every event of the file would be lost. When a file cannot be read,
``without_broken_timezones`` removes each VTIMEZONE block that does not parse on its own, so the file can be
read again. The events that name such a TZID are then read as events with an unknown TZID are: by the TZID's
name when it is an IANA or Windows one, else as UTC with a note (``ical._unknown_tzids``).

Pure: text in, text out; no I/O.
"""

from __future__ import annotations

import re

import icalendar

__all__ = ["without_broken_timezones"]

_BLOCK = re.compile(r"^BEGIN:VTIMEZONE[ \t]*\r?\n.*?^END:VTIMEZONE[ \t]*(?:\r?\n|\Z)", re.I | re.M | re.S)
_TZID = re.compile(r"^TZID(?:;[^:\r\n]*)?:([^\r\n]*)", re.I | re.M)


def without_broken_timezones(text: str) -> tuple[str, list[str]]:
    """``text`` without its unreadable VTIMEZONE blocks, and one line for each block left out (empty when
    none was: the file's trouble is elsewhere)."""
    dropped: list[str] = []

    def keep_or_drop(match: re.Match[str]) -> str:
        block = match.group(0)
        error = _unreadable(block)
        if error is None:
            return block
        tzid = _TZID.search(block)
        name = tzid.group(1).strip() if tzid else "?"
        dropped.append(f"time zone definition {name!r} ignored: {error}")
        return ""

    return _BLOCK.sub(keep_or_drop, text), dropped


def _unreadable(block: str) -> str | None:
    """Why icalendar cannot read this VTIMEZONE block alone (one line), or None when it can."""
    try:
        icalendar.Calendar.from_ical(f"BEGIN:VCALENDAR\r\n{block.rstrip()}\r\nEND:VCALENDAR\r\n")
    except Exception as exc:
        return (" ".join(str(exc).split()) or type(exc).__name__)[:200]
    return None
