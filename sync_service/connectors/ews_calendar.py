"""Exchange calendar items → iCalendar bytes, and the calendar folder's cursor. Pure: no network.

One raw item per meeting series (or single meeting): the occurrences a CalendarView returned for one
``UID``, as a ``VCALENDAR`` with one ``VEVENT`` each. Occurrences and exceptions carry ``RECURRENCE-ID`` = the
occurrence's original start — the key a Maildir ``.ics``, a CalDAV server or an invitation email of the same
series produces when it is expanded (``sync_service.parsing.ical``) — so all sources meet on one activity per
occurrence (SPEC §3). For a timed occurrence that is the original start in UTC. For an all-day occurrence it is
a date: the original start's date *in the series' own time zone* (``StartTimeZone``), which is the date of
the occurrence's DTSTART when it was not moved. Exchange gives the original start as the UTC instant of the
local midnight, so east of UTC its UTC date is the day before: until schema revision 0015 that date was
used, one day early (``crm_store/migrations/versions/0015_ews_all_day_recurrence_ids.py`` re-keys what was
stored so). A cancelled
occurrence says ``STATUS:CANCELLED``; a deleted one is simply absent (the pipeline cancels what a snapshot no
longer holds). The bytes are deterministic, so their digest is the item's version.

Calendar cursor (``ewscal1.`` + base64url(zlib(JSON))): ``{"s": SyncFolderItems sync state, "d": the day
the sync window was anchored on, "u": {series key: digest}, "c": listing complete}``. SyncFolderItems on the
folder is the cheap "did anything change?" probe; the CalendarView is read only when it reports a change,
when the window moved to a new day, or when the previous listing was cut into pages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import icalendar

from sync_service.parsing.html_text import html_to_text

log = logging.getLogger(__name__)
CURSOR_PREFIX = "ewscal1."
_KEY_LIMIT = 500  # RawItem.external_id holds 1000 characters; longer UIDs are hashed


@dataclass
class CalendarCursor:
    sync_state: str | None = None
    day: str = ""
    digests: dict[str, str] = field(default_factory=dict)
    complete: bool = False

    def encode(self) -> str:
        payload = {"s": self.sync_state, "d": self.day, "u": self.digests, "c": self.complete}
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return CURSOR_PREFIX + base64.urlsafe_b64encode(zlib.compress(raw, 6)).decode("ascii")

    @classmethod
    def decode(cls, cursor: str | None) -> CalendarCursor:
        """The cursor's state; an absent or undecodable cursor is the empty state (a full listing)."""
        if not cursor or not cursor.startswith(CURSOR_PREFIX):
            return cls()
        try:
            payload = json.loads(zlib.decompress(base64.urlsafe_b64decode(cursor[len(CURSOR_PREFIX) :])))
            digests = {str(k): str(v) for k, v in dict(payload["u"]).items()}
            return cls(payload["s"] or None, str(payload["d"]), digests, bool(payload["c"]))
        except (ValueError, TypeError, KeyError, zlib.error):
            log.warning("ignoring an undecodable EWS calendar cursor; listing the whole window")
            return cls()


def series_key(item: Any) -> str:
    """The external id of an item's series: its iCalendar UID (hashed when very long)."""
    uid = str(getattr(item, "uid", None) or "").strip()
    if not uid:  # no UID (rare, very old items): the item stands alone
        return "ews-id:" + hashlib.sha256(str(item.id).encode()).hexdigest()
    return uid if len(uid) <= _KEY_LIMIT else "sha256:" + hashlib.sha256(uid.encode()).hexdigest()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:40]


def group_series(items: Iterable[Any], cap: int) -> dict[str, bytes]:
    """``{series key: iCalendar bytes}``; at most ``cap`` occurrences per series (the earliest)."""
    groups: dict[str, list[Any]] = {}
    for item in items:
        groups.setdefault(series_key(item), []).append(item)
    result = {}
    for key, members in groups.items():
        members.sort(key=lambda i: (_sort_time(i), str(i.id)))
        if len(members) > cap:
            log.warning("series %s has %d occurrences in the sync window; first %d kept", key, len(members), cap)
        result[key] = to_icalendar(members[:cap])
    return result


def _sort_time(item: Any) -> datetime:
    value = _when(getattr(item, "start", None))
    if isinstance(value, datetime):
        return value
    return (
        datetime.combine(value, datetime.min.time(), UTC)
        if isinstance(value, date)
        else datetime.min.replace(tzinfo=UTC)
    )


def _when(value: Any) -> datetime | date | None:
    """exchangelib EWSDateTime / EWSDate → stdlib UTC datetime / date."""
    if isinstance(value, datetime):
        return datetime.fromtimestamp(value.timestamp(), UTC)
    if isinstance(value, date):
        return date(value.year, value.month, value.day)
    return None


