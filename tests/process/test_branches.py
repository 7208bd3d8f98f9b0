"""The Corporate sale's branches through the real sync and the CLI: Redial later, a postponed proposal, a
cancelled presentation, a manual stage jump, Closed lost with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from crm_store.db import transaction
from crm_store.models import Opportunity
from sync_service.bootstrap import App
from sync_service.pipeline.runner import complete_due
from sync_service.process import service
from tests.support.builders import REP, ics, maildir, message, vevent
from tests.support.process_helpers import activities, history, opportunity, write_calendar

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # reset per test (conftest)
WILE = "wile@acme.example"


def start_rockets(app: App, crm: dict[str, int], stage: str) -> None:
    with transaction(app.sessions) as session:
        session.get_one(Opportunity, crm["rockets"]).stage = stage
        service.start_process(session, "Corporate sale", NOW - timedelta(days=30), opportunity_id=crm["rockets"])


def placeholder(app: App, title: str) -> int:
    found = [a["id"] for a in activities(app, origin="process", status="planned", subject=title)]
    assert len(found) == 1, (title, activities(app, origin="process"))
    return int(found[0])


def proposal_mail(mid: str, at: datetime) -> bytes:
    return message(mid, REP, [WILE], "Proposal", at=at, attachment=("Proposal.pdf", b"%PDF-1.4", "application/pdf"))


def test_redial_later_adds_the_call_again(app, crm, alice_box: Path, sync, cli) -> None:
    with transaction(app.sessions) as session:
        session.get_one(Opportunity, crm["rockets"]).stage = "Interest verification"
    started = cli("process", "start", "Corporate sale", "--opportunity", str(crm["rockets"]))
    assert started.code == 0, started.err
    assert "Corporate sale, stage Interest verification, step Call" in started.out
    assert "hint: Is there a real need?" in started.out
    first = placeholder(app, "Call")
    done = cli("activity", "complete", str(first), "--result", "Redial later")
    assert done.code == 0, done.err
    second = placeholder(app, "Call")
    assert second != first and f"activity {second} (planned call): Call" in done.out
    write_calendar(alice_box, ics(vevent("call", "Call Wile again", NOW + timedelta(hours=1), 20, attendees=(WILE,))))
    sync()
    assert complete_due(app, NOW + timedelta(hours=2)) == 1
    assert history(app, "Rockets") == [
        ("Interest verification", None, None, False),
        ("Interest verification", "Call", "Redial later", False),
        ("Interest verification", "Call", "Interest confirmed", True),
        ("Qualification", None, None, True),
    ]
    assert activities(app, id=first)[0]["status"] == "completed" and activities(app, id=second) == []


def test_a_postponed_proposal_returns_to_preparing(app, crm, alice_box: Path, sync, cli) -> None:
    start_rockets(app, crm, "Proposal submission")
    assert cli("activity", "complete", str(placeholder(app, "Prepare materials for submitting the proposal"))).code == 0
    postponed = cli("activity", "complete", str(placeholder(app, "Submit the proposal")), "--result", "Postponed")
    assert postponed.code == 0, postponed.err
    assert opportunity(app, "Rockets")["current_step"]["title"] == "Prepare materials for submitting the proposal"
    maildir(alice_box, [], sent=[proposal_mail("p1@northwind-sales.example", NOW + timedelta(hours=1))])
    sync()
    assert history(app, "Rockets")[1:] == [
        ("Proposal submission", "Prepare materials for submitting the proposal", "Done", False),
        ("Proposal submission", "Submit the proposal", "Postponed", False),
        ("Proposal submission", "Prepare materials for submitting the proposal", "Done", True),
        ("Proposal submission", "Submit the proposal", "Submitted", True),
        ("Negotiations", None, None, True),
    ]


def _invitation(mid: str, method: str, sequence: int, start: datetime) -> bytes:
    msg = EmailMessage()
    msg["Message-ID"] = f"<{mid}>"
    msg["From"], msg["To"], msg["Subject"] = WILE, REP, "Invitation: Rocket presentation"
    msg.set_content("You are invited")
    extra = (f"SEQUENCE:{sequence}", *(("STATUS:CANCELLED",) if method == "CANCEL" else ()))
    event = vevent("pres@acme.example", "Rocket presentation", start, organizer=WILE, attendees=(REP,), extra=extra)
    msg.add_alternative(ics(event, method=method).decode(), subtype="calendar", params={"method": method})
    return msg.as_bytes()


@pytest.mark.parametrize("how", ["status cancelled", "deleted at the source", "invitation cancelled by email"])
def test_a_cancelled_presentation_ends_the_stage_early(app, crm, alice_box: Path, sync, cli, how: str) -> None:
    start_rockets(app, crm, "Presentation")
    when = NOW + timedelta(days=2)
    if how.startswith("invitation"):
        maildir(alice_box, [_invitation("inv1@acme.example", "REQUEST", 0, when)])
    else:
        write_calendar(alice_box, ics(vevent("pres", "Rocket presentation", when, attendees=(WILE,))))
    sync()
    meeting = activities(app, subject="Rocket presentation")[0]
    assert (meeting["status"], meeting["process_step"]) == ("planned", "Conduct presentation")
    if how.startswith("status"):
        cancelled = vevent(
            "pres", "Rocket presentation", when, attendees=(WILE,), extra=("STATUS:CANCELLED", "SEQUENCE:1")
        )
        write_calendar(alice_box, ics(cancelled))
    elif how.startswith("deleted"):
        write_calendar(alice_box, ics())
    else:
        maildir(alice_box, [_invitation("inv2@acme.example", "CANCEL", 1, when)])
    sync()
    opp = opportunity(app, "Rockets")
    assert (opp["stage"], opp["current_step"]) == ("Presentation", None)
    assert history(app, "Rockets")[1:] == [
        ("Presentation", "Conduct presentation", "Cancelled", True),
        ("Presentation", None, "Stage ended early", True),
    ]
    assert opp["history"][1]["activity_id"] == meeting["id"]
    assert [(a["subject"], a["status"]) for a in activities(app, origin="process")] == [
        ("Prepare presentation", "cancelled")
    ]
    shown = cli("opportunity", "show", str(crm["rockets"]))
    assert (
        "no open step" in shown.out and "next stage to choose: Id. decision makers or Proposal submission" in shown.out
    )
    # The rep runs the stage again; a new presentation is held and the process goes on.
    again = cli("opportunity", "stage", str(crm["rockets"]), "Presentation")
    assert again.code == 0 and "step Prepare presentation" in again.out
    write_calendar(
        alice_box, ics(vevent("pres-2", "Rocket presentation, take two", NOW + timedelta(hours=1), attendees=(WILE,)))
    )
    sync()
    complete_due(app, NOW + timedelta(hours=3))
    assert opportunity(app, "Rockets")["stage"] == "Id. decision makers"


def test_a_manual_stage_jump_cancels_the_left_stage(app, crm, alice_box: Path, sync, cli) -> None:
    start_rockets(app, crm, "Presentation")
    write_calendar(alice_box, ics(vevent("pres", "Rocket presentation", NOW + timedelta(days=2), attendees=(WILE,))))
    sync()
    jump = cli("opportunity", "stage", str(crm["rockets"]), "proposal submission")
    assert jump.code == 0, jump.err
    assert "stage Proposal submission, step Prepare materials for submitting the proposal" in jump.out
    left = {a["subject"]: (a["status"], a["result"], a["process_step"]) for a in activities(app)}
    assert left["Prepare presentation"] == ("cancelled", "Stage left", "Prepare presentation")
    assert left["Rocket presentation"] == ("planned", None, None)  # the real meeting stays, no longer a step
    assert history(app, "Rockets")[-1] == ("Proposal submission", None, None, False)
    # Mail from before the jump never completes the new stage's steps; mail after it does.
    maildir(alice_box, [], sent=[proposal_mail("old@northwind-sales.example", NOW - timedelta(days=3))])
    sync()
    assert opportunity(app, "Rockets")["stage"] == "Proposal submission"
    maildir(alice_box, [], sent=[proposal_mail("new@northwind-sales.example", NOW + timedelta(hours=1))])
    sync()
    assert opportunity(app, "Rockets")["stage"] == "Negotiations"


def test_closed_lost_needs_a_reason_and_records_the_competitor(app, crm, alice_box: Path, sync, cli) -> None:
    start_rockets(app, crm, "Negotiations")
    rockets = str(crm["rockets"])
    missing = cli("opportunity", "stage", rockets, "Closed lost")
    assert missing.code == 1 and missing.err.strip() == "crm-sync: error: 'Closed lost' requires a lost reason"
    unknown = cli("opportunity", "stage", rockets, "Closed lost", "--lost-reason", "Bad weather")
    assert unknown.code == 1 and "unknown lost reason 'Bad weather' (allowed: Price" in unknown.err
    lost = cli("opportunity", "stage", rockets, "Closed lost", "--lost-reason", "price", "--competitor", "Rival Inc")
    assert lost.code == 0, lost.err
    opp = opportunity(app, "Rockets")
    assert (opp["stage"], opp["status"], opp["lost_reason"], opp["competitor"]) == (
        "Closed lost",
        "lost",
        "Price",
        "Rival Inc",
    )
    assert history(app, "Rockets")[-1] == ("Closed lost", None, "Price", False)
    assert activities(app, status="planned") == []
    # A meeting after the loss moves nothing.
    write_calendar(alice_box, ics(vevent("late", "Last try", NOW - timedelta(hours=3), attendees=(WILE,))))
    sync()
    assert opportunity(app, "Rockets")["stage"] == "Closed lost"
