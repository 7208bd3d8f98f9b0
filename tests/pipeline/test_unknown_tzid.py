"""An event whose TZID is neither defined in the file nor a known name (SPEC §6): the meeting is still logged,
its times read as UTC, and the calendar item is quarantined as partly applied with the TZID named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sync_service.bootstrap import App
from sync_service.exports import export_activities, export_quarantine
from tests.support.builders import ics, maildir, vevent

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _on_mars(uid: str, start: datetime) -> str:
    """A meeting with Wile whose DTSTART / DTEND name a time zone nobody knows (and no VTIMEZONE)."""
    local = "%Y%m%dT%H%M%S"
    plain = vevent(uid, "Rocket demo on Mars", start, attendees=("wile@acme.example",))
    return "\r\n".join(
        f"DTSTART;TZID=Mars/Olympus:{start.strftime(local)}" if line.startswith("DTSTART:")
        else f"DTEND;TZID=Mars/Olympus:{(start + timedelta(hours=1)).strftime(local)}" if line.startswith("DTEND:")
        else line
        for line in plain.split("\r\n")
    )  # fmt: skip


def _state(app: App) -> tuple[list[dict], list[dict]]:
    with app.sessions() as session:
        return export_activities(session), export_quarantine(session)


def test_an_unknown_tzid_is_logged_as_utc_and_quarantined_as_partly_applied(
    app: App, crm, add_mailbox, sync, tmp_path: Path
) -> None:
    start = NOW + timedelta(days=3)
    box = maildir(tmp_path / "alice", [])
    (box / "calendar.ics").write_bytes(ics(_on_mars("mars", start)))
    add_mailbox("alice", box)
    sync()
    activities, quarantine = _state(app)
    [activity] = [a for a in activities if a["ical_uid"] == "mars"]
    assert activity["subject"] == "Rocket demo on Mars" and activity["status"] == "planned"
    assert activity["start"].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))  # the wall time, read as UTC
    [entry] = quarantine
    assert entry["mailbox"] == "alice" and entry["external_id"].endswith("calendar.ics")
    assert entry["reason"] == (
        "partly applied; skipped: event 'mars': unknown time zone 'Mars/Olympus', times read as UTC"
    )

    sync()  # nothing new: still one activity, one entry
    assert _state(app) == (activities, quarantine)


def test_an_unknown_tzid_does_not_stop_events_removed_from_the_file_being_cancelled(
    app: App, crm, add_mailbox, sync, tmp_path: Path
) -> None:
    """The note leaves nothing out: the file is still a whole snapshot, so an event gone from it is cancelled."""
    start = NOW + timedelta(days=3)
    box = maildir(tmp_path / "alice", [])
    earth = vevent("earth", "Rocket demo on Earth", start + timedelta(days=1), attendees=("wile@acme.example",))
    (box / "calendar.ics").write_bytes(ics(_on_mars("mars", start), earth))
    add_mailbox("alice", box)
    sync()
    (box / "calendar.ics").write_bytes(ics(_on_mars("mars", start)))  # the Earth demo was deleted
    sync()
    statuses = {a["ical_uid"]: a["status"] for a in _state(app)[0]}
    assert statuses == {"mars": "planned", "earth": "cancelled"}
