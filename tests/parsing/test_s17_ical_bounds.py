"""parse_calendar against hostile input (audit 17a F1 calendar half, F3, F4, F5): text every database can store,
UIDs that fit the item key, unreadable time-zone definitions left out, and expansion work bounded by the window
and the cap rather than by the input. Work is counted, not timed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dateutil import rrule as dateutil_rrule

from sync_service.parsing import ical
from sync_service.parsing.ical import parse_calendar
from sync_service.parsing.ical_expand import WalkBoundedRule
from sync_service.parsing.ical_text import MAX_UID, stable_uid
from sync_service.pipeline.items import event_key
from sync_service.values import SyncWindow
from tests.support.builders import ics, vevent

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
WINDOW = SyncWindow.around(NOW)
START = NOW + timedelta(days=3)
STAMP = "%Y%m%dT%H%M%SZ"


def _good() -> str:
    return vevent("good-neighbour", "Good neighbour", START + timedelta(hours=5))


# --- F1: NUL and over-long UIDs ------------------------------------------------------------------------


def test_nul_is_stripped_from_every_text_value() -> None:
    hostile = vevent(
        "bad\x00uid", "sum\x00mary", START,
        extra=("LOCATION:Room\x00 1", "DESCRIPTION:line\x00 two", "CATEGORIES:a\x00b"),
    )
    parsed = parse_calendar(ics(hostile, _good()), WINDOW)
    event = next(e for e in parsed.events if e.uid != "good-neighbour")
    assert (event.uid, event.summary, event.location, event.description) == ("baduid", "summary", "Room 1", "line two")
    assert event.categories == ("ab",)
    assert len(parsed.events) == 2 and not parsed.problems


def test_attendees_fit_the_contact_columns() -> None:
    long_address = "x" * 250 + "@acme.example"  # over 254 characters: unusable, as in mail
    event = vevent("people", "People", START, attendees=(long_address, "wile@acme.example")).replace(
        "ATTENDEE:mailto:wile", f"ATTENDEE;CN={'W' * 400}:mailto:wile"
    )
    [parsed] = parse_calendar(ics(event), WINDOW).events
    assert [(a.email, len(a.name)) for a in parsed.attendees] == [("wile@acme.example", 300)]


def test_an_over_long_uid_becomes_a_stable_digest_that_fits_the_key() -> None:
    long_uid, other = "U" * 10_240, "U" * 10_239 + "V"
    first = parse_calendar(ics(vevent(long_uid, "Long", START), _good()), WINDOW)
    again = parse_calendar(ics(_good(), vevent(long_uid, "Long elsewhere", START)), WINDOW)
    [uid] = {e.uid for e in first.events} - {"good-neighbour"}
    [same] = {e.uid for e in again.events} - {"good-neighbour"}
    assert uid == same == stable_uid(long_uid) != stable_uid(other)  # copies still dedupe; others do not
    assert len(uid) <= MAX_UID and uid.startswith("U" * 900)
    assert len(event_key(uid, "2026-11-28T12:00:00Z")) <= 1100  # synced_items.dedupe_key
    assert stable_uid("U" * MAX_UID) == "U" * MAX_UID  # up to the column's length: kept as it is


def test_an_over_long_uid_of_a_series_keys_its_occurrences_and_its_override_alike() -> None:
    long_uid = "S" * 5000
    master = vevent(long_uid, "Weekly", START, extra=("RRULE:FREQ=WEEKLY;COUNT=3",))
    moved = vevent(long_uid, "Moved", START + timedelta(days=7, hours=2),
                   extra=(f"RECURRENCE-ID:{(START + timedelta(days=7)).strftime(STAMP)}",))  # fmt: skip
    parsed = parse_calendar(ics(master, moved), WINDOW)
    assert {e.uid for e in parsed.events} == {stable_uid(long_uid)}
    assert parsed.series == (stable_uid(long_uid),)
    assert sorted(e.summary for e in parsed.events) == ["Moved", "Weekly", "Weekly"]


# --- F5: unreadable VTIMEZONE --------------------------------------------------------------------------


def _timezone(tzid: str, offset: str) -> str:
    return "\r\n".join([
        "BEGIN:VTIMEZONE", f"TZID:{tzid}", "BEGIN:STANDARD", "DTSTART:19700101T000000",
        f"TZOFFSETFROM:{offset}", f"TZOFFSETTO:{offset}", "END:STANDARD", "END:VTIMEZONE",
    ])  # fmt: skip


@pytest.mark.parametrize("offset", ["+2500", "banana"])
def test_an_unreadable_unused_vtimezone_is_left_out_and_the_events_kept(offset: str) -> None:
    parsed = parse_calendar(ics(_timezone("Absurd", offset), _timezone("Fine", "+0100"), _good()), WINDOW)
    assert [e.uid for e in parsed.events] == ["good-neighbour"]
    assert not parsed.problems  # nothing left out but the definition: still a whole snapshot
    [note] = parsed.notes
    assert note.startswith("time zone definition 'Absurd' ignored: ") and "\n" not in note


def test_an_event_using_an_unreadable_vtimezone_is_read_like_one_with_an_unknown_tzid() -> None:
    local = (START + timedelta(hours=1)).strftime("%Y%m%dT%H%M%S")
    zoned = vevent("absurd", "Absurd meeting", START).replace(
        f"DTSTART:{START.strftime(STAMP)}", f"DTSTART;TZID=Absurd:{local}"
    ).replace(f"DTEND:{(START + timedelta(hours=1)).strftime(STAMP)}", f"DTEND;TZID=Absurd:{local}")
    parsed = parse_calendar(ics(_timezone("Absurd", "+2500"), zoned, _good()), WINDOW)
    absurd = next(e for e in parsed.events if e.uid == "absurd")
    assert absurd.start == START + timedelta(hours=1)  # the wall time, read as UTC
    assert parsed.notes[1] == "event 'absurd': unknown time zone 'Absurd', times read as UTC"
    assert len(parsed.events) == 2


def test_a_file_broken_elsewhere_is_still_refused_whole() -> None:
    with pytest.raises(ical.ParseError, match="not a readable iCalendar file: Offset must be less than 24"):
        parse_calendar(ics(_timezone("Absurd", "+2500"), _good()) + b"END:VCALENDAR\r\n", WINDOW)


# --- F3 / F4: bounded expansion ------------------------------------------------------------------------


@pytest.fixture
def converted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many occurrences were made into events (``ical._event`` calls): the per-occurrence work."""
    calls = [0]
    real = ical._event

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(ical, "_event", counting)
    return calls


