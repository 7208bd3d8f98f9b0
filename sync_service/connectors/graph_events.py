"""Microsoft Graph ``event`` JSON → iCalendar bytes (one VEVENT), keyed like an ``.ics`` of the same meeting.

Pure: no I/O. Follows the event resource (https://learn.microsoft.com/graph/api/resources/event):
``calendarView/delta`` returns single instances, occurrences and exceptions — one raw item each, and each
is a full snapshot of that one event (a later ``@removed`` cancels it).

The key must equal what :mod:`sync_service.parsing.ical` derives from an ``.ics`` export or an emailed
invitation of the same meeting, so that both are one activity (SPEC §3):

- UID: ``iCalUId`` is Exchange's PidLidGlobalObjectId in hex, which "is different for each occurrence in a
  recurring series" (the instance date sits in bytes 16–19). The iCalendar UID is derived from it as
  [MS-OXCICAL] does on export: the embedded original UID when the meeting came from iCalendar
  (``vCal-Uid`` data), else the hex of the *clean* global object id (instance date zeroed).
- RECURRENCE-ID: for occurrences and exceptions, ``originalStart`` in UTC (a date for all-day events).
- ``isCancelled`` → ``STATUS:CANCELLED``; organizer, attendees (with role and answer), categories, location.
- Times: ``start`` / ``end`` are ``dateTimeTimeZone`` values (UTC unless a ``Prefer: outlook.timezone`` was
  sent); any IANA or Windows zone name is honoured, unknown ones are read as UTC.
DTSTAMP is the event's ``lastModifiedDateTime``, so the same event always gives the same bytes.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from sync_service.parsing.html_text import html_to_text

PRODID = "-//crm-sync//Microsoft Graph connector//EN"
_GOID_CLASS = bytes.fromhex("040000008200E00074C5B7101A82E008")  # [MS-OXOCAL] 2.2.1.27 Byte Array ID
_VCAL_UID = b"vCal-Uid\x01\x00\x00\x00"
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")
_UTC_NAMES = {"UTC", "Z", "GMT", "ETC/UTC", "COORDINATED UNIVERSAL TIME"}
_ROLES = {"required": "REQ-PARTICIPANT", "optional": "OPT-PARTICIPANT", "resource": "NON-PARTICIPANT"}
_ANSWERS = {"accepted": "ACCEPTED", "declined": "DECLINED", "tentativelyaccepted": "TENTATIVE",
            "organizer": "ACCEPTED", "none": "NEEDS-ACTION", "notresponded": "NEEDS-ACTION"}  # fmt: skip


def series_uid(ical_uid: str) -> str:
    """The iCalendar UID of a Graph ``iCalUId`` (see the module docstring); other values are kept as they are."""
    try:
        raw = bytes.fromhex(ical_uid)
    except ValueError:
        return ical_uid
    if len(raw) < 40 or not raw.startswith(_GOID_CLASS):
        return ical_uid
    size = int.from_bytes(raw[36:40], "little")
    data = raw[40 : 40 + size]
    if data.startswith(_VCAL_UID):
        original = data[len(_VCAL_UID) :].split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
        if original:
            return original
    return (raw[:16] + bytes(4) + raw[20:]).hex().upper()


def zone(name: str | None) -> tzinfo:
    """An IANA or Windows time zone name → tzinfo; UTC when empty or unknown."""
    name = (name or "").strip()
    if not name or name.upper() in _UTC_NAMES:
        return UTC
    for candidate in (name, WINDOWS_TO_OLSON.get(name, "")):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return UTC


def parse_stamp(value: str, default_zone: tzinfo = UTC) -> datetime:
    """An ISO 8601 date-time as Graph writes it (7-digit fractions, ``Z`` or an offset, or none)."""
    match = _STAMP.match(value.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 date-time: {value!r}")
    head, fraction, offset = match.groups()
    parsed = datetime.fromisoformat(head + (f".{fraction[:6]:0<6}" if fraction else ""))
    if offset is None:
        return parsed.replace(tzinfo=default_zone)
    if offset == "Z":
        return parsed.replace(tzinfo=UTC)
    return datetime.fromisoformat(parsed.isoformat() + offset[:3] + ":" + offset[-2:])


def _when(value: Any) -> tuple[datetime, date]:
    """A ``dateTimeTimeZone`` → (UTC instant, the date as written in its own zone)."""
    if not isinstance(value, dict) or not value.get("dateTime"):
        raise ValueError("event without start or end")
    local = parse_stamp(str(value["dateTime"]), zone(value.get("timeZone")))
    return local.astimezone(UTC), local.date()


def _original_date(original: datetime, zone_name: str | None) -> date:
    """The date of an all-day occurrence from its ``originalStart`` (midnight in the event's zone, in UTC)."""
    name = (zone_name or "").strip()
    resolved = zone(name)
    if resolved is UTC and name.upper() not in _UTC_NAMES:
        return (original + timedelta(hours=12)).date()  # unknown zone: the nearest midnight
    return original.astimezone(resolved).date()


def _recurrence_id(event: dict[str, Any], all_day: bool) -> datetime | date | None:
    if str(event.get("type") or "") not in ("occurrence", "exception") or not event.get("originalStart"):
        return None
    original = parse_stamp(str(event["originalStart"])).astimezone(UTC)
    return _original_date(original, event.get("originalStartTimeZone")) if all_day else original


def _address(recipient: Any) -> tuple[str, str] | None:
    box = recipient.get("emailAddress") if isinstance(recipient, dict) else None
    address = str((box or {}).get("address") or "").strip()
    if "@" not in address or address.startswith("/") or " " in address:
        return None  # Exchange legacy DNs ("/O=EXCHANGELABS/…") and empty addresses are not mail addresses
    return address, str((box or {}).get("name") or "").strip()


def _description(event: dict[str, Any]) -> str:
    body = event.get("body") if isinstance(event.get("body"), dict) else {}
    content = str((body or {}).get("content") or "")
    if str((body or {}).get("contentType") or "").lower() == "html":
        content = html_to_text(content)
    return (content or str(event.get("bodyPreview") or "")).strip()[:100_000]


def _location(event: dict[str, Any]) -> str:
    location = event.get("location") if isinstance(event.get("location"), dict) else {}
    name = str((location or {}).get("displayName") or "").strip()
    if not name:
        names = [str(x.get("displayName") or "").strip() for x in event.get("locations") or [] if isinstance(x, dict)]
        name = "; ".join(n for n in names if n)
    return name


def _people(vevent: icalendar.Event, event: dict[str, Any]) -> None:
    organizer = _address(event.get("organizer"))
    if organizer is not None:
        vevent.add("organizer", f"mailto:{organizer[0]}", parameters={"CN": organizer[1]} if organizer[1] else {})
    for attendee in event.get("attendees") or []:
        found = _address(attendee)
        if found is None:
            continue
        kind = str(attendee.get("type") or "required").lower()
        answer = str(((attendee.get("status") or {}).get("response")) or "none").lower()
        params = {"ROLE": _ROLES.get(kind, "REQ-PARTICIPANT"), "PARTSTAT": _ANSWERS.get(answer, "NEEDS-ACTION")}
        if kind == "resource":
            params["CUTYPE"] = "RESOURCE"
        if found[1]:
            params["CN"] = found[1]
        vevent.add("attendee", f"mailto:{found[0]}", parameters=params)


def event_to_ical(event: dict[str, Any]) -> bytes:
    """One Graph event (single instance, occurrence or exception) as an iCalendar object."""
    all_day = bool(event.get("isAllDay"))
    (start, start_day), (end, end_day) = _when(event.get("start")), _when(event.get("end"))
    ical_uid = str(event.get("iCalUId") or "").strip()
    uid = series_uid(ical_uid) if ical_uid else f"graph-{event.get('seriesMasterId') or event.get('id')}"
    vevent = icalendar.Event()
    vevent.add("uid", uid)
    recurrence_id = _recurrence_id(event, all_day)
    if recurrence_id is not None:
        vevent.add("recurrence-id", recurrence_id)
    stamp = event.get("lastModifiedDateTime") or event.get("createdDateTime")
    vevent.add("dtstamp", parse_stamp(str(stamp)).astimezone(UTC) if stamp else start)
    vevent.add("dtstart", start_day if all_day else start)
    vevent.add("dtend", max(end_day, start_day + timedelta(days=1)) if all_day else max(start, end))
    vevent.add("summary", str(event.get("subject") or ""))
    for name, value in (("location", _location(event)), ("description", _description(event))):
        if value:
            vevent.add(name, value)
    categories = [str(c) for c in event.get("categories") or [] if str(c).strip()]
    if categories:
        vevent.add("categories", categories)
    _people(vevent, event)
    vevent.add("status", "CANCELLED" if event.get("isCancelled") else "CONFIRMED")
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add_component(vevent)
    return bytes(calendar.to_ical())
