"""A calendar file with hostile events, synced end to end on each backend (audit 17a F1 calendar half, F5): a NUL
in a UID or a SUMMARY, a UID longer than the key column and an unreadable VTIMEZONE no longer cost the file's
good events on PostgreSQL; both backends store the same thing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sync_service.bootstrap import App
from sync_service.exports import export_activities, export_quarantine
from sync_service.parsing.ical_text import stable_uid
from tests.support.builders import ics, maildir, vevent

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
WILE = ("wile@acme.example",)
LONG_UID = "L" * 10_240
ABSURD_ZONE = "\r\n".join([
    "BEGIN:VTIMEZONE", "TZID:Absurd", "BEGIN:STANDARD", "DTSTART:19700101T000000",
    "TZOFFSETFROM:+2500", "TZOFFSETTO:+2500", "END:STANDARD", "END:VTIMEZONE",
])  # fmt: skip


def _calendar() -> bytes:
    start = NOW + timedelta(days=3)
    return ics(
        ABSURD_ZONE,
        vevent("bad\x00uid", "NUL in the UID", start, attendees=WILE),
        vevent(
            "nul-summary", "sum\x00mary", start + timedelta(hours=1), attendees=WILE,
            extra=("LOCATION:Room\x00 1", "DESCRIPTION:body\x00 text"),
        ),
        vevent(LONG_UID, "Long UID", start + timedelta(hours=2), attendees=WILE),
        vevent("neighbour", "Good neighbour", start + timedelta(hours=3), attendees=WILE),
    )


def test_hostile_events_are_stored_and_their_neighbours_kept(app: App, crm, add_mailbox, sync, tmp_path: Path) -> None:
    alice = maildir(tmp_path / "alice", [])
    (alice / "calendar.ics").write_bytes(_calendar())
    add_mailbox("alice", alice)
    sync()
    with app.sessions() as session:
        activities, quarantine = export_activities(session), export_quarantine(session)
    by_uid = {a["ical_uid"]: a for a in activities}
    assert set(by_uid) == {"baduid", "nul-summary", stable_uid(LONG_UID), "neighbour"}
    assert by_uid["nul-summary"]["subject"] == "summary"
    [entry] = quarantine  # only the note about the time zone left out: one line
    assert entry["reason"].startswith("partly applied; skipped: time zone definition 'Absurd' ignored: Offset")
    assert "\n" not in entry["reason"]


def test_a_long_uid_in_two_calendars_is_one_meeting(app: App, crm, add_mailbox, sync, tmp_path: Path) -> None:
    event = vevent(LONG_UID, "Long UID", NOW + timedelta(days=4), attendees=WILE)
    for name in ("alice", "bob"):
        box = maildir(tmp_path / name, [])
        (box / "calendar.ics").write_bytes(ics(event))
        add_mailbox(name, box)
    sync()
    with app.sessions() as session:
        activities = export_activities(session)
    assert [a["ical_uid"] for a in activities] == [stable_uid(LONG_UID)]
