"""The same meeting in two calendars (SPEC §3, §4): a copy with the same SEQUENCE and an older modification
stamp does not move the meeting back (``pipeline.staleness``); the calendar's own updates always apply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync_service.bootstrap import App
from sync_service.exports import export_activities
from sync_service.pipeline.staleness import Version, from_json, is_stale, to_json
from tests.support.builders import REP, REP2, ics
from tests.support.process_helpers import write_calendar

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
T0 = NOW - timedelta(days=1)  # when the meeting was made
T1 = NOW - timedelta(hours=2)  # when it was moved
FMT = "%Y%m%dT%H%M%SZ"
WILE = "wile@acme.example"

# --- the rule --------------------------------------------------------------------------------------------


def _v(mailbox: int, last_modified: datetime | None = None, dtstamp: datetime | None = None) -> Version:
    return Version(mailbox, last_modified, dtstamp)


def test_an_older_last_modified_from_another_mailbox_is_stale() -> None:
    assert is_stale(_v(2, T0, NOW), _v(1, T1, T1))  # DTSTAMP (an export time) is not looked at
    assert not is_stale(_v(2, T1, T0), _v(1, T1, T1))  # the same version
    assert not is_stale(_v(2, T1 + timedelta(seconds=1)), _v(1, T1))  # newer


def test_dtstamps_are_compared_only_when_neither_copy_has_last_modified() -> None:
    assert is_stale(_v(2, dtstamp=T0), _v(1, dtstamp=T1))
    assert not is_stale(_v(2, dtstamp=T0), _v(1, T1, T1))  # LAST-MODIFIED on one side only: no opinion
    assert not is_stale(_v(2, T0, T0), _v(1, dtstamp=T1))
    assert not is_stale(_v(2), _v(1, T1, T1))  # no stamp: applies, as before


def test_the_mailbox_that_wrote_the_version_and_a_dropped_item_always_apply() -> None:
    assert not is_stale(_v(1, T0, T0), _v(1, T1, T1))
    assert not is_stale(_v(2, T0, T0), _v(1, T1, T1), deleted_at_source=True)
    assert not is_stale(_v(2, T0, T0), None)  # an item stored before the stamps were kept


def test_the_stored_version_round_trips_through_json() -> None:
    version = _v(7, T1, T0)
    assert from_json(to_json(version)) == version
    assert from_json(to_json(_v(3))) == _v(3)
    assert from_json(None) is None and from_json({"last_modified": "garbage"}) == Version(None)


# --- through the pipeline: .ics files in two reps' mailboxes ----------------------------------------------


def _vevent(
    uid: str,
    start: datetime,
    *,
    dtstamp: datetime,
    last_modified: datetime | None = None,
    summary: str = "Roadmap",
    extra: tuple[str, ...] = (),
) -> str:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{dtstamp.strftime(FMT)}",
        *([f"LAST-MODIFIED:{last_modified.strftime(FMT)}"] if last_modified else []),
        f"DTSTART:{start.strftime(FMT)}",
        f"DTEND:{(start + timedelta(hours=1)).strftime(FMT)}",
        f"SUMMARY:{summary}",
        f"ORGANIZER:mailto:{REP}",
        f"ATTENDEE:mailto:{WILE}",
        *extra,
        "END:VEVENT",
    ]
    return "\r\n".join(lines)


def _write(box: Path, *events: str) -> None:
    write_calendar(box, ics(*events))


def _meeting(app: App, uid: str = "shared@acme.example", rid: str | None = None) -> dict:
    with app.sessions() as session:
        [found] = [a for a in export_activities(session) if a["ical_uid"] == uid and a["recurrence_id"] == rid]
    return found


def _at(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


ORIGINAL, MOVED = NOW + timedelta(days=3, hours=10), NOW + timedelta(days=5, hours=10)
UID = "shared@acme.example"


@pytest.fixture
def two_calendars(app: App, crm, add_mailbox, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Mailboxes a (Alice) and b (Bob) hold the same meeting; returns their folders."""
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a, _vevent(UID, ORIGINAL, dtstamp=T0, last_modified=T0))
    _write(b, _vevent(UID, ORIGINAL, dtstamp=T0, last_modified=T0))
    add_mailbox("a", a)
    add_mailbox("b", b, REP2)
    return a, b


def _other(summary: str) -> str:
    return _vevent("other@acme.example", NOW + timedelta(days=2), dtstamp=NOW, summary=summary)


def test_a_stale_copy_in_another_calendar_does_not_move_the_meeting_back(app: App, two_calendars, sync) -> None:
    a, b = two_calendars
    sync()
    assert _meeting(app)["mailboxes"] == ["a", "b"]
    _write(a, _vevent(UID, MOVED, dtstamp=T1, last_modified=T1))
    sync()
    assert _meeting(app)["start"] == _at(MOVED)
    # Bob's file changes elsewhere: his copy of the meeting is the old one, with the old LAST-MODIFIED.
    _write(b, _vevent(UID, ORIGINAL, dtstamp=T0, last_modified=T0), _other("Lunch"))
    sync()
    meeting = _meeting(app)
    assert (meeting["start"], meeting["status"], meeting["mailboxes"]) == (_at(MOVED), "planned", ["a", "b"])
    # Bob's calendar gets the move later (a newer stamp): it applies, and so does a newer move of his.
    later = MOVED + timedelta(hours=2)
    _write(b, _vevent(UID, later, dtstamp=NOW, last_modified=NOW - timedelta(minutes=5)), _other("Lunch"))
    sync()
    assert _meeting(app)["start"] == _at(later)


