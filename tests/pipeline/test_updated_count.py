"""The sync summary's counters for meetings (``cli.sync.print_report``): a calendar read again counts as
``updated`` only the activities whose times, status, subject, links… changed; the same meeting in one more
calendar is ``already known``; ``cancelled`` counts the meetings that became cancelled in this run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sync_service.cli.sync import print_report
from tests.support.builders import REP2, ics, vevent
from tests.support.process_helpers import write_calendar

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
WILE, HANK = ("wile@acme.example",), ("hank@globex.example",)


def _write(box: Path, *events: str) -> None:
    write_calendar(box, ics(*events))


def _events(n: int, *, moved: int | None = None, renamed: int | None = None, gone: int | None = None) -> list[str]:
    found = []
    for i in range(n):
        start = NOW + timedelta(days=1 + i, hours=10 if i != moved else 14)
        summary = "Review with Wile" if i != renamed else "Review with Wile (agenda)"
        extra = ("STATUS:CANCELLED",) if i in (gone, n - 1) else ()  # the last one was cancelled all along
        found.append(vevent(f"e{i}@acme.example", f"{summary} {i}", start, attendees=WILE, extra=extra))
    return found


def test_a_calendar_read_again_counts_only_the_meetings_that_changed(crm, add_mailbox, sync, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    box = tmp_path / "alice"
    _write(box, *_events(20))
    add_mailbox("alice", box)
    first = sync()
    assert (first.stats.logged, first.stats.updated, first.stats.cancelled) == (20, 0, 1)

    _write(box, *_events(20, moved=3, renamed=7, gone=11))  # three meetings changed, seventeen did not
    again = sync()
    stats = again.stats
    assert (stats.logged, stats.updated, stats.cancelled, stats.duplicates) == (0, 3, 1, 0)
    print_report(again)
    assert "logged 0 activities, updated 3 (1 cancelled), 0 already known" in capsys.readouterr().out

    _write(box, *_events(20, moved=3, renamed=7, gone=11), vevent("new@acme.example", "Kick-off", NOW, attendees=WILE))
    third = sync()  # only a new meeting: nothing updated, nothing cancelled again
    assert (third.stats.logged, third.stats.updated, third.stats.cancelled) == (1, 0, 0)


def test_new_links_count_as_an_update(crm, add_mailbox, sync, tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = tmp_path / "alice"
    start = NOW + timedelta(days=2)
    _write(box, vevent("m@acme.example", "Roadmap", start, attendees=WILE))
    add_mailbox("alice", box)
    sync()
    _write(box, vevent("m@acme.example", "Roadmap", start, attendees=(*WILE, *HANK)))  # one more attendee
    assert sync().stats.updated == 1


def test_the_same_meeting_in_another_calendar_is_already_known(crm, add_mailbox, sync, tmp_path) -> None:  # type: ignore[no-untyped-def]
    meeting = vevent("shared@acme.example", "Roadmap", NOW + timedelta(days=2), attendees=WILE)
    _write(tmp_path / "a", meeting)
    _write(tmp_path / "b", meeting)
    add_mailbox("a", tmp_path / "a")
    add_mailbox("b", tmp_path / "b", REP2)
    stats = sync().stats
    assert (stats.logged, stats.updated, stats.duplicates) == (1, 0, 1)


def test_a_meeting_deleted_from_the_calendar_counts_as_updated_and_cancelled(  # type: ignore[no-untyped-def]
    crm, add_mailbox, sync, tmp_path, capsys
) -> None:
    box = tmp_path / "alice"
    _write(box, *_events(3)[:2])  # two planned meetings
    add_mailbox("alice", box)
    sync()
    _write(box, _events(3)[0])  # the second one deleted at the source
    again = sync()
    assert (again.stats.updated, again.stats.cancelled) == (1, 1)
    print_report(again)
    assert "logged 0 activities, updated 1 (1 cancelled), 0 already known" in capsys.readouterr().out
