"""The whole Corporate sale, Interest verification → Closed won, driven by synced mail and calendar only.

Each step is what a rep would really do: a call, a meeting, the customer's documents, the presentation
agenda, the proposal, a negotiation meeting that is planned first and held later, the signed contract. After
every sync the opportunity is where the process says; nobody touches the CRM.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_store.db import transaction
from crm_store.models import Opportunity
from sync_service.bootstrap import App
from sync_service.pipeline.runner import complete_due
from sync_service.process import service
from tests.support.builders import REP, ics, maildir, message, vevent
from tests.support.process_helpers import activities, history, opportunity, write_calendar

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # reset per test (conftest)
WILE = "wile@acme.example"
PDF = ("document.pdf", b"%PDF-1.4 test", "application/pdf")


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def expect(app: App, stage: str, step: str | None) -> dict:
    opp = opportunity(app, "Rockets")
    assert (opp["stage"], (opp["current_step"] or {}).get("title")) == (stage, step), opp["history"]
    return opp


def test_the_whole_corporate_sale_advances_by_synced_items_alone(app, crm, alice_box: Path, sync) -> None:
    with transaction(app.sessions) as session:
        session.get_one(Opportunity, crm["rockets"]).stage = "Interest verification"
        service.start_process(session, "Corporate sale", NOW - timedelta(days=30), opportunity_id=crm["rockets"])
    expect(app, "Interest verification", "Call")
    events: list[str] = []

    def calendar(*new: str) -> None:
        events.extend(new)
        write_calendar(alice_box, ics(*events))

    # Interest verification: a call with Wile.
    calendar(vevent("iv-call", "Call Wile about rockets", days_ago(20), 30, attendees=(WILE,)))
    sync()
    expect(app, "Qualification", "Qualify the opportunity")
    # Qualification: a meeting with Wile.
    calendar(vevent("qualify", "Budget and timeline", days_ago(18), attendees=(WILE,)))
    sync()
    expect(app, "Needs analysis", "Collect customer information")
    # Needs analysis: Wile sends his requirements, then the call agrees the presentation date.
    maildir(
        alice_box,
        [
            message(
                "req@acme.example",
                WILE,
                [REP],
                "Our requirements",
                at=days_ago(16),
                attachment=("requirements.pdf", b"%PDF-1.4 req", "application/pdf"),
            )
        ],
    )
    sync()
    expect(app, "Needs analysis", "Call")
    calendar(vevent("na-call", "Call: presentation date", days_ago(15), 20, attendees=(WILE,)))
    sync()
    expect(app, "Presentation", "Prepare presentation")
    # Presentation: the agenda goes out, then the presentation is held.
    maildir(
        alice_box,
        [],
        sent=[
            message(
                "agenda@northwind-sales.example",
                REP,
                [WILE],
                "Presentation agenda",
                at=days_ago(14),
                attachment=("agenda.pdf", b"%PDF agenda", "application/pdf"),
            )
        ],
    )
    sync()
    expect(app, "Presentation", "Conduct presentation")
    calendar(vevent("presentation", "Rocket presentation", days_ago(13), 90, attendees=(WILE,)))
    sync()
    expect(app, "Id. decision makers", "Identify decision makers")
    # Id. decision makers: a call with Wile.
    calendar(vevent("dm-call", "Call Wile: who decides?", days_ago(12), 30, attendees=(WILE,)))
    sync()
    expect(app, "Proposal submission", "Prepare materials for submitting the proposal")
    # Proposal submission: the proposal goes out (it was prepared, so both steps complete).
    maildir(
        alice_box,
        [],
        sent=[
            message(
                "proposal@northwind-sales.example",
                REP,
                [WILE],
                "Our proposal",
                at=days_ago(10),
                attachment=("Proposal.pdf", b"%PDF prop", "application/pdf"),
            )
        ],
    )
    sync()
    opp = expect(app, "Negotiations", "Discuss tactics with the manager")
    # Negotiations: the meeting is planned (linked to its step), and completes the step once it has ended.
    calendar(vevent("negotiate", "Terms and price", NOW + timedelta(hours=2), 60, attendees=(WILE,)))
    sync()
    meeting = activities(app, ical_uid="negotiate")[0]
    assert (meeting["status"], meeting["process_step"]) == ("planned", "Negotiate a deal")
    expect(app, "Negotiations", "Discuss tactics with the manager")
    assert complete_due(app, NOW + timedelta(hours=4)) == 1
    expect(app, "Contracting", "Sign the contract")
    # Contracting: the signed contract comes back.
    maildir(
        alice_box,
        [
            message(
                "signed@acme.example",
                WILE,
                [REP],
                "Signed contract",
                at=NOW + timedelta(hours=5),
                attachment=("contract-signed.pdf", b"%PDF signed", "application/pdf"),
            )
        ],
    )
    sync()
    opp = expect(app, "Closed won", None)
    assert opp["status"] == "won"

    assert history(app, "Rockets") == [
        ("Interest verification", None, None, False),
        ("Interest verification", "Call", "Interest confirmed", True),
        ("Qualification", None, None, True),
        ("Qualification", "Qualify the opportunity", "Qualified", True),
        ("Needs analysis", None, None, True),
        ("Needs analysis", "Collect customer information", "Done", True),
        ("Needs analysis", "Call", "Presentation date agreed", True),
        ("Presentation", None, None, True),
        ("Presentation", "Prepare presentation", "Done", True),
        ("Presentation", "Conduct presentation", "Held", True),
        ("Id. decision makers", None, None, True),
        ("Id. decision makers", "Identify decision makers", "Identified", True),
        ("Proposal submission", None, None, True),
        ("Proposal submission", "Prepare materials for submitting the proposal", "Done", True),
        ("Proposal submission", "Submit the proposal", "Submitted", True),
        ("Negotiations", None, None, True),
        ("Negotiations", "Discuss tactics with the manager", "Skipped", True),
        ("Negotiations", "Negotiate a deal", "Agreed", True),
        ("Contracting", None, None, True),
        ("Contracting", "Sign the contract", "Signed", True),
        ("Closed won", None, None, True),
    ]
    # Every automatic step names the synced activity that did it, and that activity serves the step.
    synced = {a["id"]: a for a in activities(app, origin="sync")}
    for row in opportunity(app, "Rockets")["history"]:
        if row["step"] and row["result"] != "Skipped":
            assert row["activity_id"] in synced, row
    assert {a["subject"]: (a["process_step"], a["result"]) for a in synced.values()} == {
        "Call Wile about rockets": ("Call", "Interest confirmed"),
        "Budget and timeline": ("Qualify the opportunity", "Qualified"),
        "Our requirements": ("Collect customer information", "Done"),
        "Call: presentation date": ("Call", "Presentation date agreed"),
        "Presentation agenda": ("Prepare presentation", "Done"),
        "Rocket presentation": ("Conduct presentation", "Held"),
        "Call Wile: who decides?": ("Identify decision makers", "Identified"),
        "Our proposal": ("Submit the proposal", "Submitted"),
        "Terms and price": ("Negotiate a deal", "Agreed"),
        "Signed contract": ("Sign the contract", "Signed"),
    }
    # Placeholders: superseded where a synced item did the step; the implied and skipped ones are closed.
    left = [(a["subject"], a["status"], a["result"]) for a in activities(app, origin="process")]
    assert left == [
        ("Prepare materials for submitting the proposal", "completed", "Done"),
        ("Discuss tactics with the manager", "cancelled", "Skipped"),
    ]
    assert activities(app, status="planned") == []

    # Syncing everything again changes nothing.
    before = opportunity(app, "Rockets")
    sync()
    assert complete_due(app, NOW + timedelta(hours=6)) == 0
    assert opportunity(app, "Rockets") == before