def test_copies_without_last_modified_are_ordered_by_dtstamp(app: App, two_calendars, sync) -> None:
    # Exchange and Graph copies: DTSTAMP is the item's last modification, no LAST-MODIFIED.
    a, b = two_calendars
    _write(a, _vevent(UID, ORIGINAL, dtstamp=T0))
    _write(b, _vevent(UID, ORIGINAL, dtstamp=T0))
    sync()
    _write(a, _vevent(UID, MOVED, dtstamp=T1))
    sync()
    _write(b, _vevent(UID, ORIGINAL, dtstamp=T0), _other("Lunch"))
    sync()
    assert _meeting(app)["start"] == _at(MOVED)


def test_an_export_time_dtstamp_does_not_make_a_copy_stale(app: App, two_calendars, sync) -> None:
    # Alice's copy has LAST-MODIFIED, Bob's only a DTSTAMP: not the same kind of stamp, so no opinion: the
    # copy read last applies, as before.
    a, b = two_calendars
    sync()
    _write(a, _vevent(UID, MOVED, dtstamp=NOW, last_modified=T1))
    sync()
    _write(b, _vevent(UID, ORIGINAL, dtstamp=T0), _other("Lunch"))
    sync()
    assert _meeting(app)["start"] == _at(ORIGINAL)


def test_a_calendars_own_update_applies_even_with_an_older_stamp(app: App, two_calendars, sync) -> None:
    a, _b = two_calendars
    sync()
    _write(a, _vevent(UID, MOVED, dtstamp=T1, last_modified=T1))
    sync()
    # Alice's calendar wrote the version shown; its next version has an older stamp (its clock went back, an
    # export re-generated from a backup…): still what her calendar holds now.
    again = MOVED + timedelta(days=1)
    _write(a, _vevent(UID, again, dtstamp=T0, last_modified=T0))
    sync()
    assert _meeting(app)["start"] == _at(again)


def test_a_stale_copy_does_not_revive_a_meeting_cancelled_without_a_new_sequence(app: App, two_calendars, sync) -> None:
    a, b = two_calendars
    sync()
    _write(a, _vevent(UID, ORIGINAL, dtstamp=T1, last_modified=T1, extra=("STATUS:CANCELLED",)))
    sync()
    assert _meeting(app)["status"] == "cancelled"
    _write(b, _vevent(UID, ORIGINAL, dtstamp=T0, last_modified=T0), _other("Lunch"))
    sync()
    assert _meeting(app)["status"] == "cancelled"


def test_deleting_the_newer_copy_keeps_the_meeting_while_the_stale_copy_remains(app: App, two_calendars, sync) -> None:
    a, b = two_calendars
    sync()
    _write(a, _vevent(UID, MOVED, dtstamp=T1, last_modified=T1))
    sync()
    _write(a, _other("Lunch"))  # Alice removes the meeting from her calendar; Bob still has his (stale) copy
    sync()
    meeting = _meeting(app)
    assert (meeting["start"], meeting["status"], meeting["mailboxes"]) == (_at(MOVED), "planned", ["b"])
    _write(b, _vevent(UID, ORIGINAL, dtstamp=T0, last_modified=T0), _other("Tea"))  # re-read: still stale
    sync()
    assert _meeting(app)["start"] == _at(MOVED)
    _write(b, _other("Tea"))  # the last copy goes: the meeting is cancelled
    sync()
    assert _meeting(app)["status"] == "cancelled"
    # A copy that comes back revives it, whatever its stamp (nothing carries the version it had).
    _write(b, _vevent(UID, ORIGINAL, dtstamp=T0, last_modified=T0), _other("Tea"))
    sync()
    meeting = _meeting(app)
    assert (meeting["start"], meeting["status"]) == (_at(ORIGINAL), "planned")


def test_a_stale_copy_of_a_moved_occurrence_does_not_move_it_back(app: App, crm, add_mailbox, sync, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = (NOW + timedelta(days=2)).replace(hour=9)
    rid = first + timedelta(weeks=1)
    series = ("RRULE:FREQ=WEEKLY;COUNT=3",)
    a, b = tmp_path / "a", tmp_path / "b"
    master = _vevent("weekly@acme.example", first, dtstamp=T0, last_modified=T0, extra=series)
    _write(a, master)
    _write(b, master)
    add_mailbox("a", a)
    add_mailbox("b", b, REP2)
    sync()
    override = _vevent("weekly@acme.example", rid + timedelta(hours=3), dtstamp=T1, last_modified=T1,
                       extra=(f"RECURRENCE-ID:{rid.strftime(FMT)}",))  # fmt: skip
    _write(a, master, override)
    sync()
    key = rid.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _meeting(app, "weekly@acme.example", key)["start"] == _at(rid + timedelta(hours=3))
    _write(b, master, _other("Lunch"))
    sync()
    occurrence = _meeting(app, "weekly@acme.example", key)
    assert (occurrence["start"], occurrence["mailboxes"]) == (_at(rid + timedelta(hours=3)), ["a", "b"])
