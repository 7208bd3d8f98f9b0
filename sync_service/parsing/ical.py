"""iCalendar bytes → :class:`ParsedCalendar` (SPEC §4, §6).

Pure: no I/O, no database. Every VEVENT (and every recurring series) is handled in its own error
boundary; what cannot be understood becomes one line in ``ParsedCalendar.problems`` and the rest goes on.
Only data that is not iCalendar at all, or whose events all fail, raises :class:`ParseError`.

Recurring series are expanded with ``recurring_ical_events`` inside the sync window only, at most
``max_occurrences`` per series, with work bounded by those two and not by the input (``ical_expand``: RDATE
lists, rule walks); ``ParsedCalendar.series`` names them, so that the pipeline can expand them again as the
window slides. Text values lose what no database stores and over-long UIDs get a stable short form
(``ical_text``); a VTIMEZONE that cannot be read is left out with a note (``ical_zones``).

Every time in the result is timezone-aware UTC; floating times and TZIDs that can be resolved neither from the
file nor by name (IANA or Windows) are read as UTC — the latter with a problem line naming the TZID (the event
is kept: "partly applied").
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import icalendar
import x_wr_timezone

from sync_service.errors import ParseError
from sync_service.parsing.charsets import decode_text_file
from sync_service.parsing.ical_expand import Bounds
from sync_service.parsing.ical_expand import occurrences as expand_occurrences
from sync_service.parsing.ical_text import MAX_ADDRESS, MAX_NAME, clean, stable_uid
from sync_service.parsing.ical_zones import without_broken_timezones
from sync_service.values import Address, CalendarEvent, ParsedCalendar, SyncWindow

__all__ = ["parse_calendar"]

# Seconds per FREQ period: only used to estimate how much work an expansion would be.
_FREQ_SECONDS = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": 86400, "WEEKLY": 604800,
                 "MONTHLY": 28 * 86400, "YEARLY": 365 * 86400}  # fmt: skip
_EXPANDING_PARTS = ("BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")
# dateutil walks every rule from its DTSTART: refuse a rule that needs more steps than this.
_MAX_RULE_STEPS = 500_000
# Expand at most about this many times the cap before truncating (MINUTELY-style floods).
_OVERSHOOT = 10


def parse_calendar(raw: bytes, window: SyncWindow, *, max_occurrences: int = 1000) -> ParsedCalendar:
    """Parse iCalendar ``raw`` bytes into UTC :class:`CalendarEvent` values (see the module docstring)."""
    events: list[CalendarEvent] = []
    problems: list[str] = []
    series: list[str] = []  # UIDs of the series expanded (even to nothing)
    method: str | None = None
    vevents = usable = 0  # usable: single VEVENTs read, plus series expanded (even to nothing)
    unknown_zones: dict[str, list[str]] = {}  # unknown TZID → the events read as UTC because of it
    load_notes: list[str] = []  # time-zone definitions left out (``ical_zones``)
    for calendar in _load(decode_text_file(raw), load_notes):
        cal_method = _method(calendar)
        method = method or cal_method
        standard = _standardize(calendar, problems)
        components = [c for c in standard.subcomponents if c.name == "VEVENT"]
        timezones = [c for c in standard.subcomponents if c.name == "VTIMEZONE"]
        defined = {_text(tz.get("TZID")).strip() for tz in timezones}
        vevents += len(components)
        for uid, group in _group_by_uid(components).items():
            if not any("RRULE" in c or "RDATE" in c for c in group):
                found = _single_events(group, cal_method, problems)
                usable, events = usable + len(found), events + found
                if found:
                    _note_unknown_zones(unknown_zones, f"event {uid!r}", group, defined)
                continue
            try:  # the whole series is one error boundary
                events += _expand_series(uid, group, timezones, cal_method, window, max_occurrences, problems)
                usable += 1
                series.append(uid)
            except Exception as exc:
                problems.append(f"series {uid!r} skipped: {_one_line(exc)}")
                continue
            _note_unknown_zones(unknown_zones, f"series {uid!r}", group, defined)
    if vevents and not usable:
        raise ParseError(f"no event could be parsed: {problems[0]}")
    return ParsedCalendar(
        events=_dedupe(events),
        method=method,
        problems=tuple(problems),
        series=tuple(dict.fromkeys(series)),
        notes=(*load_notes, *(_unknown_zone_problem(tzid, read) for tzid, read in unknown_zones.items())),
    )


# --- loading -------------------------------------------------------------------------------------------


def _load(text: str, notes: list[str]) -> list[icalendar.Component]:
    """The VCALENDARs of ``text`` (a bare VEVENT gets one). ``notes`` gets a line for each time-zone definition
    left out because it could not be read (``ical_zones``): nothing else is lost, so it is a note."""
    upper = text.upper()
    if "BEGIN:VCALENDAR" not in upper and "BEGIN:VEVENT" not in upper:
        raise ParseError("not iCalendar data (no BEGIN:VCALENDAR)")
    try:
        components = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as exc:  # ValueError, KeyError, IndexError… on structural damage
        # One unreadable VTIMEZONE (even one no event uses) must not cost the file: read it without those.
        readable, dropped = without_broken_timezones(text)
        try:
            if not dropped:
                raise
            components = icalendar.Calendar.from_ical(readable, multiple=True)
        except Exception:
            raise ParseError(f"not a readable iCalendar file: {_one_line(exc)}") from exc
        notes.extend(dropped)
    calendars: list[icalendar.Component] = []
    for component in components:
        if component.name == "VCALENDAR":
            calendars.append(component)
        elif component.name == "VEVENT":  # a bare VEVENT, no VCALENDAR around it
            wrapper = icalendar.Calendar()
            wrapper.add_component(component)
            calendars.append(wrapper)
    if not calendars:
        raise ParseError("no VCALENDAR or VEVENT component found")
    return calendars


def _method(calendar: icalendar.Component) -> str | None:
    return _text(calendar.get("METHOD")).strip().upper() or None


def _standardize(calendar: icalendar.Component, problems: list[str]) -> icalendar.Component:
    """Apply Google's X-WR-TIMEZONE the way the calendar's author saw it."""
    try:
        return x_wr_timezone.to_standard(calendar)
    except Exception as exc:
        problems.append(f"X-WR-TIMEZONE ignored: {_one_line(exc)}")
        return calendar


def _group_by_uid(vevents: Iterable[icalendar.Component]) -> dict[str, list[icalendar.Component]]:
    groups: dict[str, list[icalendar.Component]] = {}
    for component in vevents:
        written = _text(component.get("UID"))
        uid = stable_uid(written)  # no NUL, and short enough for the item key (``ical_text``)
        if uid and uid != written:
            component["UID"] = uid  # the recurrence library groups by the property: the same UID for it
        if not uid:
            # No UID: derive a deterministic one from a hash of DTSTART + SUMMARY + ORGANIZER, so reading the
            # same file again gives the same key; written back so that the recurrence library groups it too.
            uid = _synthetic_uid(component)
            component["UID"] = uid
        groups.setdefault(uid, []).append(component)
    return groups


def _synthetic_uid(component: icalendar.Component) -> str:
    parts = []
    for name in ("DTSTART", "SUMMARY", "ORGANIZER"):
        value: Any = component.get(name)
        try:
            parts.append(value.to_ical().decode("utf-8", "replace") if value is not None else "")
        except Exception:
            parts.append("")
    return "crm-sync-generated-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


# --- one VEVENT → one CalendarEvent --------------------------------------------------------------------


def _single_events(
    components: list[icalendar.Component], method: str | None, problems: list[str]
) -> list[CalendarEvent]:
    events = []
    for component in components:
        try:
            # An emailed update / CANCEL of one occurrence: keyed like the expanded occurrence it replaces.
            recurrence_id = _dt(component, "RECURRENCE-ID")
            rid = _rid_string(recurrence_id) if recurrence_id is not None else None
            events.append(_event(component, method, rid))
        except Exception as exc:  # one broken VEVENT must not stop the others
            problems.append(f"event {_text(component.get('UID')).strip()!r} skipped: {_one_line(exc)}")
    return events


def _event(component: icalendar.Component, method: str | None, recurrence_id: str | None) -> CalendarEvent:
    start, end, all_day = _bounds(component, cancel=method == "CANCEL")
    status = _text(component.get("STATUS")).strip().upper()
    return CalendarEvent(
        uid=stable_uid(_text(component.get("UID"))),
        recurrence_id=recurrence_id,
        summary=_text(component.get("SUMMARY")).strip(),
        start=start,
        end=end,
        all_day=all_day,
        location=_text(component.get("LOCATION")).strip(),
        description=_text(component.get("DESCRIPTION")),
        categories=_categories(component.get("CATEGORIES")),
        organizer=_address(component.get("ORGANIZER")),
        attendees=_addresses(component.get("ATTENDEE")),
        cancelled=method == "CANCEL" or status == "CANCELLED",
        sequence=_sequence(component.get("SEQUENCE")),
        method=method,
        last_modified=_stamp(component, "LAST-MODIFIED"),
        dtstamp=_stamp(component, "DTSTAMP"),
    )


def _stamp(component: icalendar.Component, name: str) -> datetime | None:
    """A date-time stamp (LAST-MODIFIED, DTSTAMP) in UTC; None when absent or not a date-time."""
    with contextlib.suppress(Exception):
        value = _dt(component, name)
        if isinstance(value, datetime):
            return _to_utc(value)
    return None


def _dt(component: icalendar.Component, name: str) -> Any:
    """The decoded value of a date / date-time / duration property, or None when absent."""
    prop: Any = component.get(name)
    if isinstance(prop, list):  # a repeated property: the first one counts
        prop = prop[0] if prop else None
    return None if prop is None else prop.dt


def _bounds(component: icalendar.Component, *, cancel: bool = False) -> tuple[datetime, datetime, bool]:
    """Start, end (UTC) and all-day flag; the end falls back to DURATION, then +1 day (all-day) or +0."""
    local_start = _dt(component, "DTSTART")
    if local_start is None and cancel:  # RFC 5546 lets a CANCEL omit DTSTART: the original start will do
        local_start = _dt(component, "RECURRENCE-ID") or _dt(component, "DTSTAMP")
    if not isinstance(local_start, date):
        raise ValueError("no usable DTSTART")
    all_day = not isinstance(local_start, datetime)
    local_end, duration = _dt(component, "DTEND"), _dt(component, "DURATION")
    if local_end is None and isinstance(duration, timedelta):
        local_end = local_start + duration  # local arithmetic: "one day" stays a day across DST
    elif local_end is None:
        local_end = local_start + timedelta(days=1) if all_day else local_start
    start, end = _to_utc(local_start), _to_utc(local_end)
    return start, max(start, end), all_day  # an end before the start is clamped to the start


def _to_utc(value: object) -> datetime:
    if isinstance(value, datetime):
        # Floating time, or a TZID neither defined in the file nor known by name: read as UTC.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    raise ValueError(f"not a date or date-time: {value!r}")


def _rid_string(value: object) -> str:
    """The recurrence id shared by expanded occurrences and emailed single-occurrence updates."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return _to_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- property values -----------------------------------------------------------------------------------


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    """A property as plain text; of a repeated property (two SUMMARY lines) the first value. Cleaned of what no
    database column holds (NUL…: ``ical_text``), so that both backends store the same."""
    items = _items(value)
    if not items:
        return ""
    return clean(items[0].decode("utf-8", "replace") if isinstance(items[0], bytes) else str(items[0]))


