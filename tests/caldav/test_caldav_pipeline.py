"""CalDAV through the whole pipeline (SPEC §4): create, move, cancel, delete, a recurring series with exceptions;
and a calendar feed over HTTP with ETag / If-None-Match."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from crm_store.db import transaction
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.connectors.icsfeed import IcsFeedConnector
from sync_service.connectors.registry import needs_secret
from sync_service.exports import export_activities
from sync_service.pipeline.runner import run_once
from tests.caldav.conftest import PASSWORD
from tests.support.builders import REP, ics, vevent
from tests.support.radicale import RadicaleServer

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
WILE = ("wile@acme.example",)
FMT = "%Y%m%dT%H%M%SZ"


def by_uid(app: App) -> dict[tuple[str, str | None], dict]:
    with app.sessions() as session:
        return {(a["ical_uid"], a["recurrence_id"]): a for a in export_activities(session) if a["ical_uid"]}


def series() -> str:
    """Weekly, four times from two weeks ago; the third occurrence moved by two hours, the fourth cancelled."""
    first = NOW - timedelta(weeks=2)
    third, fourth = first + timedelta(weeks=2), first + timedelta(weeks=3)
    return ics(
        vevent("weekly", "Steering", first, attendees=WILE, extra=("RRULE:FREQ=WEEKLY;COUNT=4",)),
        vevent("weekly", "Steering (moved)", third + timedelta(hours=2), attendees=WILE,
               extra=(f"RECURRENCE-ID:{third.strftime(FMT)}",)),
        vevent("weekly", "Steering", fourth, attendees=WILE,
               extra=(f"RECURRENCE-ID:{fourth.strftime(FMT)}", "STATUS:CANCELLED")),
    ).decode()


def sync(app: App) -> None:
    report = run_once(app)
    assert not report.failed, report.failed


@pytest.mark.parametrize("mode", ["auto", "etag"])
def test_calendar_events_follow_the_caldav_server(keyed_app: App, radicale: RadicaleServer, mode: str) -> None:
    work = radicale.client("alice").principal().make_calendar(name="Work", cal_id="work")
    demo = work.save_event(ics(vevent("demo", "Rocket demo", NOW + timedelta(days=3), attendees=WILE)).decode())
    review = work.save_event(ics(vevent("review", "Review", NOW + timedelta(days=4), attendees=WILE)).decode())
    visit = work.save_event(ics(vevent("visit", "Site visit", NOW + timedelta(days=5), attendees=WILE)).decode())
    work.save_event(ics(vevent("past", "Kick-off", NOW - timedelta(days=2), attendees=WILE)).decode())
    work.save_event(series())
    with transaction(keyed_app.sessions) as session:
        url = radicale.url("alice") + f"?sync={mode}"
        mailboxes.add_mailbox(session, "alice-cal", REP, url, PASSWORD, keyed_app.settings.secret_keys)
    sync(keyed_app)
    acts = by_uid(keyed_app)
    assert acts[("demo", None)]["status"] == "planned" and acts[("demo", None)]["opportunity"] == "Rockets"
    assert acts[("past", None)]["status"] == "completed" and acts[("demo", None)]["mailboxes"] == ["alice-cal"]
    weekly = {k[1]: a for k, a in acts.items() if k[0] == "weekly"}
    assert len(weekly) == 4
    ordered = [weekly[k] for k in sorted(weekly)]
    assert [a["status"] for a in ordered] == ["completed", "completed", "planned", "cancelled"]
    third_start = (NOW + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    assert ordered[2]["subject"] == "Steering (moved)" and ordered[2]["start"].startswith(third_start)

    demo.data = ics(vevent("demo", "Rocket demo", NOW + timedelta(days=6), attendees=WILE, extra=("SEQUENCE:1",)))
    demo.save()  # moved three days later
    review.data = ics(vevent("review", "Review", NOW + timedelta(days=4), attendees=WILE,
                             extra=("STATUS:CANCELLED", "SEQUENCE:1")))
    review.save()
    visit.delete()
    sync(keyed_app)
    acts = by_uid(keyed_app)
    moved = (NOW + timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%S")
    assert acts[("demo", None)]["start"].startswith(moved) and acts[("demo", None)]["status"] == "planned"
    assert acts[("review", None)]["status"] == "cancelled"
    assert acts[("visit", None)]["status"] == "cancelled"  # deleted at the source
    assert len([k for k in acts if k[0] == "weekly"]) == 4 and len(acts) == 8  # nothing doubled


def test_an_unknown_calendar_fails_the_mailbox_naming_the_path(keyed_app: App, radicale: RadicaleServer) -> None:
    radicale.client("alice").principal().make_calendar(name="Work", cal_id="work")
    with transaction(keyed_app.sessions) as session:
        url = radicale.url("alice", "nosuchcal")
        mailboxes.add_mailbox(session, "alice-cal", REP, url, PASSWORD, keyed_app.settings.secret_keys)
    report = run_once(keyed_app)
    [result] = report.mailboxes
    assert result.state == "failed" and report.failed
    assert result.error == (
        f"CalDAV alice@127.0.0.1:{radicale.port}: no calendar at /alice/nosuchcal/ (check the path in the URL)"
    )


class _Feed(BaseHTTPRequestHandler):
    body = b""
    etag = '"v1"'
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        if self.headers.get("If-None-Match") == type(self).etag:
            type(self).requests.append("304")
            self.send_response(304)
            self.end_headers()
            return
        type(self).requests.append("200")
        self.send_response(200)
        self.send_header("ETag", type(self).etag)
        self.send_header("Content-Type", "text/calendar")
        self.send_header("Content-Length", str(len(type(self).body)))
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def feed() -> Iterator[tuple[type[_Feed], str]]:
    handler = type("Feed", (_Feed,), {"requests": [], "body": b"", "etag": '"v1"'})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield handler, f"ics+http://127.0.0.1:{server.server_address[1]}/team/feed.ics"
    finally:
        server.shutdown()
        server.server_close()


def test_calendar_feed_uses_etags_and_cancels_what_disappears(keyed_app: App, feed) -> None:  # type: ignore[no-untyped-def]
    handler, url = feed
    handler.body = ics(
        vevent("f1", "Rocket review", NOW + timedelta(days=2), attendees=WILE),
        vevent("f2", "Pricing call", NOW + timedelta(days=3), attendees=WILE),
    )
    assert not needs_secret(url) and needs_secret(url.replace("://", "://alice@"))
    with transaction(keyed_app.sessions) as session:
        mailboxes.add_mailbox(session, "team-feed", REP, url, None, ())
    sync(keyed_app)
    assert set(by_uid(keyed_app)) == {("f1", None), ("f2", None)}
    sync(keyed_app)
    assert handler.requests == ["200", "304"]  # unchanged feed: If-None-Match answered 304, nothing re-read
    handler.body, handler.etag = ics(vevent("f1", "Rocket review", NOW + timedelta(days=2), attendees=WILE)), '"v2"'
    sync(keyed_app)
    acts = by_uid(keyed_app)
    assert acts[("f2", None)]["status"] == "cancelled" and acts[("f1", None)]["status"] == "planned"
    connector = IcsFeedConnector(url)
    page = connector.list_changes(".", None)
    assert [r.version for r in page.upserts] == ['"v2"']
    assert [i.data for i in connector.fetch(".", page.upserts)] == [handler.body]
    connector.close()


def endless_series() -> str:
    """Weekly from two days ago, no end (occurrence n at NOW + 7n - 2 days): occurrence 6 an EXDATE, 7 moved by
    three hours. With a window of 7 days back and 28 ahead: occurrences 0–4 at NOW, 4–8 thirty days later."""
    first = NOW - timedelta(days=2)
    seventh = first + timedelta(weeks=7)
    exdate = f"EXDATE:{(first + timedelta(weeks=6)).strftime(FMT)}"
    return ics(
        vevent("endless", "Steering", first, attendees=WILE, extra=("RRULE:FREQ=WEEKLY", exdate)),
        vevent("endless", "Steering (moved)", seventh + timedelta(hours=3), attendees=WILE,
               extra=(f"RECURRENCE-ID:{seventh.strftime(FMT)}",)),
    ).decode()  # fmt: skip


def _occurrences(app: App) -> dict[int, dict]:
    """The endless series' activities by occurrence number."""
    first = NOW - timedelta(days=2)
    return {
        round((datetime.fromisoformat(rid) - first) / timedelta(weeks=1)): a
        for (uid, rid), a in by_uid(app).items()
        if uid == "endless" and rid is not None
    }


