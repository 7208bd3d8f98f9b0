"""Calendar activities through the pipeline (SPEC §4), the parts the process engine relies on: recurring
occurrences and their exceptions, invitations by email that move or cancel one meeting or one occurrence,
planned → completed by the periodic job, and a step that follows its meeting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from crm_store.db import transaction
from crm_store.models import Activity
from sync_service.pipeline.runner import complete_due
from sync_service.process import service
from tests.support.builders import REP, ics, invitation_email, maildir, vevent
from tests.support.process_helpers import activities, opportunity, write_calendar

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # reset per test (conftest)
WILE = "wile@acme.example"
FMT = "%Y%m%dT%H%M%SZ"


def by_occurrence(app, uid: str) -> dict[str | None, dict]:  # type: ignore[no-untyped-def]
    return {a["recurrence_id"]: a for a in activities(app, ical_uid=uid)}


def iso(when: datetime) -> str:
    """How exports write times and recurrence ids."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_recurring_occurrences_with_a_moved_and_a_cancelled_exception(app, crm, alice_box: Path, sync) -> None:
    first = NOW - timedelta(weeks=2)
    moved_id, cancelled_id = first + timedelta(weeks=1), first + timedelta(weeks=3)
    series = vevent("weekly", "Steering", first, attendees=(WILE,), extra=("RRULE:FREQ=WEEKLY;COUNT=4",))
    moved = vevent(
        "weekly",
        "Steering (moved)",
        moved_id + timedelta(days=1),
        attendees=(WILE,),
        extra=(f"RECURRENCE-ID:{moved_id.strftime(FMT)}",),
    )
    cancelled = vevent(
        "weekly",
        "Steering",
        cancelled_id,
        attendees=(WILE,),
        extra=(f"RECURRENCE-ID:{cancelled_id.strftime(FMT)}", "STATUS:CANCELLED"),
    )
    write_calendar(alice_box, ics(series, moved, cancelled))
    sync()
    occurrences = by_occurrence(app, "weekly")
    assert len(occurrences) == 4 and all(a["opportunity"] == "Rockets" for a in occurrences.values())
    statuses = {rid: (a["status"], a["start"], a["subject"]) for rid, a in occurrences.items()}
    assert statuses[iso(moved_id)] == ("completed", iso(moved_id + timedelta(days=1)), "Steering (moved)")
    assert statuses[iso(cancelled_id)][0] == "cancelled"
    assert statuses[iso(first)][0] == "completed"
    assert statuses[iso(first + timedelta(weeks=2))][0] == "planned"


def _invitation(mid: str, method: str, sequence: int, start: datetime, *extra: str) -> bytes:
    return invitation_email(mid, method, sequence, "review@acme.example", "Review", start, organizer=WILE, extra=extra)


def test_an_emailed_update_moves_the_meeting_and_a_cancel_of_one_occurrence_cancels_only_it(
    app, crm, alice_box: Path, sync
) -> None:
    start = NOW + timedelta(days=2)
    maildir(alice_box, [_invitation("r1@acme.example", "REQUEST", 0, start)])
    sync()
    maildir(alice_box, [_invitation("r2@acme.example", "REQUEST", 1, start + timedelta(days=1))])
    sync()
    [meeting] = activities(app, ical_uid="review@acme.example")
    assert meeting["start"] == iso(start + timedelta(days=1))
    assert meeting["status"] == "planned" and meeting["type"] == "meeting"

    weekly_start = NOW + timedelta(days=1)
    maildir(alice_box, [_weekly("w1@acme.example", "REQUEST", 0, weekly_start)])
    sync()
    assert len(by_occurrence(app, "weekly@acme.example")) == 3
    second = (weekly_start + timedelta(weeks=1)).strftime(FMT)
    maildir(alice_box, [_weekly("w2@acme.example", "CANCEL", 1, weekly_start + timedelta(weeks=1), second)])
    sync()
    occurrences = by_occurrence(app, "weekly@acme.example")
    assert {rid: a["status"] for rid, a in occurrences.items()} == {
        iso(weekly_start): "planned",
        iso(weekly_start + timedelta(weeks=1)): "cancelled",
        iso(weekly_start + timedelta(weeks=2)): "planned",
    }


def _weekly(mid: str, method: str, sequence: int, start: datetime, recurrence_id: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["Message-ID"] = f"<{mid}>"
    msg["From"], msg["To"], msg["Subject"] = WILE, REP, "Invitation: Weekly"
    msg.set_content("Invitation")
    extra = [f"SEQUENCE:{sequence}"]
    if recurrence_id:
        extra += [f"RECURRENCE-ID:{recurrence_id}", "STATUS:CANCELLED"]
    else:
        extra.append("RRULE:FREQ=WEEKLY;COUNT=3")
    event = vevent("weekly@acme.example", "Weekly", start, organizer=WILE, attendees=(REP,), extra=tuple(extra))
    msg.add_alternative(ics(event, method=method).decode(), subtype="calendar", params={"method": method})
    return msg.as_bytes()


def test_a_meeting_moved_into_the_past_completes_its_step(app, crm, alice_box: Path, sync) -> None:
    with transaction(app.sessions) as session:
        service.start_process(session, "Corporate sale", NOW, opportunity_id=crm["rockets"])  # at Presentation
    write_calendar(alice_box, ics(vevent("pres", "Presentation", NOW + timedelta(days=1), attendees=(WILE,))))
    sync()
    assert activities(app, ical_uid="pres")[0]["process_step"] == "Conduct presentation"
    write_calendar(
        alice_box,
        ics(vevent("pres", "Presentation", NOW - timedelta(hours=2), attendees=(WILE,), extra=("SEQUENCE:1",))),
    )
    sync()
    assert activities(app, ical_uid="pres")[0]["status"] == "completed"
    assert opportunity(app, "Rockets")["stage"] == "Id. decision makers"


def test_the_periodic_job_completes_synced_meetings_and_calls_only(app, crm, alice_box: Path, sync) -> None:
    with transaction(app.sessions) as session:
        service.start_process(session, "Corporate sale", NOW, opportunity_id=crm["rockets"])
        session.add(
            Activity(type="meeting", subject="By hand", status="planned", origin="user", end_at=NOW - timedelta(days=1))
        )
    write_calendar(
        alice_box,
        ics(
            vevent("soon", "Presentation", NOW + timedelta(hours=1), attendees=(WILE,)),
            vevent("off", "Dropped", NOW + timedelta(hours=1), attendees=(WILE,), extra=("STATUS:CANCELLED",)),
        ),
    )
    sync()
    assert complete_due(app, NOW) == 0
    assert complete_due(app, NOW + timedelta(hours=3)) == 1
    status = {a["subject"]: a["status"] for a in activities(app)}
    assert status == {
        "Prepare presentation": "completed",
        "By hand": "planned",
        "Presentation": "completed",
        "Dropped": "cancelled",
        "Identify decision makers": "planned",
    }
