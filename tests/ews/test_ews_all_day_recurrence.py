"""EwsConnector — the RECURRENCE-ID of all-day occurrences is their local date, as in an .ics of the same series.

Exchange gives an occurrence's original start as the UTC instant of its local midnight; east of UTC that is
the day before in UTC. Real exchangelib against the loopback EWS server, which expands series on the wall clock
of the meeting's time zone (as Exchange does). The series builder is ``tests.support.all_day_series``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from exchangelib import EWSTimeZone

from sync_service.connectors.base import RawItem
from sync_service.connectors.ews import EwsConnector
from sync_service.connectors.registry import open_connector
from sync_service.parsing.ical import parse_calendar
from sync_service.values import CalendarEvent, SyncWindow
from tests.support.all_day_series import TODAY, WILE, WINDOW, ZONES, AllDaySeries, weekly
from tests.support.builders import REP, ics
from tests.support.ews_server import SVC_PASSWORD, EwsServer, url_for
from tests.support.ews_store import Event


def _keys(data: bytes) -> set[tuple[str, str | None, datetime, datetime, bool]]:
    parsed = parse_calendar(data, WINDOW)
    assert parsed.problems == ()
    return {_key(e) for e in parsed.events}


def _key(e: CalendarEvent) -> tuple[str, str | None, datetime, datetime, bool]:
    return (e.uid, e.recurrence_id, e.start, e.end, e.cancelled)


@pytest.fixture
def conn(ews_server: EwsServer) -> Iterator[EwsConnector]:
    connector = open_connector(url_for(ews_server, REP), SVC_PASSWORD)
    assert isinstance(connector, EwsConnector)
    yield connector
    connector.close()


def _calendar(conn: EwsConnector) -> list[RawItem]:
    page = conn.list_changes("calendar", None)
    return list(conn.fetch("calendar", page.upserts))


@pytest.mark.parametrize("iana", list(ZONES))
def test_all_day_occurrences_are_keyed_by_their_local_date(
    ews_server: EwsServer, conn: EwsConnector, iana: str
) -> None:
    series = weekly(iana)
    ews_server.store.add(REP, "calendar", "calendar", event=series.event())
    [raw] = _calendar(conn)
    assert b"RECURRENCE-ID;VALUE=DATE:" in raw.data
    events = parse_calendar(raw.data, WINDOW).events
    assert {e.recurrence_id: e.start.date() for e in events} == series.expected()
    assert all(e.all_day for e in events)
    assert _keys(raw.data) == _keys(series.ics())  # the same keys, days and states as the .ics


@pytest.mark.filterwarnings("ignore:Cannot convert value")
def test_an_unknown_time_zone_keys_by_the_same_dates_as_the_starts(
    ews_server: EwsServer, conn: EwsConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zone exchangelib cannot name (a "Customized Time Zone"): it reads the start dates in the host's zone
    (here Tokyo); the recurrence ids follow, so an unmoved occurrence keeps RECURRENCE-ID = DTSTART."""
    monkeypatch.setattr(EWSTimeZone, "localzone", classmethod(lambda cls: cls("Asia/Tokyo")))
    series = AllDaySeries(
        "custom-zone@northwind-sales.example", "Europe/Berlin", TODAY + timedelta(days=3), 4,
        windows_zone="Customized Time Zone",
    )  # fmt: skip
    ews_server.store.add(REP, "calendar", "calendar", event=series.event())
    [raw] = _calendar(conn)
    events = parse_calendar(raw.data, WINDOW).events
    assert len(events) == 4
    assert {e.recurrence_id for e in events} == {e.start.date().isoformat() for e in events}


def test_timed_occurrences_keep_their_utc_original_start(ews_server: EwsServer, conn: EwsConnector) -> None:
    """A timed series in Berlin: RECURRENCE-ID stays the UTC instant (09:00 local is 08:00Z or 07:00Z), as the
    expansion of the same series with a TZID gives."""
    first = TODAY - timedelta(days=80)
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime.combine(first, time(9), berlin).astimezone(UTC)
    ews_server.store.add(
        REP, "calendar", "calendar",
        event=Event(uid="standup@northwind-sales.example", subject="Standup", start=start,
                    end=start + timedelta(hours=1), organizer=REP, required=(WILE,),
                    timezone="W. Europe Standard Time", every=timedelta(weeks=1), count=36),
    )  # fmt: skip
    [raw] = _calendar(conn)
    calendar = ics(
        "\r\n".join(
            [
                "BEGIN:VEVENT",
                "UID:standup@northwind-sales.example",
                "DTSTAMP:20260101T000000Z",
                f"DTSTART;TZID=Europe/Berlin:{first:%Y%m%d}T090000",
                f"DTEND;TZID=Europe/Berlin:{first:%Y%m%d}T100000",
                "SUMMARY:Standup",
                "RRULE:FREQ=WEEKLY;COUNT=36",
                "END:VEVENT",
            ]
        )
    )
    assert _keys(raw.data) == _keys(calendar)
    rids = {e.recurrence_id for e in parse_calendar(raw.data, WINDOW).events}
    assert {rid[-10:] for rid in rids if rid} == {"T08:00:00Z", "T07:00:00Z"} and len(rids) == 36


def _last_short_day(iana: str) -> date:
    """The latest day before today that lasts 23 hours in ``iana`` (the clocks went forward)."""
    zone, day = ZoneInfo(iana), TODAY - timedelta(days=1)
    while True:
        start, end = (datetime.combine(d, time(), zone).astimezone(UTC) for d in (day, day + timedelta(days=1)))
        if end - start < timedelta(hours=24):
            return day
        day -= timedelta(days=1)


def test_a_one_day_event_on_the_day_the_clocks_go_forward_ends_that_day(ews_server: EwsServer) -> None:
    """exchangelib finds an all-day event's last day 24 hours before its end: that day has 23."""
    day = _last_short_day("Europe/Berlin")
    one = AllDaySeries("spring@northwind-sales.example", "Europe/Berlin", day, 1)
    event = Event(uid=one.uid, subject="Spring fair", start=one.midnight(day),
                  end=one.midnight(day + timedelta(days=1)), organizer=REP, required=(WILE,), all_day=True,
                  timezone=ZONES["Europe/Berlin"])  # fmt: skip
    ews_server.store.add(REP, "calendar", "calendar", event=event)
    connector = open_connector(url_for(ews_server, REP, past_days="400"), SVC_PASSWORD)
    assert isinstance(connector, EwsConnector)
    try:
        [raw] = _calendar(connector)
    finally:
        connector.close()
    window = SyncWindow(datetime.combine(day, time(), UTC) - timedelta(days=1), datetime.now(UTC))
    [parsed] = parse_calendar(raw.data, window).events
    assert (parsed.start.date(), parsed.end.date()) == (day, day + timedelta(days=1))
