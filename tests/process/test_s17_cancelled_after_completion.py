"""A meeting that completed a process step and is cancelled at the source afterwards (audit 17b, F5).

The step stays completed and the stage is not rolled back (a past meeting deleted from a calendar is often
clean-up), but the opportunity's history says it, once per cancellation — for a calendar's STATUS:CANCELLED,
an emailed METHOD:CANCEL, a meeting deleted at the source and an EXDATE'd occurrence — and
`opportunity show` prints it as a note. A meeting that is cancelled before it completed anything is the
engine's ordinary "Cancelled" step and gets no note."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_store.db import transaction
from sync_service.bootstrap import App
from sync_service.pipeline.rematch import rematch
from sync_service.process import service, store
from sync_service.process.cancelled_after import StepEntry, note_for
from sync_service.process.model import RESULT_CANCELLED, RESULT_CANCELLED_AFTER, RESULT_SKIPPED, RecordHistory
from sync_service.process.views import process_view
from tests.support.builders import ics, invitation_email, maildir, vevent
from tests.support.process_helpers import activities, history, opportunity, write_calendar

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # reset per test (conftest)
WILE = "wile@acme.example"
FMT = "%Y%m%dT%H%M%SZ"
NOTE = ("Presentation", "Conduct presentation", RESULT_CANCELLED_AFTER, True)


def _start(app: App, crm: dict[str, int]) -> None:
    with transaction(app.sessions) as session:
        service.start_process(session, "Corporate sale", NOW, opportunity_id=crm["rockets"])  # at Presentation


def _presentation(*extra: str) -> bytes:
    return ics(vevent("pres", "Presentation", NOW - timedelta(hours=3), attendees=(WILE,), extra=extra))


def _notes(app: App) -> list[tuple[str, str | None, str | None, bool]]:
    return [entry for entry in history(app, "Rockets") if entry[2] == RESULT_CANCELLED_AFTER]


def _completed_presentation(app: App, crm: dict[str, int], box: Path, sync) -> None:  # type: ignore[no-untyped-def]
    _start(app, crm)
    write_calendar(box, _presentation())
    sync()
    [meeting] = activities(app, ical_uid="pres")
    assert (meeting["status"], meeting["process_step"]) == ("completed", "Conduct presentation")
    assert opportunity(app, "Rockets")["stage"] == "Id. decision makers"


def test_a_cancelled_meeting_leaves_one_note_per_cancellation(app, crm, alice_box: Path, sync) -> None:
    _completed_presentation(app, crm, alice_box, sync)
    write_calendar(alice_box, _presentation("SEQUENCE:1", "STATUS:CANCELLED"))
    sync()
    [meeting] = activities(app, ical_uid="pres")
    assert meeting["status"] == "cancelled"
    assert opportunity(app, "Rockets")["stage"] == "Id. decision makers"  # not rolled back
    assert _notes(app) == [NOTE]
    [note] = [h for h in opportunity(app, "Rockets")["history"] if h["result"] == RESULT_CANCELLED_AFTER]
    assert note["activity_id"] == meeting["id"]

    # Seen again (the calendar rewritten as it is), re-matched: no second note.
    write_calendar(alice_box, _presentation("SEQUENCE:1", "STATUS:CANCELLED"))
    sync()
    rematch(app)
    assert _notes(app) == [NOTE]

    # The note is no transition: the process goes on from where it is, and `opportunity show` prints it.
    with app.sessions() as session:
        lines = process_view(session, store.opportunity(session, crm["rockets"])).lines()
    assert lines[0].endswith("stage Id. decision makers, step Identify decision makers")
    assert lines[-1] == (
        f"  note: activity {meeting['id']} (Presentation) completed step Conduct presentation of Presentation "
        "and was cancelled since; the step still counts (set the stage by hand to do it again)"
    )

    # Restored, then cancelled again: a new cancellation, a new note.
    write_calendar(alice_box, _presentation("SEQUENCE:2"))
    sync()
    assert activities(app, ical_uid="pres")[0]["status"] == "completed" and _notes(app) == [NOTE]
    write_calendar(alice_box, _presentation("SEQUENCE:3", "STATUS:CANCELLED"))
    sync()
    assert _notes(app) == [NOTE, NOTE]


def test_a_meeting_deleted_at_the_source_leaves_a_note(app, crm, alice_box: Path, sync) -> None:
    _completed_presentation(app, crm, alice_box, sync)
    write_calendar(alice_box, ics(vevent("other", "Lunch", NOW - timedelta(days=1))))  # "pres" is gone
    sync()
    assert activities(app, ical_uid="pres")[0]["status"] == "cancelled"
    assert _notes(app) == [NOTE]
    assert opportunity(app, "Rockets")["stage"] == "Id. decision makers"


def test_an_exdated_occurrence_leaves_a_note_for_the_step_it_completed(app, crm, alice_box: Path, sync) -> None:
    _start(app, crm)
    first = NOW - timedelta(days=8)
    series = vevent("weekly", "Steering", first, attendees=(WILE,), extra=("RRULE:FREQ=WEEKLY;COUNT=2",))
    write_calendar(alice_box, ics(series))
    sync()
    second = {a["recurrence_id"]: a for a in activities(app, ical_uid="weekly")}[
        (first + timedelta(weeks=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ]
    assert second["status"] == "completed" and second["process_step"] is not None
    step = second["process_step"]
    exdate = f"EXDATE:{(first + timedelta(weeks=1)).strftime(FMT)}"
    write_calendar(
        alice_box,
        ics(vevent("weekly", "Steering", first, attendees=(WILE,), extra=("RRULE:FREQ=WEEKLY;COUNT=2", exdate))),
    )
    sync()
    [cancelled] = [a for a in activities(app, ical_uid="weekly") if a["status"] == "cancelled"]
    assert cancelled["id"] == second["id"]
    notes = [h for h in opportunity(app, "Rockets")["history"] if h["result"] == RESULT_CANCELLED_AFTER]
    assert [(h["step"], h["activity_id"], h["automatic"]) for h in notes] == [(step, second["id"], True)]


def _invitation(mid: str, method: str, sequence: int) -> bytes:
    start = NOW - timedelta(hours=3)
    return invitation_email(mid, method, sequence, "pres-mail", "Presentation", start, organizer=WILE)


def test_an_emailed_cancel_leaves_a_note(app, crm, alice_box: Path, sync) -> None:
    _start(app, crm)
    maildir(alice_box, [_invitation("i1@acme.example", "REQUEST", 0)])
    sync()
    assert opportunity(app, "Rockets")["stage"] == "Id. decision makers"
    maildir(alice_box, [_invitation("i2@acme.example", "CANCEL", 1)])
    sync()
    assert activities(app, ical_uid="pres-mail")[0]["status"] == "cancelled"
    assert _notes(app) == [NOTE]


def test_a_meeting_cancelled_before_it_completed_anything_gets_no_note(app, crm, alice_box: Path, sync) -> None:
    _start(app, crm)
    later = NOW + timedelta(days=2)
    write_calendar(alice_box, ics(vevent("pres", "Presentation", later, attendees=(WILE,))))
    sync()
    assert activities(app, ical_uid="pres")[0]["process_step"] == "Conduct presentation"  # linked, planned
    cancelled = vevent("pres", "Presentation", later, attendees=(WILE,), extra=("SEQUENCE:1", "STATUS:CANCELLED"))
    write_calendar(alice_box, ics(cancelled))
    sync()
    assert ("Presentation", "Conduct presentation", RESULT_CANCELLED, True) in history(app, "Rockets")
    assert _notes(app) == []


def test_note_for_names_the_step_the_activity_completed_last() -> None:
    implicit = StepEntry("Presentation", "prepare", "Prepared")
    target = StepEntry("Presentation", "conduct", "Presented")
    assert note_for([implicit, target], 5) == RecordHistory(
        "Presentation", "conduct", RESULT_CANCELLED_AFTER, 5, automatic=True
    )
    assert note_for([], 5) is None
    assert note_for([StepEntry("Negotiations", "tactics", RESULT_SKIPPED)], 5) is None
    assert note_for([StepEntry("Presentation", "conduct", RESULT_CANCELLED)], 5) is None
    # Restored and cancelled again: the completion still stands behind the earlier note.
    assert note_for([target, StepEntry("Presentation", "conduct", RESULT_CANCELLED_AFTER)], 5) is not None
