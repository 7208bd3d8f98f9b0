"""Lead management through the real sync: Initial Lead → a meeting is held → Prospect; the status
Awaiting sale starts the Corporate sale (set by hand or reached by the lead process itself)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from crm_store.models import Opportunity
from crm_store.models.sales import LeadHistory
from sync_service.bootstrap import App
from sync_service.exports import export_contacts
from tests.support.builders import REP, ics, maildir, message, vevent
from tests.support.process_helpers import activities, history, lead, opportunity, write_calendar

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # reset per test (conftest)
RITA = "rita@initrode.example"


def lead_history(app: App, lead_id: int) -> list[tuple[str, str | None, str | None, bool]]:
    with app.sessions() as session:
        rows = session.scalars(select(LeadHistory).where(LeadHistory.lead_id == lead_id).order_by(LeadHistory.id))
        return [(h.stage, h.step, h.result, h.automatic) for h in rows]


def test_mail_alone_does_not_start_the_lead_process(app, crm, alice_box: Path, sync) -> None:
    maildir(alice_box, [message("hello@initrode.example", RITA, [REP], "Hello", at=NOW - timedelta(days=2))])
    sync()
    rita = lead(app, "Rita Lead")
    assert (rita["status"], rita["process_stage"], rita["current_step"]) == ("Initial Lead", None, None)
    assert activities(app, origin="process") == []


def test_the_first_meeting_makes_the_lead_a_prospect(app, crm, alice_box: Path, sync) -> None:
    write_calendar(alice_box, ics(vevent("intro", "Intro with Rita", NOW - timedelta(days=3), attendees=(RITA,))))
    sync()
    rita = lead(app, "Rita Lead")
    assert (rita["status"], rita["process_stage"], rita["current_step"]) == (
        "Prospect",
        "Needs analysis",
        {"id": "lead.needs", "title": "Analyse needs"},
    )
    meeting = activities(app, ical_uid="intro")[0]
    assert (meeting["lead"], meeting["process_step"], meeting["result"]) == (
        "Rita Lead",
        "Initial meeting / phone interview",
        "Prospect",
    )
    assert lead_history(app, crm["lead"]) == [
        ("Register prospect", None, None, True),
        ("Initial meeting / phone interview", None, None, True),
        ("Initial meeting / phone interview", "lead.initial-contact", "Prospect", True),
        ("Needs analysis", None, None, True),
    ]
    planned = activities(app, origin="process", status="planned")
    assert [(a["subject"], a["lead"]) for a in planned] == [("Analyse needs", "Rita Lead")]
    sync()  # again: nothing changes
    assert len(lead_history(app, crm["lead"])) == 4


def test_awaiting_sale_set_by_hand_starts_the_corporate_sale(app, crm, cli) -> None:
    bad = cli("lead", "status", str(crm["lead"]), "Sleeping")
    assert bad.code == 1 and "unknown lead status 'Sleeping'" in bad.err
    done = cli("lead", "status", str(crm["lead"]), "awaiting sale")
    assert done.code == 0, done.err
    assert "status Awaiting sale" in done.out and "Corporate sale, stage Interest verification, step Call" in done.out
    opp = opportunity(app, "Initrode")
    assert (opp["process"], opp["stage"], opp["current_step"]["title"]) == (
        "Corporate sale",
        "Interest verification",
        "Call",
    )
    assert history(app, "Initrode") == [("Interest verification", None, None, False)]
    assert cli("lead", "status", str(crm["lead"]), "Awaiting sale").code == 0  # again: no second opportunity
    with app.sessions() as session:
        assert session.scalars(select(Opportunity.id).where(Opportunity.lead_id == crm["lead"])).all() == [opp["id"]]


def test_the_lead_process_reaches_awaiting_sale_and_starts_the_sale(app, crm, alice_box: Path, sync) -> None:
    write_calendar(
        alice_box,
        ics(
            vevent("intro", "Intro with Rita", NOW - timedelta(days=3), attendees=(RITA,)),
            vevent("needs", "Call Rita: requirements", NOW - timedelta(days=2), 30, attendees=(RITA,)),
        ),
    )
    sync()
    rita = lead(app, "Rita Lead")
    assert (rita["status"], rita["process_stage"]) == ("Awaiting sale", "Pre-sales resource request")
    opp = opportunity(app, "Initrode")
    assert (opp["stage"], opp["current_step"]["title"]) == ("Interest verification", "Call")
    assert history(app, "Initrode") == [("Interest verification", None, None, True)]


def test_the_opportunity_made_from_a_lead_has_the_lead_as_participant_and_its_call_completes_the_step(
    app, crm, cli, alice_box: Path, sync
) -> None:
    assert cli("lead", "status", str(crm["lead"]), "Awaiting sale").code == 0
    with app.sessions() as session:
        contacts = {c["name"]: c for c in export_contacts(session)}
    rita = contacts["Rita Lead"]
    assert (rita["emails"], rita["source"]) == ([RITA], "lead")
    with app.sessions() as session:
        opp = session.scalars(select(Opportunity).where(Opportunity.lead_id == crm["lead"])).one()
        assert [p.contact_id for p in opp.participants] == [rita["id"]]
    # The step "Call" of Interest verification waits for a call with a participant, held after the stage began:
    # Rita's call completes it (without her as a contact, nothing would).
    held = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    write_calendar(alice_box, ics(vevent("c1", "Call Rita", held, 0, attendees=(RITA,))))
    time.sleep(max(0.0, (held - datetime.now(UTC)).total_seconds()) + 0.2)
    sync()
    steps = history(app, "Initrode")
    assert ("Interest verification", "Call", "Interest confirmed", True) in steps, steps
    assert opportunity(app, "Initrode")["stage"] == "Qualification"
    assert cli("lead", "status", str(crm["lead"]), "Awaiting sale").code == 0  # again: no second contact
    with app.sessions() as session:
        assert [c["name"] for c in export_contacts(session)].count("Rita Lead") == 1


def _mail_from_rita(alice_box: Path) -> None:
    maildir(
        alice_box,
        [message("expo@initrode.example", RITA, [REP], "Nice to meet you at the expo", at=NOW - timedelta(days=4))],
    )


def test_awaiting_sale_set_by_hand_matches_the_leads_earlier_mail_again(app, crm, cli, alice_box: Path, sync) -> None:
    """SPEC §3.7: the new contact (and opportunity) made from the lead are CRM changes; the lead keeps its mail."""
    _mail_from_rita(alice_box)
    sync()
    (mail,) = activities(app, message_id="expo@initrode.example")
    assert (mail["lead"], mail["contacts"], mail["opportunity"]) == ("Rita Lead", [], None)

    done = cli("lead", "status", str(crm["lead"]), "Awaiting sale")

    assert done.code == 0, done.err
    assert "re-matched" in done.out and "1 relinked" in done.out
    (mail,) = activities(app, message_id="expo@initrode.example")
    assert (mail["lead"], mail["contacts"], mail["opportunity"]) == ("Rita Lead", [RITA], "Initrode")


def test_the_lead_process_reaching_awaiting_sale_matches_earlier_items_again(app, crm, alice_box: Path, sync) -> None:
    _mail_from_rita(alice_box)
    write_calendar(
        alice_box,
        ics(
            vevent("intro", "Intro with Rita", NOW - timedelta(days=3), attendees=(RITA,)),
            vevent("needs", "Call Rita: requirements", NOW - timedelta(days=2), 30, attendees=(RITA,)),
        ),
    )
    sync()
    assert lead(app, "Rita Lead")["status"] == "Awaiting sale"
    (mail,) = activities(app, message_id="expo@initrode.example")
    assert (mail["lead"], mail["contacts"], mail["opportunity"]) == ("Rita Lead", [RITA], "Initrode")
    (intro,) = activities(app, ical_uid="intro")
    assert (intro["lead"], intro["contacts"], intro["process_step"]) == (
        "Rita Lead",
        [RITA],
        "Initial meeting / phone interview",
    )  # the lead keeps the meeting its process step was completed by


def test_a_call_completed_when_due_that_makes_the_lead_a_sale_is_reported_for_re_matching(
    app, crm, alice_box: Path, sync
) -> None:
    """``complete_due`` (the scheduler's, every minute) can finish the lead process's call: the workers then
    queue a re-match for the leads it converted (``workers.actors``)."""
    from sync_service.pipeline.runner import complete_due

    write_calendar(
        alice_box,
        ics(
            vevent("intro", "Intro with Rita", NOW - timedelta(days=3), attendees=(RITA,)),
            vevent("needs", "Call Rita: requirements", NOW + timedelta(hours=1), 30, attendees=(RITA,)),
        ),
    )
    sync()
    assert lead(app, "Rita Lead")["status"] == "Prospect"  # the call is still planned
    converted: set[int] = set()
    assert complete_due(app, NOW + timedelta(hours=3), converted) == 1
    assert lead(app, "Rita Lead")["status"] == "Awaiting sale"
    assert converted == {crm["lead"]}
    nothing: set[int] = set()
    complete_due(app, NOW + timedelta(hours=4), nothing)
    assert nothing == set()