def test_rdates_beyond_the_cap_are_never_expanded(converted: list[int]) -> None:
    rdates = ",".join((START + timedelta(minutes=i)).strftime(STAMP) for i in range(3000))
    flood = vevent("rdates", "Flood", START, extra=(f"RDATE:{rdates}",))
    parsed = parse_calendar(ics(flood), WINDOW, max_occurrences=5)
    assert len(parsed.events) == 5
    assert parsed.problems == ("series 'rdates': more than 5 occurrences in the sync window, first 5 kept",)
    assert converted[0] <= 6  # was 3000: every RDATE became an event before the cap cut them


def test_rdates_outside_the_window_cost_nothing_and_inside_ones_are_kept(converted: list[int]) -> None:
    far = ",".join((NOW + timedelta(days=400 + i)).strftime(STAMP) for i in range(500))
    near = f"{(START + timedelta(days=1)).strftime(STAMP)},{(START + timedelta(days=2)).strftime(STAMP)}"
    past = (NOW - timedelta(days=100)).strftime(STAMP)  # before the window
    event = vevent("mixed", "Mixed", START, extra=(f"RDATE:{far}", f"RDATE:{near},{past}"))
    parsed = parse_calendar(ics(event), WINDOW, max_occurrences=5)
    assert sorted(e.start for e in parsed.events) == [START, START + timedelta(days=1), START + timedelta(days=2)]
    assert not parsed.problems and converted[0] == 3


def test_a_dense_rule_converts_no_more_occurrences_than_the_cap(converted: list[int]) -> None:
    event = vevent("secondly", "Every second", START, extra=("RRULE:FREQ=SECONDLY",))
    parsed = parse_calendar(ics(event), WINDOW, max_occurrences=5)
    assert len(parsed.events) == 5 and "more than 5 occurrences" in parsed.problems[0]
    assert converted[0] <= 6  # was 50: the overshoot the rule is expanded to, all made into events


