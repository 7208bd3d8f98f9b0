"""A removed mailbox's meetings (audit 17b F4): those ahead that only it carried are cancelled, as if deleted at
the source, and revive when a copy comes back; none of them completes a process step by itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from crm_store.db import transaction
from crm_store.models import FolderState, Mailbox
from sync_service import mailboxes
from sync_service.pipeline.runner import complete_due
from sync_service.process import service
from tests.support.builders import REP, REP2, ics, maildir, message, vevent
from tests.support.process_helpers import activities, history, opportunity, write_calendar

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # reset per test (conftest)
WILE, HANK = "wile@acme.example", "hank@globex.example"
STEP = "Conduct presentation"


def _presentation_ahead(app, crm, alice_box: Path, sync) -> dict:  # type: ignore[no-untyped-def]
    """Rockets at Presentation, waiting for the presentation meeting in alice's calendar tomorrow; a past
    meeting and an email beside it."""
    with transaction(app.sessions) as session:
        service.start_process(session, "Corporate sale", NOW, opportunity_id=crm["rockets"])
    maildir(alice_box, [message("m1@acme.example", WILE, [REP], "Specs")])
    write_calendar(
        alice_box,
        ics(
            vevent("pres", "Presentation", NOW + timedelta(days=1), attendees=(WILE,)),
            vevent("past", "Kick-off", NOW - timedelta(days=2), attendees=(HANK,)),  # Globex: no process
        ),
    )
    sync()
    [meeting] = activities(app, ical_uid="pres")
    assert (meeting["status"], meeting["process_step"]) == ("planned", STEP)
    return meeting


def _bob_carries_it(app, sync, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Bob's calendar holds the presentation too (a second mailbox carrying the meeting), synced."""
    bob_box = tmp_path / "bob"
    maildir(bob_box, [])
    write_calendar(bob_box, ics(vevent("pres", "Presentation", NOW + timedelta(days=1), attendees=(WILE,))))
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, "bob", REP2, f"maildir://{bob_box}", None, ())
    sync()


def _forget_the_old_way(app, name: str) -> None:  # type: ignore[no-untyped-def]
    """What ``mailbox remove`` did before: the mailbox and its copies go, nothing else changes."""
    with transaction(app.sessions) as session:
        mailbox_id = session.scalar(select(Mailbox.id).where(Mailbox.name == name))
        session.execute(delete(FolderState).where(FolderState.mailbox_id == mailbox_id))
        session.delete(session.get(Mailbox, mailbox_id))


def test_a_meeting_no_mailbox_carries_is_not_completed_when_it_ends(app, crm, alice_box: Path, sync) -> None:
    meeting = _presentation_ahead(app, crm, alice_box, sync)
    before = history(app, "Rockets")
    _forget_the_old_way(app, "alice")  # e.g. removed before this fix: the meeting stayed planned, no source
    assert complete_due(app, NOW + timedelta(days=2)) == 0
    [after] = activities(app, ical_uid="pres")
    assert (after["status"], after["mailboxes"]) == ("planned", [])
    assert history(app, "Rockets") == before and opportunity(app, "Rockets")["stage"] == "Presentation"
    assert meeting["id"] == after["id"]


def test_remove_cancels_the_meetings_ahead_only_it_carried_and_a_copy_revives_them(
    app, crm, alice_box: Path, sync
) -> None:
    _presentation_ahead(app, crm, alice_box, sync)
    before = opportunity(app, "Rockets")
    with transaction(app.sessions) as session:
        orphaned = mailboxes.remove_mailbox(session, "alice")
    assert (orphaned.cancelled, orphaned.ended_planned) == (1, 0)
    status = {a["subject"]: (a["status"], a["process_step"]) for a in activities(app)}
    assert status == {
        "Presentation": ("cancelled", None),  # unlinked from its step, the engine not run
        "Kick-off": ("completed", None),  # past meetings and mail stay as they are
        "Specs": ("completed", None),
        "Prepare presentation": ("planned", "Prepare presentation"),  # the step's own activity stays
    }
    after = opportunity(app, "Rockets")
    # The process did not move: no step completed, the stage did not end early.
    assert (after["stage"], after["current_step"], after["history"]) == (
        before["stage"],
        before["current_step"],
        before["history"],
    )
    assert complete_due(app, NOW + timedelta(days=2)) == 0
    assert opportunity(app, "Rockets")["history"] == before["history"]

    # The mailbox comes back (same source): the meeting is planned again and serves its step again.
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, "alice", REP, f"maildir://{alice_box}", None, ())
    sync()
    [meeting] = activities(app, ical_uid="pres")
    assert (meeting["status"], meeting["process_step"], meeting["mailboxes"]) == ("planned", STEP, ["alice"])


def test_a_meeting_another_mailbox_carries_stays_planned(app, crm, alice_box: Path, sync, tmp_path: Path) -> None:
    _presentation_ahead(app, crm, alice_box, sync)
    _bob_carries_it(app, sync, tmp_path)
    with transaction(app.sessions) as session:
        assert mailboxes.remove_mailbox(session, "alice").cancelled == 0
    [meeting] = activities(app, ical_uid="pres")
    assert (meeting["status"], meeting["process_step"], meeting["mailboxes"]) == ("planned", STEP, ["bob"])
    complete_due(app, NOW + timedelta(days=2))
    assert activities(app, ical_uid="pres")[0]["status"] == "completed"
    assert opportunity(app, "Rockets")["stage"] == "Id. decision makers"  # bob's calendar still says it happened


def test_an_ended_meeting_still_planned_is_left_and_counted(app, crm, alice_box: Path, sync) -> None:
    write_calendar(alice_box, ics(vevent("soon", "Call Wile", NOW + timedelta(minutes=30), attendees=(WILE,))))
    sync()
    with transaction(app.sessions) as session:
        orphaned = mailboxes.remove_mailbox(session, "alice", now=NOW + timedelta(hours=3))
    assert (orphaned.cancelled, orphaned.ended_planned) == (0, 1)
    assert activities(app, ical_uid="soon")[0]["status"] == "planned"


def test_a_copy_deleted_at_its_source_carries_nothing(app, crm, alice_box: Path, sync, tmp_path: Path) -> None:
    """The review of session 17: bob's copy of the meeting was deleted at his source (its raw item is marked,
    not yet processed) when alice's mailbox is removed: the meeting is nobody's any more — cancelled, and never
    completed by itself."""
    from crm_store.models import RawItem
    from crm_store.models.sync import DELETED

    _presentation_ahead(app, crm, alice_box, sync)
    _bob_carries_it(app, sync, tmp_path)
    with transaction(app.sessions) as session:
        bob = session.scalars(select(Mailbox.id).where(Mailbox.name == "bob")).one()
        session.execute(
            update(RawItem).where(RawItem.mailbox_id == bob, RawItem.kind == "calendar").values(state=DELETED)
        )
        assert mailboxes.remove_mailbox(session, "alice").cancelled == 1
    assert activities(app, ical_uid="pres")[0]["status"] == "cancelled"
    complete_due(app, NOW + timedelta(days=2))
    assert activities(app, ical_uid="pres")[0]["status"] == "cancelled"
