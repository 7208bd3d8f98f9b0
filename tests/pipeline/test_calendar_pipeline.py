"""Calendar items through the pipeline (SPEC §4): meetings vs calls, status, recurrence, moves, deletes,
invitations by email."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sync_service.bootstrap import App
from sync_service.exports import export_activities
from tests.support.builders import REP, ics, maildir, message, vevent

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _by_uid(app: App) -> dict[tuple[str, str | None], dict]:
    with app.sessions() as session:
        return {(a["ical_uid"], a["recurrence_id"]): a for a in export_activities(session) if a["ical_uid"]}


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    stamp = path.stat().st_mtime_ns + 1_000_000_000  # a visibly newer version, even on coarse clocks
    os.utime(path, ns=(stamp, stamp))


def _calendar() -> bytes:
    wile = ("wile@acme.example",)
    return ics(
        vevent("past", "Rocket review", NOW - timedelta(days=2), attendees=wile),
        vevent("future", "Rocket demo", NOW + timedelta(days=3), attendees=wile),
        vevent("call", "Call Wile about pricing", NOW - timedelta(days=1), 30, attendees=wile),
        vevent("phone", "Pricing", NOW - timedelta(days=1, hours=3), 15, extra=("LOCATION:tel:+1-202-555-0100",)),
        vevent("gone", "Site visit", NOW + timedelta(days=5), attendees=wile, extra=("STATUS:CANCELLED",)),
        vevent("team", "Team lunch", NOW - timedelta(days=1), attendees=("bob@northwind-sales.example",)),
        vevent(
            "weekly",
            "Steering",
            NOW - timedelta(weeks=2, hours=1),
            attendees=wile,
            extra=(
                "RRULE:FREQ=WEEKLY;COUNT=4",
                "EXDATE:" + (NOW - timedelta(weeks=1, hours=1)).strftime("%Y%m%dT%H%M%SZ"),
            ),
        ),
    )


def test_calendar_items_become_meetings_and_calls(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    from crm_store.db import transaction
    from crm_store.models import ContactPhone

    with transaction(app.sessions) as session:
        session.add(ContactPhone(contact_id=crm["wile"], raw="(202) 555-0100", e164="+12025550100"))
    box = maildir(tmp_path / "alice", [])
    (box / "calendar.ics").write_bytes(_calendar())
    add_mailbox("alice", box)
    report = sync()
    acts = _by_uid(app)
    assert acts[("past", None)]["status"] == "completed" and acts[("past", None)]["type"] == "meeting"
    assert acts[("future", None)]["status"] == "planned"
    assert acts[("past", None)]["opportunity"] == "Rockets" and acts[("past", None)]["contacts"] == [
        "wile@acme.example"
    ]
    assert acts[("call", None)]["type"] == "call"
    assert acts[("phone", None)]["type"] == "call" and acts[("phone", None)]["contacts"] == ["wile@acme.example"]
    assert acts[("gone", None)]["status"] == "cancelled"
    assert ("team", None) not in acts and report.stats.skipped["internal-only"] == 1
    weekly = sorted(k[1] or "" for k in acts if k[0] == "weekly")
    assert len(weekly) == 3  # four occurrences minus the EXDATE
    assert all(a["start"].endswith("Z") for a in acts.values())


def test_moved_and_deleted_events_follow_the_source(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    box = maildir(tmp_path / "alice", [])
    wile = ("wile@acme.example",)
    _write(
        box / "calendar.ics",
        ics(
            vevent("a", "Demo", NOW + timedelta(days=3), attendees=wile),
            vevent("b", "Workshop", NOW + timedelta(days=4), attendees=wile),
        ),
    )
    add_mailbox("alice", box)
    sync()
    moved = NOW + timedelta(days=6)
    _write(box / "calendar.ics", ics(vevent("a", "Demo", moved, attendees=wile, extra=("SEQUENCE:1",))))
    report = sync()
    acts = _by_uid(app)
    assert len(acts) == 2 and report.stats.cancelled == 1
    assert acts[("a", None)]["start"] == moved.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert acts[("a", None)]["status"] == "planned"
    assert acts[("b", None)]["status"] == "cancelled"
    (box / "calendar.ics").unlink()
    sync()
    assert _by_uid(app)[("a", None)]["status"] == "cancelled"


def _invitation(mid: str, method: str, sequence: int, start: datetime) -> bytes:
    msg = EmailMessage()
    msg["Message-ID"] = f"<{mid}>"
    msg["From"] = "wile@acme.example"
    msg["To"] = REP
    msg["Subject"] = "Invitation: Contract review"
    msg.set_content("You are invited")
    status = ("STATUS:CANCELLED",) if method == "CANCEL" else ()
    event = vevent(
        "inv-1@acme.example",
        "Contract review",
        start,
        organizer="wile@acme.example",
        attendees=(REP,),
        extra=(f"SEQUENCE:{sequence}", *status),
    )
    msg.add_alternative(ics(event, method=method).decode(), subtype="calendar", params={"method": method})
    return msg.as_bytes()


def test_invitations_by_email_update_the_same_meeting(app, crm, add_mailbox, sync, tmp_path: Path) -> None:
    start = NOW + timedelta(days=2)
    box = maildir(tmp_path / "alice", [_invitation("i1@acme.example", "REQUEST", 0, start)])
    add_mailbox("alice", box)
    sync()
    acts = _by_uid(app)
    assert acts[("inv-1@acme.example", None)]["status"] == "planned"
    maildir(box, [_invitation("i2@acme.example", "CANCEL", 1, start)])
    sync()
    with app.sessions() as session:
        all_acts = export_activities(session)
    assert [(a["ical_uid"], a["status"], a["type"]) for a in all_acts] == [
        ("inv-1@acme.example", "cancelled", "meeting")
    ]


def test_meeting_completes_when_its_end_passes(app, crm, add_mailbox, tmp_path: Path) -> None:
    from sync_service.pipeline.runner import complete_due, run_once

    box = maildir(tmp_path / "alice", [message("x@acme.example", "wile@acme.example", [REP], "hi")])
    (box / "calendar.ics").write_bytes(
        ics(vevent("soon", "Demo", NOW + timedelta(hours=2), attendees=("wile@acme.example",)))
    )
    from crm_store.db import transaction
    from sync_service import mailboxes

    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, "alice", REP, f"maildir://{box}", None, ())
    run_once(app)
    assert _by_uid(app)[("soon", None)]["status"] == "planned"
    assert complete_due(app, NOW + timedelta(hours=4)) == 1
    assert _by_uid(app)[("soon", None)]["status"] == "completed"
