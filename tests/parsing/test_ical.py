"""parse_calendar: iCalendar bytes → ParsedCalendar, on hand-written fixtures (tests/data/calendar)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync_service.errors import ParseError
from sync_service.parsing.ical import parse_calendar
from sync_service.values import Address, CalendarEvent, ParsedCalendar, SyncWindow

DATA = Path(__file__).resolve().parents[1] / "data" / "calendar"
WINDOW = SyncWindow.around(datetime(2024, 1, 1, tzinfo=UTC))


def parse(name: str, window: SyncWindow = WINDOW, **kwargs: int) -> ParsedCalendar:
    return parse_calendar((DATA / name).read_bytes(), window, **kwargs)


def by_uid(parsed: ParsedCalendar, uid: str) -> list[CalendarEvent]:
    return sorted((e for e in parsed.events if e.uid == uid), key=lambda e: e.start)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def assert_utc(event: CalendarEvent) -> None:
    assert event.start.tzinfo is UTC and event.end.tzinfo is UTC
    assert event.start <= event.end


# --- Outlook invitations and time zones -----------------------------------------------------------------


def test_outlook_invitation_with_windows_named_vtimezone() -> None:
    parsed = parse("outlook_invite.ics")
    assert parsed.method == "REQUEST"
    assert parsed.problems == ()
    [event] = parsed.events
    assert event.uid.startswith("040000008200E00074C5B7101A82E008")  # folded UID unfolded
    assert event.summary == "Angebotsbesprechung ACME"
    # 10:00–11:30 "W. Europe Standard Time" in January is UTC+1.
    assert (event.start, event.end) == (utc(2024, 1, 15, 9, 0), utc(2024, 1, 15, 10, 30))
    assert_utc(event)
    assert event.location == "Berlin Office, Room 4.12"
    assert "Nächste Schritte" in event.description
    assert event.organizer == Address("anna.rep@seller.example", "Anna Rep")
    # mailto: stripped case-insensitively and lower-cased; the room (no mail address) is skipped.
    assert [a.email for a in event.attendees] == ["joerg.mueller@customer.example", "bob@customer.example"]
    assert event.attendees[0].name == "Müller, Jörg"
    assert event.sequence == 1
    assert event.method == "REQUEST"
    assert event.recurrence_id is None
    assert event.key == f"{event.uid}|"
    assert not event.cancelled and not event.all_day


def test_windows_tzid_without_vtimezone_unknown_tzid_and_floating_time() -> None:
    parsed = parse("outlook_undefined_tzid.ics")
    eastern = by_uid(parsed, "eastern-no-vtimezone@seller.example")[0]
    assert eastern.start == utc(2024, 7, 15, 14, 0)  # "Eastern Standard Time" → America/New_York, EDT
    unknown = by_uid(parsed, "unknown-zone@seller.example")[0]
    assert (unknown.start, unknown.end) == (utc(2024, 7, 15, 10), utc(2024, 7, 15, 11))  # read as UTC
    floating = by_uid(parsed, "floating@seller.example")[0]
    assert floating.start == floating.end == utc(2024, 7, 16, 12)  # no DTEND, no DURATION: end = start
    for event in parsed.events:
        assert_utc(event)


def test_google_x_wr_timezone_applies_to_floating_times() -> None:
    parsed = parse("google_x_wr_timezone.ics")
    assert parsed.method == "PUBLISH"
    discovery = by_uid(parsed, "7kukuqrfedlm2f9t0vr42q2q3c@google.com")[0]
    assert (discovery.start, discovery.end) == (utc(2024, 3, 5, 19), utc(2024, 3, 5, 20))  # 14:00 EST
    same = by_uid(parsed, "utc-stays-utc@google.com")[0]
    assert same.start == utc(2024, 3, 6, 14)


# --- all-day, duration ----------------------------------------------------------------------------------


def test_all_day_events_and_duration() -> None:
    parsed = parse("all_day.ics")
    fair = by_uid(parsed, "trade-fair@seller.example")[0]
    assert fair.all_day
    assert (fair.start, fair.end) == (utc(2024, 3, 10), utc(2024, 3, 11))  # no DTEND: one day
    offsite = by_uid(parsed, "offsite@seller.example")[0]
    assert offsite.all_day and (offsite.start, offsite.end) == (utc(2024, 3, 11), utc(2024, 3, 14))
    workshop = by_uid(parsed, "duration-only@seller.example")[0]
    assert not workshop.all_day
    assert workshop.end - workshop.start == timedelta(hours=2, minutes=30)


def test_single_events_are_returned_whatever_the_window() -> None:
    far_away = SyncWindow(utc(2030, 1, 1), utc(2030, 2, 1))
    assert len(parse("all_day.ics", far_away).events) == 3


# --- recurring series -----------------------------------------------------------------------------------


def test_weekly_series_with_exdate_moved_and_cancelled_occurrences() -> None:
    parsed = parse("weekly_with_exceptions.ics")
    assert parsed.problems == ()
    events = by_uid(parsed, "weekly-sync-acme@seller.example")
    rids = [e.recurrence_id for e in events]
    # COUNT=14 Mondays from 8 Jan 2024 15:00 Berlin, minus the EXDATE of 22 Jan: 13 occurrences.
    assert len(events) == 13
    assert "2024-01-22T14:00:00Z" not in rids
    assert len(set(rids)) == 13 and len({e.key for e in events}) == 13
    first = events[0]
    assert (first.recurrence_id, first.start, first.end) == (
        "2024-01-08T14:00:00Z", utc(2024, 1, 8, 14), utc(2024, 1, 8, 14, 30)
    )  # fmt: skip
    assert first.categories == ("Customer", "Weekly")
    assert first.attendees == (Address("joerg.mueller@customer.example", "Jörg Müller"),)

    moved = next(e for e in events if e.recurrence_id == "2024-01-29T14:00:00Z")
    assert moved.summary == "Weekly sync ACME (moved)"
    assert (moved.start, moved.end) == (utc(2024, 1, 30, 15), utc(2024, 1, 30, 16))
    assert not moved.cancelled

    cancelled = next(e for e in events if e.recurrence_id == "2024-02-05T14:00:00Z")
    assert cancelled.cancelled
    assert [e.recurrence_id for e in events if e.cancelled] == ["2024-02-05T14:00:00Z"]

    after_dst = next(e for e in events if e.recurrence_id == "2024-04-01T13:00:00Z")
    assert after_dst.start == utc(2024, 4, 1, 13)  # 15:00 CEST is 13:00 UTC
    for event in events:
        assert_utc(event)


def test_series_is_expanded_inside_the_window_only() -> None:
    window = SyncWindow(utc(2024, 2, 1), utc(2024, 2, 20))
    events = by_uid(parse("weekly_with_exceptions.ics", window), "weekly-sync-acme@seller.example")
    assert [e.recurrence_id for e in events] == [
        "2024-02-05T14:00:00Z", "2024-02-12T14:00:00Z", "2024-02-19T14:00:00Z"
    ]  # fmt: skip


def test_emailed_cancel_of_one_occurrence_has_the_same_key_as_the_expanded_occurrence() -> None:
    series = by_uid(parse("weekly_with_exceptions.ics"), "weekly-sync-acme@seller.example")
    occurrence = next(e for e in series if e.start == utc(2024, 2, 12, 14))
    cancel = parse("cancel_one_occurrence.ics")
    assert cancel.method == "CANCEL"
    [cancelled] = cancel.events
    assert cancelled.recurrence_id == occurrence.recurrence_id == "2024-02-12T14:00:00Z"
    assert cancelled.key == occurrence.key
    assert cancelled.cancelled and cancelled.method == "CANCEL" and cancelled.sequence == 3
    assert not occurrence.cancelled


def test_cancel_without_dtstart_falls_back_to_the_recurrence_id() -> None:
    raw = (
        b"BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nBEGIN:VEVENT\r\nUID:weekly-sync-acme@seller.example\r\n"
        b"RECURRENCE-ID:20240212T140000Z\r\nSEQUENCE:4\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    [event] = parse_calendar(raw, WINDOW).events
    assert event.cancelled and event.recurrence_id == "2024-02-12T14:00:00Z"
    assert event.start == event.end == utc(2024, 2, 12, 14)


def test_series_larger_than_max_occurrences_is_capped_and_reported() -> None:
    parsed = parse("count_over_cap.ics", max_occurrences=50)
    daily = by_uid(parsed, "daily-standup@seller.example")
    assert len(daily) == 50
    assert daily[0].start == utc(2024, 1, 1, 8) and daily[-1].start == utc(2024, 2, 19, 8)
    flood = by_uid(parsed, "every-minute@seller.example")
    assert len(flood) == 50 and flood[1].start - flood[0].start == timedelta(minutes=1)
    assert any("daily-standup@seller.example" in p and "50" in p for p in parsed.problems)
    assert any("every-minute@seller.example" in p for p in parsed.problems)


def test_all_day_series_recurrence_ids_are_dates() -> None:
    raw = (
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:allday-series\r\nSUMMARY:Payday\r\n"
        b"DTSTART;VALUE=DATE:20240105\r\nRRULE:FREQ=MONTHLY;COUNT=3\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:allday-series\r\nRECURRENCE-ID;VALUE=DATE:20240205\r\nSUMMARY:Payday moved\r\n"
        b"DTSTART;VALUE=DATE:20240206\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    events = sorted(parse_calendar(raw, WINDOW).events, key=lambda e: e.start)
    assert [e.recurrence_id for e in events] == ["2024-01-05", "2024-02-05", "2024-03-05"]
    assert events[1].start == utc(2024, 2, 6) and events[1].summary == "Payday moved"
    assert all(e.all_day and e.end - e.start == timedelta(days=1) for e in events)


def test_this_and_future_override_keeps_each_occurrence_its_own_recurrence_id() -> None:
    raw = (
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:taf\r\nSUMMARY:Old time\r\nDTSTART:20240101T090000Z\r\n"
        b"DTEND:20240101T100000Z\r\nRRULE:FREQ=DAILY;COUNT=5\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:taf\r\nRECURRENCE-ID;RANGE=THISANDFUTURE:20240103T090000Z\r\nSUMMARY:New time\r\n"
        b"DTSTART:20240103T110000Z\r\nDTEND:20240103T120000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    events = sorted(parse_calendar(raw, WINDOW).events, key=lambda e: e.start)
    assert [e.recurrence_id for e in events] == [f"2024-01-0{d}T09:00:00Z" for d in range(1, 6)]
    assert [e.start.hour for e in events] == [9, 9, 11, 11, 11]


# --- robustness -----------------------------------------------------------------------------------------


def test_one_broken_vevent_is_reported_and_the_others_are_kept() -> None:
    parsed = parse("one_broken_event.ics")
    assert sorted(e.uid for e in parsed.events) == ["good-1@seller.example", "good-2@seller.example"]
    [problem] = parsed.problems
    assert "broken@seller.example" in problem and "\n" not in problem


def test_garbage_bytes_raise_parse_error() -> None:
    with pytest.raises(ParseError):
        parse("garbage.ics")


@pytest.mark.parametrize(
    "raw",
    [b"", b"hello world", b"\x00\xff\xfe" * 50, b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:nope\r\nEND:VEVENT"],
)
def test_not_icalendar_or_nothing_parseable_raises_parse_error(raw: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_calendar(raw, WINDOW)
    assert "\n" not in str(info.value)


def test_all_events_broken_raises_parse_error() -> None:
    raw = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:nope\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    with pytest.raises(ParseError, match="no event could be parsed"):
        parse_calendar(raw, WINDOW)


def test_empty_calendar_is_not_an_error() -> None:
    parsed = parse_calendar(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", WINDOW)
    assert parsed.events == () and parsed.problems == ()


def test_several_vcalendars_missing_uid_and_bad_sequence() -> None:
    parsed = parse("multiple_calendars.ics")
    assert parsed.method == "REQUEST"
    first, second = sorted(parsed.events, key=lambda e: e.start)
    assert first.method == "REQUEST" and second.method is None
    assert first.uid.startswith("crm-sync-generated-")
    assert parse("multiple_calendars.ics").events[0].uid == first.uid  # deterministic
    assert second.sequence == 0  # SEQUENCE:oops


def test_bom_and_non_utf8_bytes_are_decoded() -> None:
    body = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:enc\r\nSUMMARY:Besprechung Köln\r\nDTSTART:20240101T090000Z\r\n"
    body += "END:VEVENT\r\nEND:VCALENDAR\r\n"
    assert parse_calendar(b"\xef\xbb\xbf" + body.encode(), WINDOW).events[0].summary == "Besprechung Köln"
    assert parse_calendar(body.encode("cp1252"), WINDOW).events[0].summary == "Besprechung Köln"
    assert parse_calendar(body.encode("utf-16"), WINDOW).events[0].summary == "Besprechung Köln"


def test_status_cancelled_and_method_cancel_mark_events_cancelled() -> None:
    template = "BEGIN:VCALENDAR\r\n{m}BEGIN:VEVENT\r\nUID:c\r\nDTSTART:20240101T090000Z\r\n{s}"
    template += "END:VEVENT\r\nEND:VCALENDAR\r\n"
    assert not parse_calendar(template.format(m="", s="").encode(), WINDOW).events[0].cancelled
    assert parse_calendar(template.format(m="", s="STATUS:CANCELLED\r\n").encode(), WINDOW).events[0].cancelled
    assert parse_calendar(template.format(m="METHOD:CANCEL\r\n", s="").encode(), WINDOW).events[0].cancelled


def test_bare_vevent_without_vcalendar_is_accepted() -> None:
    raw = b"BEGIN:VEVENT\r\nUID:bare\r\nSUMMARY:Bare\r\nDTSTART:20240101T090000Z\r\nEND:VEVENT\r\n"
    assert [e.uid for e in parse_calendar(raw, WINDOW).events] == ["bare"]


def test_same_event_twice_keeps_the_highest_sequence() -> None:
    def event(seq: int, summary: str) -> str:
        lines = ["BEGIN:VEVENT", "UID:dup", f"SEQUENCE:{seq}", f"SUMMARY:{summary}", "DTSTART:20240101T090000Z"]
        return "\r\n".join([*lines, "END:VEVENT", ""])

    raw = "BEGIN:VCALENDAR\r\n" + event(2, "newer") + event(1, "older") + "END:VCALENDAR\r\n"
    [kept] = parse_calendar(raw.encode(), WINDOW).events
    assert kept.summary == "newer"


def test_broken_series_is_reported_and_other_events_kept() -> None:
    raw = (
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:bad-rule\r\nDTSTART:20240101T090000Z\r\n"
        b"RRULE:FREQ=SOMETIMES\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:fine\r\nDTSTART:20240102T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    parsed = parse_calendar(raw, WINDOW)
    assert [e.uid for e in parsed.events] == ["fine"]
    assert len(parsed.problems) == 1 and parsed.problems[0].startswith("series 'bad-rule' skipped")


def test_series_outside_the_window_gives_nothing_and_no_error() -> None:
    window = SyncWindow(utc(2030, 1, 1), utc(2030, 6, 1))
    parsed = parse("count_over_cap.ics", window, max_occurrences=50)
    assert by_uid(parsed, "daily-standup@seller.example") == []


def test_dense_rule_starting_long_ago_is_refused_quickly() -> None:
    raw = (
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:every-second\r\nDTSTART:20000101T000000Z\r\n"
        b"RRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:fine\r\nDTSTART:20240102T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    parsed = parse_calendar(raw, WINDOW)
    assert [e.uid for e in parsed.events] == ["fine"]
    assert "too dense" in parsed.problems[0]


def test_yearly_series_from_long_ago_is_expanded_in_the_window() -> None:
    raw = (
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:anniversary\r\nDTSTART;VALUE=DATE:19971102\r\n"
        b"RRULE:FREQ=YEARLY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    parsed = parse_calendar(raw, WINDOW)
    assert [e.recurrence_id for e in parsed.events] == ["2023-11-02"] and parsed.problems == ()


# --- unknown time zones ---------------------------------------------------------------------------------

_CUSTOM_ZONE = "\r\n".join([
    "BEGIN:VTIMEZONE", "TZID:Customized Time Zone",
    "BEGIN:STANDARD", "DTSTART:16010101T030000", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100",
    "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10", "END:STANDARD",
    "BEGIN:DAYLIGHT", "DTSTART:16010101T020000", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200",
    "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", "END:DAYLIGHT",
    "END:VTIMEZONE",
])  # fmt: skip


def _zoned(uid: str, tzid: str, *extra: str) -> str:
    return "\r\n".join([
        "BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20240101T000000Z", f"SUMMARY:{uid}",
        f"DTSTART;TZID={tzid}:20240301T100000", f"DTEND;TZID={tzid}:20240301T110000", *extra,
        "END:VEVENT",
    ])  # fmt: skip


def _calendar(*parts: str) -> bytes:
    return ("\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//EN", *parts, "END:VCALENDAR"])
            + "\r\n").encode()  # fmt: skip


def test_an_unknown_tzid_keeps_the_event_as_utc_with_a_problem_naming_it() -> None:
    parsed = parse_calendar(_calendar(_zoned("mars", "Mars/Olympus")), WINDOW)
    [event] = parsed.events
    assert (event.start, event.end) == (utc(2024, 3, 1, 10), utc(2024, 3, 1, 11))  # read as UTC, as before
    assert parsed.notes == ("event 'mars': unknown time zone 'Mars/Olympus', times read as UTC",)
    assert parsed.problems == ()  # nothing left out: the calendar is still whole


def test_an_unknown_tzid_is_named_once_for_a_series_and_for_many_events() -> None:
    weekly = _zoned("weekly", "Mars/Olympus", "RRULE:FREQ=WEEKLY;COUNT=3")
    moved = _zoned("weekly", "Mars/Olympus", "RECURRENCE-ID;TZID=Mars/Olympus:20240308T100000")
    others = [_zoned(f"other{i}", "Atlantis Standard Time") for i in range(3)]
    parsed = parse_calendar(_calendar(weekly, moved, *others), WINDOW)
    assert len(parsed.events) == 6 and "weekly" in parsed.series
    assert parsed.notes == (
        "series 'weekly': unknown time zone 'Mars/Olympus', times read as UTC",
        "event 'other0' and 2 more: unknown time zone 'Atlantis Standard Time', times read as UTC",
    )


@pytest.mark.parametrize(
    ("tzid", "start"),
    [
        ("Europe/Berlin", utc(2024, 3, 1, 9)),  # IANA
        ("W. Europe Standard Time", utc(2024, 3, 1, 9)),  # Windows
        ("Customized Time Zone", utc(2024, 3, 1, 9)),  # defined by the file's VTIMEZONE
    ],
    ids=["iana", "windows", "vtimezone"],
)
def test_a_known_or_defined_tzid_is_not_flagged(tzid: str, start: datetime) -> None:
    single = _zoned("one", tzid, f"EXDATE;TZID={tzid}:20240308T100000")
    weekly = _zoned("weekly", tzid, "RRULE:FREQ=WEEKLY;COUNT=2", f"EXDATE;TZID={tzid}:20240308T100000")
    parsed = parse_calendar(_calendar(_CUSTOM_ZONE, single, weekly), WINDOW)
    assert parsed.problems == () and parsed.notes == ()
    assert [e.start for e in by_uid(parsed, "one")] == [start] and len(by_uid(parsed, "weekly")) == 1


def test_the_corpus_flags_only_the_tzid_nobody_knows() -> None:
    parsed = parse("outlook_undefined_tzid.ics")  # also a Windows name without VTIMEZONE, and a floating time
    assert parsed.notes == (
        "event 'unknown-zone@seller.example': unknown time zone 'Atlantis Standard Time', times read as UTC",
    )
