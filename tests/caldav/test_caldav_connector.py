"""The CalDAV connector against a real Radicale: discovery, sync-token and CTag/ETag tracking, paging, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sync_service.connectors.base import RawItem
from sync_service.connectors.caldav import CalDavConnector
from sync_service.connectors.davsnap import decode_state
from sync_service.errors import ConfigError, PermanentSourceError, TransientSourceError
from tests.caldav.conftest import PASSWORD
from tests.support.builders import ics, vevent
from tests.support.radicale import RadicaleServer

WHEN = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def event(uid: str, summary: str) -> str:
    return ics(vevent(uid, summary, WHEN)).decode()


def drain(connector: CalDavConnector, folder: str, cursor: str | None, limit: int = 500):  # type: ignore[no-untyped-def]
    items: list[RawItem] = []
    deletes: list[str] = []
    while True:
        page = connector.list_changes(folder, cursor, limit)
        items += list(connector.fetch(folder, page.upserts))
        deletes += page.deletes
        cursor = page.next_cursor
        if not page.more:
            return items, deletes, cursor


def summaries(items: list[RawItem]) -> list[str]:
    return sorted(line[8:] for i in items for line in i.data.decode().splitlines() if line.startswith("SUMMARY:"))


@pytest.mark.parametrize("mode", ["auto", "etag"])
def test_changes_are_tracked_by_sync_token_or_etags(radicale: RadicaleServer, mode: str) -> None:
    principal = radicale.client("alice").principal()
    work = principal.make_calendar(name="Work", cal_id="work")
    principal.make_calendar(name="Home", cal_id="home")
    events = [work.save_event(event(f"e{i}", f"Event {i}")) for i in range(5)]
    dav = CalDavConnector(radicale.url("alice") + f"?sync={mode}", PASSWORD)
    assert sorted(dav.folders()) == ["/alice/home/", "/alice/work/"]
    items, deletes, cursor = drain(dav, "/alice/work/", None, limit=2)  # three pages
    assert summaries(items) == [f"Event {i}" for i in range(5)] and deletes == []
    assert all(i.ref.kind == "calendar" and i.ref.version.startswith('"') for i in items)
    assert decode_state(cursor).mode == ("sync" if mode == "auto" else "etag")
    assert drain(dav, "/alice/work/", cursor)[:2] == ([], [])

    events[0].delete()
    events[1].data = event("e1", "Event 1 moved")
    events[1].save()
    work.save_event(event("e9", "Event 9"))
    items, deletes, cursor = drain(dav, "/alice/work/", cursor)
    assert summaries(items) == ["Event 1 moved", "Event 9"] and deletes == ["/alice/work/e0.ics"]
    assert drain(dav, "/alice/work/", cursor)[:2] == ([], [])
    dav.close()


def test_a_page_cursor_covers_only_its_page(radicale: RadicaleServer) -> None:
    work = radicale.client("alice").principal().make_calendar(name="Work", cal_id="work")
    for i in range(4):
        work.save_event(event(f"e{i}", f"Event {i}"))
    dav = CalDavConnector(radicale.url("alice"), PASSWORD)
    first = dav.list_changes("/alice/work/", None, limit=3)
    assert first.more and len(first.upserts) == 3
    dav.close()  # a crash after storing page 1: a new connector resumes from its cursor
    resumed = CalDavConnector(radicale.url("alice"), PASSWORD)
    rest = resumed.list_changes("/alice/work/", first.next_cursor, limit=3)
    assert not rest.more and [r.external_id for r in rest.upserts] == ["/alice/work/e3.ics"]


def test_an_expired_sync_token_lists_again(radicale: RadicaleServer) -> None:
    work = radicale.client("alice").principal().make_calendar(name="Work", cal_id="work")
    gone = work.save_event(event("e0", "Event 0"))
    work.save_event(event("e1", "Event 1"))
    dav = CalDavConnector(radicale.url("alice"), PASSWORD)
    state = decode_state(drain(dav, "/alice/work/", None)[2])
    gone.delete()
    stale = type(state)(state.snapshot, "http://radicale.org/ns/sync/unknown", None, "sync").encode()
    items, deletes, _ = drain(dav, "/alice/work/", stale)
    assert items == [] and deletes == ["/alice/work/e0.ics"]  # found by diffing a full listing


def test_a_url_naming_one_calendar_syncs_only_that_one(radicale: RadicaleServer) -> None:
    principal = radicale.client("alice").principal()
    principal.make_calendar(name="Work", cal_id="work")
    principal.make_calendar(name="Home", cal_id="home")
    assert list(CalDavConnector(radicale.url("alice", "home"), PASSWORD).folders()) == ["/alice/home/"]
    with pytest.raises(PermanentSourceError, match="no calendar"):
        CalDavConnector(radicale.url("alice"), PASSWORD).list_changes("/alice/nope/", None)


def test_a_url_naming_an_unknown_calendar_says_which_path(radicale: RadicaleServer) -> None:
    radicale.client("alice").principal().make_calendar(name="Work", cal_id="work")
    with pytest.raises(PermanentSourceError) as missing:
        CalDavConnector(radicale.url("alice", "nosuchcal"), PASSWORD).folders()
    where = f"CalDAV alice@127.0.0.1:{radicale.port}"
    assert str(missing.value) == f"{where}: no calendar at /alice/nosuchcal/ (check the path in the URL)"
    assert PASSWORD not in str(missing.value)


def test_errors_are_clear_and_never_carry_the_secret(radicale: RadicaleServer) -> None:
    with pytest.raises(PermanentSourceError, match="access refused") as bad:
        CalDavConnector(radicale.url("alice"), "Wrong-Pass-1").folders()
    assert "Wrong-Pass-1" not in str(bad.value)
    with pytest.raises(ConfigError, match="password in the source URL"):
        CalDavConnector(f"caldav://alice:{PASSWORD}@127.0.0.1:{radicale.port}/alice/", None)
    radicale.stop()
    with pytest.raises(TransientSourceError, match="connection failed") as down:
        CalDavConnector(radicale.url("alice") + "?timeout=5", PASSWORD).folders()
    assert PASSWORD not in str(down.value)
