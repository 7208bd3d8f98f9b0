"""A process that cannot run (an admin's edit broke its definition) neither blocks the other processes nor fails
silently: the failure is quarantined where admins look, and the advancement is applied once the definition is
fixed (SPEC §2 automatic advancement, §6 one bad item never stops a sync)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from crm_store.db import transaction
from crm_store.models import Opportunity, ProcessDefinition
from sync_service.bootstrap import App
from sync_service.exports import export_quarantine
from sync_service.pipeline.runner import complete_due, run_once
from sync_service.process import service
from tests.support.builders import ics, vevent
from tests.support.process_helpers import activities, history, lead, opportunity, write_calendar

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # reset per test (conftest)
WILE, RITA = "wile@acme.example", "rita@initrode.example"
PRESENTED = [
    ("Presentation", None, None, False),
    ("Presentation", "Prepare presentation", "Done", True),
    ("Presentation", "Conduct presentation", "Held", True),
    ("Id. decision makers", None, None, True),
]


def start_rockets(app: App, crm: dict[str, int]) -> None:
    with transaction(app.sessions) as session:
        session.get_one(Opportunity, crm["rockets"]).stage = "Presentation"
        service.start_process(session, "Corporate sale", NOW - timedelta(days=30), opportunity_id=crm["rockets"])


def edit_definition(app: App, name: str, change: Any) -> dict[str, Any]:
    """An admin's edit of the stored definition; returns the definition as it was."""
    with transaction(app.sessions) as session:
        row = session.scalars(select(ProcessDefinition).where(ProcessDefinition.name == name)).one()
        before = copy.deepcopy(row.definition)
        edited = copy.deepcopy(row.definition)
        change(edited)
        row.definition = edited
    return before


def restore_definition(app: App, name: str, definition: dict[str, Any]) -> None:
    with transaction(app.sessions) as session:
        session.scalars(select(ProcessDefinition).where(ProcessDefinition.name == name)).one().definition = definition


def typo_in_results(definition: dict[str, Any]) -> None:
    step = definition["stages"][0]["steps"][0]
    step["resuls"] = step.pop("results")


def quarantine(app: App) -> list[dict[str, Any]]:
    with app.sessions() as session:
        return export_quarantine(session)


def meetings(box: Path, *attendees: tuple[str, ...]) -> None:
    """Past meetings: each attendee tuple one meeting (uids m0, m1, …)."""
    events = [
        vevent(f"m{i}", f"Meeting {i}", NOW - timedelta(hours=3 - i), attendees=who) for i, who in enumerate(attendees)
    ]
    write_calendar(box, ics(*events))


def test_a_broken_sale_definition_is_quarantined_blocks_no_lead_and_is_applied_once_fixed(
    app: App, crm, alice_box: Path
) -> None:
    start_rockets(app, crm)
    shipped = edit_definition(app, "Corporate sale", typo_in_results)
    meetings(alice_box, (WILE,), (RITA,))  # the presentation for Rockets; a first meeting with Rita, the lead
    report = run_once(app)
    assert not report.failed and report.stats.quarantined == 1
    presentation = activities(app, ical_uid="m0")[0]
    assert (presentation["opportunity"], presentation["status"]) == ("Rockets", "completed")
    # The lead process advanced (its step sets the status Prospect, which starts no sale: the broken Corporate
    # sale definition is not even read for it).
    rita = lead(app, "Rita Lead")
    assert (rita["status"], rita["process_stage"]) == ("Prospect", "Needs analysis")
    # The sale did not, and says so where admins look.
    assert history(app, "Rockets") == PRESENTED[:1]
    [entry] = quarantine(app)
    assert (entry["mailbox"], entry["external_id"]) == ("alice", f"activity:{presentation['id']}")
    assert entry["reason"].startswith(
        f"process not advanced by meeting 'Meeting 0': opportunity {crm['rockets']} 'Rockets': "
        "process 'Corporate sale': stage 'Interest verification': step 'interest-verification.call': unknown key"
    )
    retries = entry["retries"]
    complete_due(app, NOW)  # still broken: tried again, kept, counted
    [entry] = quarantine(app)
    assert entry["retries"] == retries + 1 and history(app, "Rockets") == PRESENTED[:1]

    restore_definition(app, "Corporate sale", shipped)
    complete_due(app, NOW)  # what every sync run and the scheduler do: the missed advancement is applied
    assert history(app, "Rockets") == PRESENTED
    assert opportunity(app, "Rockets")["history"][2]["activity_id"] == presentation["id"]
    assert quarantine(app) == []
    complete_due(app, NOW)
    assert history(app, "Rockets") == PRESENTED and lead(app, "Rita Lead") == rita