def _categories(value: Any) -> tuple[str, ...]:
    found: list[str] = []
    for item in _items(value):
        for category in getattr(item, "cats", None) or str(item).split(","):
            name = clean(str(category)).strip()
            if name and name not in found:
                found.append(name)
    return tuple(found)


def _address(value: Any) -> Address | None:
    """A CAL-ADDRESS as :class:`Address` (``mailto:`` stripped, lower-cased, CN as name, cut at ``MAX_NAME``); None
    if no mail, or an address over ``MAX_ADDRESS`` characters (unusable, as in mail)."""
    items = _items(value)
    if not items:
        return None
    email = clean(str(items[0])).strip()
    if email.lower().startswith("mailto:"):
        email = email[7:].strip()
    local, at, domain = email.lower().rpartition("@")
    if not at or not local or not domain or " " in email or len(email) > MAX_ADDRESS:
        return None
    with contextlib.suppress(UnicodeError):
        domain = domain.encode("ascii").decode("idna") if "xn--" in domain else domain
    name = clean(str(getattr(items[0], "params", {}).get("CN", ""))).strip().strip('"')
    return Address(email=f"{local}@{domain}", name=name[:MAX_NAME].rstrip())


def _addresses(value: Any) -> tuple[Address, ...]:
    found: dict[str, Address] = {}
    for item in _items(value):
        parsed = _address(item)
        if parsed is not None:
            found.setdefault(parsed.email, parsed)
    return tuple(found.values())