@pytest.fixture
def months_walked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many months dateutil's rule walks entered (``_iterinfo.rebuild`` calls), in any rule class."""
    calls = [0]
    real = dateutil_rrule._iterinfo.rebuild

    def counting(self, year, month):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return real(self, year, month)

    monkeypatch.setattr(dateutil_rrule._iterinfo, "rebuild", counting)
    return calls


def test_a_rule_that_never_matches_is_not_walked_to_the_year_9999(months_walked: list[int]) -> None:
    never = vevent("never", "Never", START, extra=("RRULE:FREQ=WEEKLY;BYMONTH=2;BYMONTHDAY=30",))
    parsed = parse_calendar(ics(never, _good()), WINDOW)
    assert sorted(e.uid for e in parsed.events) == ["good-neighbour", "never"]  # DTSTART is the one occurrence
    assert months_walked[0] < 50  # was about 96,000: every month up to 9999


def test_a_bounded_rule_gives_what_dateutil_gives_inside_the_span() -> None:
    begin, end = datetime(2024, 1, 1), datetime(2026, 12, 31)
    for text in ("FREQ=WEEKLY;BYDAY=MO,TH", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "FREQ=MONTHLY;BYDAY=-1FR",
                 "FREQ=DAILY;INTERVAL=3;COUNT=40", "FREQ=HOURLY;INTERVAL=7;UNTIL=20250101T000000"):  # fmt: skip
        plain = dateutil_rrule.rrulestr(text, dtstart=datetime(2020, 2, 29, 9))
        bounded = WalkBoundedRule.like(plain)
        bounded.walk_to(end + timedelta(days=32))
        assert bounded.between(begin, end, inc=True) == plain.between(begin, end, inc=True), text


def test_a_bounded_rule_stops_its_walk_a_month_past_the_span() -> None:
    rule = dateutil_rrule.rrulestr("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", dtstart=datetime(2026, 1, 1))
    never = WalkBoundedRule.like(rule)
    never.walk_to(datetime(2027, 1, 1))
    assert never.between(datetime(2026, 6, 1), datetime(2027, 1, 1)) == []
    assert never.months_walked <= 16


def _day(days: int, hour: int = 9) -> datetime:
    return (WINDOW.start + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


def _stamp(days: int) -> str:
    return _day(days).strftime(STAMP)


SERIES = {
    # an override moves this and future occurrences 50 days on: EXDATE / RDATE values before the window
    # concern occurrences inside it
    "moved": (
        vevent("moved", "Weekly", _day(-60), extra=("RRULE:FREQ=WEEKLY;COUNT=20", f"EXDATE:{_stamp(-32)}",
                                                    f"RDATE:{_stamp(-30)}")),
        vevent("moved", "Weekly, later", _day(-39) + timedelta(days=50),
               extra=(f"RECURRENCE-ID;RANGE=THISANDFUTURE:{_stamp(-39)}", "SEQUENCE:1")),
    ),
    # a meeting of 30 days: RDATE starts before the window overlap it
    "long": (vevent("long", "Long", _day(-70), minutes=30 * 24 * 60,
                    extra=(f"RDATE:{_stamp(-50)},{_stamp(-20)},{_stamp(-5)},{_stamp(3)}",)),),
    "all-day": ("\r\n".join([
        "BEGIN:VEVENT", "UID:all-day", "SUMMARY:Days", f"DTSTART;VALUE=DATE:{_day(2):%Y%m%d}",
        f"RDATE;VALUE=DATE:{_day(-1):%Y%m%d},{_day(5):%Y%m%d},{_day(400):%Y%m%d}",
        f"EXDATE;VALUE=DATE:{_day(5):%Y%m%d}", "END:VEVENT",
    ]),),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SERIES))
def test_bounded_expansion_gives_what_the_library_gives_unbounded(name: str) -> None:
    import icalendar
    import recurring_ical_events

    data = ics(*SERIES[name])
    parsed = parse_calendar(data, WINDOW)
    unbounded = recurring_ical_events.of(icalendar.Calendar.from_ical(data)).between(WINDOW.start, WINDOW.end)
    expected = sorted(ical._to_utc(component["DTSTART"].dt) for component in unbounded)
    assert sorted(event.start for event in parsed.events) == expected
    assert expected and not parsed.problems