def test_one_activity_advances_the_process_that_can_run(app: App, crm, alice_box: Path) -> None:
    """A meeting that both the sale and the lead process wait for: the broken sale does not hold the lead back."""
    start_rockets(app, crm)
    edit_definition(app, "Corporate sale", typo_in_results)
    meetings(alice_box, (WILE, RITA))
    assert run_once(app).stats.quarantined == 1
    meeting = activities(app, ical_uid="m0")[0]
    assert (meeting["opportunity"], meeting["lead"]) == ("Rockets", "Rita Lead")
    assert meeting["process_step"] == "Initial meeting / phone interview"
    assert lead(app, "Rita Lead")["status"] == "Prospect" and history(app, "Rockets") == PRESENTED[:1]
    assert [e["external_id"] for e in quarantine(app)] == [f"activity:{meeting['id']}"]


def test_a_broken_lead_definition_blocks_neither_the_sync_nor_the_sale(app: App, crm, alice_box: Path) -> None:
    start_rockets(app, crm)
    shipped = edit_definition(app, "Lead management", lambda d: d["stages"].append({"name": "Oops", "next": "x"}))
    meetings(alice_box, (WILE,), (RITA,))
    report = run_once(app)
    assert not report.failed and report.stats.quarantined == 1
    assert history(app, "Rockets") == PRESENTED  # the sale advanced
    rita = lead(app, "Rita Lead")
    assert (rita["status"], rita["process_stage"]) == ("Initial Lead", None)
    [entry] = quarantine(app)
    assert entry["external_id"] == f"activity:{activities(app, ical_uid='m1')[0]['id']}"
    assert entry["reason"].startswith(
        f"process not advanced by meeting 'Meeting 1': lead {crm['lead']} 'Rita Lead': "
        "process 'Lead management': stage 'Oops': next names unknown stage 'x'"
    )
    restore_definition(app, "Lead management", shipped)
    complete_due(app, NOW)
    rita = lead(app, "Rita Lead")
    assert (rita["status"], rita["process_stage"]) == ("Prospect", "Needs analysis")
    assert quarantine(app) == [] and history(app, "Rockets") == PRESENTED


def test_due_meetings_are_completed_even_when_their_process_cannot_run(app: App, crm, alice_box: Path) -> None:
    start_rockets(app, crm)
    write_calendar(alice_box, ics(vevent("pres", "Rocket presentation", NOW + timedelta(hours=1), attendees=(WILE,))))
    assert run_once(app).stats.quarantined == 0
    shipped = edit_definition(app, "Corporate sale", typo_in_results)
    assert complete_due(app, NOW + timedelta(hours=3)) == 1
    meeting = activities(app, ical_uid="pres")[0]
    assert meeting["status"] == "completed"
    assert [e["external_id"] for e in quarantine(app)] == [f"activity:{meeting['id']}"]
    restore_definition(app, "Corporate sale", shipped)
    complete_due(app, NOW + timedelta(hours=3))
    assert history(app, "Rockets")[-1] == ("Id. decision makers", None, None, True) and quarantine(app) == []