_MAX_SEQUENCE = 2**31 - 1  # SEQUENCE is stored in a 32-bit column; fuzzed calendars carry huge ones


def _sequence(value: Any) -> int:
    try:
        return min(_MAX_SEQUENCE, max(0, int(_text(value).strip())))
    except ValueError:
        return 0


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]


# --- time zones -----------------------------------------------------------------------------------------

# The properties whose date-times carry a TZID that decides when the event takes place.
_ZONED = ("DTSTART", "DTEND", "RECURRENCE-ID", "RDATE", "EXDATE")


def _unknown_tzids(component: icalendar.Component, defined: set[str]) -> list[str]:
    """The TZIDs of ``component`` that icalendar could resolve neither from a VTIMEZONE nor by name (IANA,
    Windows): their date-times come out naive, and are read as UTC. A TZID defined in the file never counts."""
    found: list[str] = []
    for name in _ZONED:
        for prop in _items(component.get(name)):
            params = getattr(prop, "params", None) or {}
            tzid = str(params.get("TZID", "")).strip()
            if not tzid or tzid in defined or tzid in found:
                continue
            values = [getattr(v, "dt", None) for v in getattr(prop, "dts", None) or [prop]]
            if any(isinstance(value, datetime) and value.tzinfo is None for value in values):
                found.append(tzid)
    return found