def test_an_endless_series_slides_with_the_window(keyed_app: App, radicale: RadicaleServer, feed) -> None:  # type: ignore[no-untyped-def]
    """Neither the CalDAV resource nor the feed changes as the days pass; the occurrences that enter the window
    become activities all the same (SPEC §4), once, with the series' exceptions."""
    keyed_app.settings = replace(keyed_app.settings, window_days_back=7, window_days_ahead=28)
    work = radicale.client("alice").principal().make_calendar(name="Work", cal_id="work")
    work.save_event(endless_series())
    handler, url = feed
    handler.body = endless_series().replace("endless", "endless-feed").encode()
    with transaction(keyed_app.sessions) as session:
        keys = keyed_app.settings.secret_keys
        mailboxes.add_mailbox(session, "alice-cal", REP, radicale.url("alice"), PASSWORD, keys)
        mailboxes.add_mailbox(session, "team-feed", REP, url, None, ())
    assert not run_once(keyed_app, now=NOW).failed
    assert sorted(_occurrences(keyed_app)) == [0, 1, 2, 3, 4]
    later = NOW + timedelta(days=30)
    report = run_once(keyed_app, now=later)
    assert not report.failed and handler.requests == ["200", "304"]  # nothing new was fetched
    acts = _occurrences(keyed_app)
    assert sorted(acts) == [0, 1, 2, 3, 4, 5, 7, 8]  # 6 is an EXDATE
    assert [acts[n]["status"] for n in (0, 4, 5, 7, 8)] == ["completed", "completed", "planned", "planned", "planned"]
    moved = NOW - timedelta(days=2) + timedelta(weeks=7, hours=3)
    assert acts[7]["subject"] == "Steering (moved)" and acts[7]["start"].startswith(moved.strftime("%Y-%m-%dT%H:%M"))
    feed_rids = {rid for (uid, rid) in by_uid(keyed_app) if uid == "endless-feed"}
    assert feed_rids == {a["recurrence_id"] for a in acts.values()}  # the feed's copy slid the same way
    assert report.stats.logged == 2 * 3
    assert run_once(keyed_app, now=later + timedelta(hours=1)).stats.logged == 0  # nothing doubled
    assert len(_occurrences(keyed_app)) == 8