def _address(mailbox: Any) -> tuple[str, str] | None:
    email = str(getattr(mailbox, "email_address", None) or "").strip()
    if email.lower().startswith("smtp:"):
        email = email[5:]
    return (email, str(getattr(mailbox, "name", None) or "")) if "@" in email else None


def _cal_address(mailbox: Any, role: str | None = None) -> icalendar.vCalAddress | None:
    found = _address(mailbox)
    if found is None:
        return None
    address = icalendar.vCalAddress(f"mailto:{found[0]}")
    if found[1]:
        address.params["CN"] = icalendar.vText(found[1])
    if role:
        address.params["ROLE"] = icalendar.vText(role)
    return address


def _description(body: Any) -> str:
    if not body:
        return ""
    text = str(body)
    return html_to_text(text) if type(body).__name__ == "HTMLBody" else text


def _recurrence_id(item: Any, start: datetime | date | None) -> datetime | date | None:
    """The ``RECURRENCE-ID`` of an occurrence or exception (``None`` for a single item): its original start, in
    UTC for a timed occurrence, as a date for an all-day one (``all_day_original``)."""
    if getattr(item, "type", None) not in ("Occurrence", "Exception"):
        return None
    original = item.original_start or item.recurrence_id
    if isinstance(start, date) and not isinstance(start, datetime):
        if isinstance(original, datetime):
            return all_day_original(original, getattr(item, "_start_timezone", None))
        return start
    return _when(original) or start


def all_day_original(original: datetime, zone: tzinfo | None) -> date:
    """The date an all-day occurrence had before it was moved, from its original start (the UTC instant of
    that day's midnight in the series' time zone): the date in ``zone``, the item's ``StartTimeZone``.

    exchangelib turns an all-day item's start into a date the same way (``start.astimezone(zone).date()``,
    ``CalendarItem.from_xml``), so an unmoved occurrence gets ``RECURRENCE-ID`` = its ``DTSTART``, as in any
    iCalendar series. Without a zone (a Windows time zone id exchangelib does not know, e.g. a "Customized
    Time Zone" of an imported event) exchangelib reads the start in the host's local zone, and so does this
    (``astimezone(None)``): the key then stays consistent with the item's own start date, which is all that
    is known."""
    local = original.astimezone(zone)
    return date(local.year, local.month, local.day)


def _vevent(item: Any) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", str(getattr(item, "uid", None) or series_key(item)))
    start, end = _when(item.start), _when(item.end)
    recurrence_id = _recurrence_id(item, start)
    if recurrence_id is not None:
        event.add("recurrence-id", recurrence_id)
    event.add("dtstamp", _when(getattr(item, "last_modified_time", None)) or _sort_time(item))
    if start is not None:
        event.add("dtstart", start)
    if isinstance(end, date) and not isinstance(end, datetime):
        if isinstance(start, date) and not isinstance(start, datetime):
            # exchangelib takes 24 hours off the end to find the last day: a one-day event on the day the clocks
            # go forward (23 hours) would end the day before it starts.
            end = max(end, start)
        end += timedelta(days=1)  # exchangelib gives the last day of an all-day event; DTEND is exclusive
    if end is not None:
        event.add("dtend", end)
    event.add("summary", str(item.subject or ""))
    for name, value in (("location", item.location), ("description", _description(item.body))):
        if value:
            event.add(name, str(value))
    if item.categories:
        event.add("categories", [str(c) for c in item.categories])
    organizer = _cal_address(item.organizer)
    if organizer is not None:
        event.add("organizer", organizer)
    for attendees, role in ((item.required_attendees, "REQ-PARTICIPANT"), (item.optional_attendees, "OPT-PARTICIPANT")):
        for attendee in attendees or ():
            address = _cal_address(getattr(attendee, "mailbox", None), role)
            if address is not None:
                event.add("attendee", address)
    event.add("status", "CANCELLED" if item.is_cancelled else "CONFIRMED")
    event.add("sequence", int(item.appointment_sequence_number or 0))
    return event


def to_icalendar(items: Sequence[Any]) -> bytes:
    """One ``VCALENDAR`` holding one ``VEVENT`` per item (single, occurrence or exception)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//crm-sync//EWS connector//EN")
    calendar.add("version", "2.0")
    for item in items:
        calendar.add_component(_vevent(item))
    return bytes(calendar.to_ical())


# The properties GetItem returns for each occurrence (FindItem cannot return UID or attendees).
FIELDS = (
    "uid",
    "recurrence_id",
    "original_start",
    "start",
    "end",
    "is_all_day",
    "type",
    "subject",
    "location",
    "body",
    "categories",
    "organizer",
    "required_attendees",
    "optional_attendees",
    "is_cancelled",
    "appointment_sequence_number",
    "last_modified_time",
    "_start_timezone",
    "_end_timezone",
)