def _note_unknown_zones(
    notes: dict[str, list[str]], what: str, components: list[icalendar.Component], defined: set[str]
) -> None:
    """Remember ``what`` (``event 'uid'``, ``series 'uid'``) under each unknown TZID its components use."""
    for component in components:
        for tzid in _unknown_tzids(component, defined):
            read = notes.setdefault(tzid, [])
            if what not in read:
                read.append(what)


def _unknown_zone_problem(tzid: str, read: list[str]) -> str:
    """One problem line per unknown TZID: the events are kept, their times read as UTC."""
    more = f" and {len(read) - 1} more" if len(read) > 1 else ""
    return f"{read[0]}{more}: unknown time zone {tzid!r}, times read as UTC"


# --- recurring series ----------------------------------------------------------------------------------


def _expand_series(
    uid: str,
    components: list[icalendar.Component],
    timezones: list[icalendar.Component],
    method: str | None,
    window: SyncWindow,
    cap: int,
    problems: list[str],
) -> list[CalendarEvent]:
    """The occurrences of one series inside the window, at most ``cap``; each converted in its own boundary."""
    stop = _query_stop(components, window, cap)
    series = icalendar.Calendar()
    for component in [*timezones, *components]:
        series.add_component(component)
    # RDATE lists and rule walks are bounded by the window and the cap, not by the input (``ical_expand``).
    bounds = Bounds(start=window.start, stop=stop, keep=cap + 1, moved=_largest_move(components))
    occurrences = expand_occurrences(series, bounds)
    moves = _this_and_future_moves(components)
    events = []
    for occurrence in occurrences:
        try:
            events.append(_event(occurrence, method, _occurrence_rid(occurrence, moves)))
        except Exception as exc:
            problems.append(f"occurrence of series {uid!r} skipped: {_one_line(exc)}")
    events.sort(key=lambda event: (event.start, event.recurrence_id or ""))
    if len(events) > cap or bounds.left_out:
        problems.append(f"series {uid!r}: more than {cap} occurrences in the sync window, first {cap} kept")
    elif stop < window.end:
        problems.append(f"series {uid!r}: recurrence rule too dense, expanded only up to {stop:%Y-%m-%d %H:%M}Z")
    return events[:cap]


