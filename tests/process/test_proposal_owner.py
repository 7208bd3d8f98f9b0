"""SPEC §2: "'Submit the proposal' completes when the owner sends the opportunity's contact an email with an
attachment" — another rep's email with an attachment is logged on the opportunity but submits nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_store.db import transaction
from crm_store.models import Opportunity
from sync_service import mailboxes
from sync_service.bootstrap import App
from sync_service.process import service
from tests.support.builders import REP, REP2, maildir, message
from tests.support.process_helpers import activities, history, opportunity

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # reset per test (conftest)
WILE = "wile@acme.example"


def proposal(mid: str, sender: str, at: datetime) -> bytes:
    return message(mid, sender, [WILE], "Proposal", at=at, attachment=("Proposal.pdf", b"%PDF-1.4", "application/pdf"))


def test_only_the_owners_proposal_email_submits_the_proposal(app: App, crm, alice_box: Path, sync, tmp_path) -> None:
    with transaction(app.sessions) as session:
        rockets = session.get_one(Opportunity, crm["rockets"])  # owned by Alice (REP)
        rockets.stage = "Proposal submission"
        service.start_process(session, "Corporate sale", NOW - timedelta(days=1), opportunity_id=crm["rockets"])
    bob_box = tmp_path / "bob"
    maildir(bob_box, [], sent=[proposal("bob-proposal@northwind-sales.example", REP2, NOW + timedelta(hours=1))])
    with transaction(app.sessions) as session:
        mailboxes.add_mailbox(session, "bob", REP2, f"maildir://{bob_box}", None, ())
    sync()
    bobs = activities(app, message_id="bob-proposal@northwind-sales.example")[0]
    assert (bobs["opportunity"], bobs["owner"]) == ("Rockets", REP2) and "Proposal.pdf" in bobs["documents"]
    assert bobs["process_step"] is None
    opp = opportunity(app, "Rockets")
    assert (opp["stage"], opp["current_step"]["title"]) == (
        "Proposal submission",
        "Prepare materials for submitting the proposal",
    )
    assert history(app, "Rockets") == [("Proposal submission", None, None, False)]

    maildir(alice_box, [], sent=[proposal("alice-proposal@northwind-sales.example", REP, NOW + timedelta(hours=2))])
    sync()
    assert history(app, "Rockets")[1:] == [
        ("Proposal submission", "Prepare materials for submitting the proposal", "Done", True),
        ("Proposal submission", "Submit the proposal", "Submitted", True),
        ("Negotiations", None, None, True),
    ]
    alices = activities(app, message_id="alice-proposal@northwind-sales.example")[0]
    assert opportunity(app, "Rockets")["history"][2]["activity_id"] == alices["id"]
