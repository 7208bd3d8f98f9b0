"""The calendar through calendarView/delta: single events, occurrences and exceptions of series, cancelled
meetings, deletes, the sync window, and the keys (UID + RECURRENCE-ID) an .ics of the same meeting has."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sync_service.connectors.graph import GraphConnector
from sync_service.connectors.graph_events import event_to_ical, series_uid
from sync_service.parsing.ical import parse_calendar
from sync_service.values import CalendarEvent, SyncWindow
from tests.graph.conftest import CLIENT_ID, CLIENT_SECRET, drain
from tests.support.builders import REP
from tests.support.graph_server import FakeGraphServer
from tests.support.graph_state import global_object_id

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
WINDOW = SyncWindow.around(NOW)
WILE = ("wile@acme.example",)


def _events(items) -> dict[str, CalendarEvent]:  # type: ignore[no-untyped-def]
    out = {}
    for item in items:
        (event,) = parse_calendar(item.data, WINDOW).events  # one instance per raw item
        out[item.ref.external_id] = event
    return out


def test_series_occurrences_exceptions_and_cancellations(graph: FakeGraphServer, alice, connect) -> None:
    starts = [NOW - timedelta(weeks=2, hours=1) + timedelta(weeks=k) for k in range(4)]
    series = alice.schedule_series("Steering", starts, uid="steering-2026@acme.example", attendees=WILE)
    moved_from, dropped_from = starts[1], starts[2]
    alice.reschedule(series[moved_from], moved_from + timedelta(hours=3))  # an exception
    single = alice.schedule("Rocket demo", NOW + timedelta(days=3), attendees=WILE, location="Building 7",
                            categories=("Demo",))  # fmt: skip
    pages, items = drain(connect(), "calendar")
    events = _events(items)
    assert {e.uid for i, e in events.items() if i != single} == {"steering-2026@acme.example"}
    rids = {e.recurrence_id for i, e in events.items() if i != single}
    assert rids == {s.strftime("%Y-%m-%dT%H:%M:%SZ") for s in starts}  # originalStart, also for the exception
    assert events[series[moved_from]].start == moved_from + timedelta(hours=3)
    demo = events[single]
    assert demo.recurrence_id is None and demo.location == "Building 7" and demo.categories == ("Demo",)
    assert demo.organizer and demo.organizer.email == REP and [a.email for a in demo.attendees] == list(WILE)
    assert demo.end - demo.start == timedelta(hours=1) and not demo.cancelled
    # the organizer cancels the demo; one occurrence is deleted from the series
    alice.cancel_meeting(single)
    alice.delete_event(series[dropped_from])
    changes, changed = drain(connect(), "calendar", pages[-1].next_cursor)
    assert changes[0].deletes == (series[dropped_from],)
    assert _events(changed)[single].cancelled is True


def test_calendar_view_asks_for_the_sync_window(graph: FakeGraphServer, alice, connect) -> None:
    inside = alice.schedule("Call Wile", NOW + timedelta(days=10), 30)
    alice.schedule("Far future", NOW + timedelta(days=400))
    alice.schedule("Long ago", NOW - timedelta(days=400))
    pages, items = drain(connect(past_days="90", future_days="180"), "calendar")
    assert [i.ref.external_id for i in items] == [inside]
    (initial,) = [r for r in graph.graph_requests("/calendarView/delta") if "startDateTime" in r.query]
    assert "startDateTime" in initial.query and "endDateTime" in initial.query
    assert json.loads(pages[-1].next_cursor)["window"][0].endswith("T00:00:00Z")
    alice.reschedule(inside, NOW + timedelta(days=300))  # moved out of the range: reported under @removed
    changes, _ = drain(connect(past_days="90", future_days="180"), "calendar", pages[-1].next_cursor)
    assert changes[0].deletes == (inside,)


def test_the_window_moves_with_time_without_losing_changes(graph: FakeGraphServer, alice) -> None:
    url = graph.source_url(REP, CLIENT_ID)
    kept = alice.schedule("Weekly review", NOW + timedelta(days=1))
    gone = alice.schedule("Site visit", NOW + timedelta(days=2))
    pages, _ = drain(GraphConnector(url, CLIENT_SECRET, now=NOW), "calendar")
    alice.delete_event(gone)
    later = GraphConnector(url, CLIENT_SECRET, now=NOW + timedelta(days=2))
    pages2, items = drain(later, "calendar", pages[-1].next_cursor)
    assert pages2[0].deletes == (gone,) and pages2[0].more is True  # the old round's changes come first
    assert [i.ref.external_id for i in items] == [kept]  # then a new round on the moved window
    assert all(not p.full_resync for p in pages2)
    window = json.loads(pages2[-1].next_cursor)["window"]
    assert window[0] > json.loads(pages[-1].next_cursor)["window"][0]


def test_resync_of_the_calendar_after_410(graph: FakeGraphServer, alice, connect) -> None:
    alice.schedule("Rocket demo", NOW + timedelta(days=3))
    pages, _ = drain(connect(), "calendar")
    graph.expire_sync_state()
    again, items = drain(connect(), "calendar", pages[-1].next_cursor)
    assert again[0].full_resync is True and len(items) == 1


def test_outlook_meeting_uid_is_the_clean_global_object_id(graph: FakeGraphServer, alice, connect) -> None:
    starts = [NOW + timedelta(days=1 + 7 * k) for k in range(2)]
    alice.schedule_series("Pipeline review", starts)  # created in Outlook: no vCal-Uid inside
    _, items = drain(connect(), "calendar")
    uids = {e.uid for e in _events(items).values()}
    assert len(uids) == 1
    (uid,) = uids
    assert uid.startswith("040000008200E00074C5B7101A82E00800000000")  # instance date zeroed


def test_series_uid_decoding() -> None:
    created = datetime(2026, 3, 1, tzinfo=UTC)
    seed = bytes(range(16))
    master = global_object_id(created, None, None, seed)
    occurrence = global_object_id(created, datetime(2026, 5, 4).date(), None, seed)
    assert occurrence != master and series_uid(occurrence) == series_uid(master) == master
    external = global_object_id(created, datetime(2026, 5, 4).date(), "abc-123@google.com", seed)
    assert series_uid(external) == "abc-123@google.com"
    assert series_uid("not-hex@example.com") == "not-hex@example.com"


def test_event_json_edge_cases() -> None:
    base = {"id": "e1", "iCalUId": "plain-uid", "subject": "Offsite", "lastModifiedDateTime": "2026-05-01T10:00:00Z"}
    all_day = {**base, "isAllDay": True, "type": "occurrence", "originalStart": "2026-06-01T22:00:00Z",
               "originalStartTimeZone": "W. Europe Standard Time",
               "start": {"dateTime": "2026-06-02T00:00:00.0000000", "timeZone": "UTC"},
               "end": {"dateTime": "2026-06-03T00:00:00.0000000", "timeZone": "UTC"}}  # fmt: skip
    window = SyncWindow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    (event,) = parse_calendar(event_to_ical(all_day), window).events
    assert event.all_day and event.recurrence_id == "2026-06-02"  # midnight in Berlin, not the UTC date
    zoned = {**base, "start": {"dateTime": "2026-06-02T09:00:00", "timeZone": "Pacific Standard Time"},
             "end": {"dateTime": "2026-06-02T10:00:00", "timeZone": "America/Los_Angeles"},
             "organizer": {"emailAddress": {"address": "/O=EXCHANGELABS/OU=x/CN=RECIPIENTS/CN=bob"}}}  # fmt: skip
    (event,) = parse_calendar(event_to_ical(zoned), window).events
    assert event.start == datetime(2026, 6, 2, 16, 0, tzinfo=UTC) and event.organizer is None
    assert event_to_ical(zoned) == event_to_ical(dict(zoned))  # deterministic bytes
