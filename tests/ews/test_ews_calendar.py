"""EwsConnector — the calendar folder: CalendarView occurrences as iCalendar, the cheap change probe, paging,
deletes, window and caps — real exchangelib against the loopback EWS server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sync_service.connectors import ews
from sync_service.connectors.base import ChangePage
from sync_service.connectors.ews import EwsConnector
from sync_service.connectors.registry import open_connector
from sync_service.errors import TransientSourceError
from sync_service.parsing.ical import parse_calendar
from sync_service.values import CalendarEvent, SyncWindow
from tests.support import ews_scenario as scenario
from tests.support.builders import REP
from tests.support.ews_server import SVC_PASSWORD, EwsServer, url_for
from tests.support.ews_store import Event

NOW = scenario.NOW
WINDOW = SyncWindow.around(NOW)


def _open(server: EwsServer, **options: str) -> EwsConnector:
    conn = open_connector(url_for(server, REP, **options), SVC_PASSWORD)
    assert isinstance(conn, EwsConnector)
    return conn


@pytest.fixture
def conn(ews_server: EwsServer) -> Iterator[EwsConnector]:
    connector = _open(ews_server)
    yield connector
    connector.close()


def _events(data: bytes) -> set[tuple[str, str | None, datetime, datetime, bool, str]]:
    parsed = parse_calendar(data, WINDOW)
    assert parsed.problems == ()
    return {_key(e) for e in parsed.events}


def _key(e: CalendarEvent) -> tuple[str, str | None, datetime, datetime, bool, str]:
    return (e.uid, e.recurrence_id, e.start, e.end, e.cancelled, e.summary)


def _single(uid: str, days: float, subject: str = "Meeting") -> Event:
    start = NOW + timedelta(days=days)
    return Event(
        uid=uid, subject=subject, start=start, end=start + timedelta(hours=1), organizer=REP, required=(scenario.WILE,)
    )


def test_occurrences_and_exceptions_match_the_same_series_from_an_ics_file(
    ews_server: EwsServer, conn: EwsConnector
) -> None:
    scenario.fill_ews(ews_server.store)
    page = conn.list_changes("calendar", None)
    assert [r.external_id for r in page.upserts] == sorted(r.external_id for r in page.upserts)
    assert {r.kind for r in page.upserts} == {"calendar"} and not page.more and page.deletes == ()
    raws = list(conn.fetch("calendar", page.upserts))
    from_ews = set().union(*(_events(r.data) for r in raws))
    assert from_ews == _events(scenario.calendar_ics())  # same UID + RECURRENCE-ID keys, times, states
    series = {k for k in from_ews if k[0] == scenario.SERIES_UID}
    assert len(series) == 5  # six occurrences minus the deleted one
    assert sum(1 for k in series if k[4]) == 1  # one cancelled
    moved = next(k for k in series if k[2] - scenario.SERIES_START == timedelta(weeks=1) + scenario.MOVED_BY)
    assert moved[1] == (scenario.SERIES_START + timedelta(weeks=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    parsed = parse_calendar(next(r.data for r in raws if r.ref.external_id == scenario.SERIES_UID), WINDOW)
    assert {a.email for e in parsed.events for a in e.attendees} == {scenario.WILE}
    assert {e.organizer.email for e in parsed.events if e.organizer} == {REP}


def test_unchanged_calendar_costs_one_sync_request(ews_server: EwsServer, conn: EwsConnector) -> None:
    scenario.fill_ews(ews_server.store)
    cursor = conn.list_changes("calendar", None).next_cursor
    ews_server.requests.clear()
    again = conn.list_changes("calendar", cursor)
    assert again.upserts == () and again.deletes == () and not again.more
    assert ews_server.operations() == ["SyncFolderItems"]  # no CalendarView, no GetItem


def test_changed_and_deleted_series(ews_server: EwsServer, conn: EwsConnector) -> None:
    ids = scenario.fill_ews(ews_server.store)
    first = conn.list_changes("calendar", None)
    versions = {r.external_id: r.version for r in first.upserts}
    ews_server.store.update_event(ids[scenario.SERIES_UID], deleted={scenario.DELETED, 1})
    ews_server.store.delete(ids["b-demo@northwind-sales.example"])
    page = conn.list_changes("calendar", first.next_cursor)
    assert [r.external_id for r in page.upserts] == [scenario.SERIES_UID]
    assert page.upserts[0].version != versions[scenario.SERIES_UID]
    assert page.deletes == ("b-demo@northwind-sales.example",)
    [raw] = list(conn.fetch("calendar", page.upserts))
    assert len(_events(raw.data)) == 4
    assert conn.list_changes("calendar", page.next_cursor).upserts == ()


def test_pages_of_series_and_their_cursors(ews_server: EwsServer, conn: EwsConnector) -> None:
    for n in range(5):
        ews_server.store.add(REP, "calendar", "calendar", event=_single(f"uid-{n}", n + 1))
    pages: list[ChangePage] = []
    cursor = None
    while not pages or pages[-1].more:
        pages.append(conn.list_changes("calendar", cursor, limit=2))
        cursor = pages[-1].next_cursor
        if len(pages) == 1:
            ews_server.requests.clear()
    assert "FindItem" not in ews_server.operations()  # later pages reuse the first page's CalendarView
    assert [len(p.upserts) for p in pages] == [2, 2, 1]
    assert [r.external_id for p in pages for r in p.upserts] == [f"uid-{n}" for n in range(5)]
    replay = conn.list_changes("calendar", pages[0].next_cursor, limit=2)  # a crash before page 2 was stored
    assert replay.upserts == pages[1].upserts
    assert conn.list_changes("calendar", cursor).upserts == ()


def test_invalid_sync_state_needs_no_full_resync(ews_server: EwsServer, conn: EwsConnector) -> None:
    scenario.fill_ews(ews_server.store)
    cursor = conn.list_changes("calendar", None).next_cursor
    ews_server.store.invalidate_sync_states()
    page = conn.list_changes("calendar", cursor)
    assert not page.full_resync and page.upserts == () and page.deletes == ()  # the digests still hold
    assert "FindItem" in ews_server.operations()


def test_sync_window_and_occurrence_cap(ews_server: EwsServer) -> None:
    store = ews_server.store
    store.add(REP, "calendar", "calendar", event=_single("old", -100))
    store.add(REP, "calendar", "calendar", event=_single("recent", -20))
    daily = _single("daily", -5, "Stand-up")
    daily.every, daily.count = timedelta(days=1), 40
    store.add(REP, "calendar", "calendar", event=daily)
    conn = _open(ews_server, past_days="30", max_occurrences="10")
    page = conn.list_changes("calendar", None)
    assert {r.external_id for r in page.upserts} == {"recent", "daily"}
    [raw] = list(conn.fetch("calendar", [r for r in page.upserts if r.external_id == "daily"]))
    starts = sorted(k[2] for k in _events(raw.data))
    assert len(starts) == 10 and starts[0] == daily.start  # the earliest ten


def test_a_full_calendar_view_is_split(
    ews_server: EwsServer, conn: EwsConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ews, "VIEW_LIMIT", 3)
    for n in range(7):
        ews_server.store.add(REP, "calendar", "calendar", event=_single(f"many-{n}", n * 3 + 1))
    page = conn.list_changes("calendar", None)
    assert len(page.upserts) == 7
    assert ews_server.operations().count("FindItem") > 1


def test_all_day_events_are_dates_of_the_meeting_time_zone(ews_server: EwsServer, conn: EwsConnector) -> None:
    day = datetime.combine((NOW + timedelta(days=10)).date(), datetime.min.time(), UTC)
    tokyo_midnight = day - timedelta(hours=9)  # EWS sends all-day bounds as UTC instants of local midnights
    ews_server.store.add(
        REP,
        "calendar",
        "calendar",
        event=Event(
            uid="offsite",
            subject="Offsite",
            start=tokyo_midnight,
            end=tokyo_midnight + timedelta(days=2),
            organizer=REP,
            all_day=True,
            timezone="Tokyo Standard Time",
        ),
    )
    page = conn.list_changes("calendar", None)
    [raw] = list(conn.fetch("calendar", page.upserts))
    assert b"DTSTART;VALUE=DATE:" in raw.data
    [event] = parse_calendar(raw.data, WINDOW).events
    assert event.all_day and event.start == day and event.end == day + timedelta(days=2)


def test_throttled_calendar_view(ews_server: EwsServer, conn: EwsConnector) -> None:
    ews_server.store.add(REP, "calendar", "calendar", event=_single("x", 1))
    ews_server.throttle(back_off_ms=5000, operation="FindItem")
    with pytest.raises(TransientSourceError) as caught:
        conn.list_changes("calendar", None)
    assert caught.value.retry_after == 5.0
    assert [r.external_id for r in conn.list_changes("calendar", None).upserts] == ["x"]