def _query_stop(components: list[icalendar.Component], window: SyncWindow, cap: int) -> datetime:
    """Where to stop expanding, so that dense rules (MINUTELY, SECONDLY…) cannot flood memory or CPU."""
    stop = window.end
    for component in components:
        start = _dt(component, "DTSTART")
        if "RECURRENCE-ID" in component or not isinstance(start, date):
            continue
        for rule in _items(component.get("RRULE")):
            period, per_period = _rule_density(rule)
            begin = max(window.start, _to_utc(start))
            budget = min(period * max(cap, 1) * _OVERSHOOT / per_period, (window.end - begin).total_seconds())
            rule_stop = begin + timedelta(seconds=max(budget, 0))
            steps = (rule_stop - _to_utc(start)).total_seconds() / period
            count = int((rule.get("COUNT") or [0])[0] or 0)
            if min(steps, count or steps) > _MAX_RULE_STEPS:
                raise ValueError(f"recurrence rule too dense to expand (about {steps:.0f} steps)")
            stop = max(min(stop, rule_stop), window.start)
    return stop


def _rule_density(rule: Any) -> tuple[float, int]:
    """(seconds per FREQ period, an upper estimate of occurrences per period) of one RRULE."""
    freq = str((rule.get("FREQ") or ["DAILY"])[0]).upper()
    interval = max(1, int((rule.get("INTERVAL") or [1])[0] or 1))
    per_period = 1
    for part in _EXPANDING_PARTS:
        per_period *= max(1, len(rule.get(part) or []))
    return float(_FREQ_SECONDS.get(freq, 86400) * interval), per_period


def _largest_move(components: list[icalendar.Component]) -> timedelta:
    """How far any override of the series moves its occurrence (either way): RDATE and EXDATE values that far
    outside the window can still concern an occurrence inside it."""
    moves = [timedelta(0)]
    for component in components:
        with contextlib.suppress(Exception):
            rid = _dt(component, "RECURRENCE-ID")
            if rid is not None:
                moves.append(abs(_to_utc(_dt(component, "DTSTART")) - _to_utc(rid)))
    return max(moves)


def _this_and_future_moves(components: list[icalendar.Component]) -> dict[str, timedelta]:
    """RANGE=THISANDFUTURE overrides: how far each moves the occurrences from its RECURRENCE-ID on."""
    moves = {}
    for component in components:
        prop: Any = component.get("RECURRENCE-ID")
        if prop is None or str(prop.params.get("RANGE", "")).upper() != "THISANDFUTURE":
            continue
        with contextlib.suppress(Exception):
            moves[_rid_string(prop.dt)] = _to_utc(_dt(component, "DTSTART")) - _to_utc(prop.dt)
    return moves


def _occurrence_rid(occurrence: icalendar.Component, moves: dict[str, timedelta]) -> str:
    """The occurrence's original start. The library sets RECURRENCE-ID on every occurrence, but copies a
    THISANDFUTURE override's own RECURRENCE-ID onto the occurrences after it: those are moved back."""
    value = _dt(occurrence, "RECURRENCE-ID")
    rid = _rid_string(value if value is not None else _dt(occurrence, "DTSTART"))
    if rid in moves:
        original = _to_utc(_dt(occurrence, "DTSTART")) - moves[rid]
        rid = original.date().isoformat() if len(rid) == 10 else _rid_string(original)
    return rid


def _dedupe(events: list[CalendarEvent]) -> tuple[CalendarEvent, ...]:
    """One event per key: the highest SEQUENCE wins, a later copy wins a tie (the same meeting twice)."""
    best: dict[str, CalendarEvent] = {}
    for event in events:
        current = best.get(event.key)
        if current is None or event.sequence >= current.sequence:
            best[event.key] = event
    return tuple(best.values())
