"""Audit 17b F9: when the opportunities file gives an opportunity another owner, its open step activities (the
planned ones its process made) go to the new owner, as the next step's would (SPEC §2: a step "creates a
planned activity for the opportunity owner"); completed ones stay with the rep who did them. The summary says
so. The only command that changes an opportunity's owner is this import."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_store.db import transaction
from crm_store.models import Opportunity
from sync_service.bootstrap import App
from sync_service.process import service
from tests.support.builders import REP, REP2
from tests.support.process_helpers import activities

NOW = datetime.now(UTC).replace(second=0, microsecond=0)  # reset per test (conftest)
OPP_HEADER = "Title,Account,Stage,Owner,Contacts,Amount,Close Date,Source\n"


def owners(app: App) -> list[tuple[str, str, str | None]]:
    return sorted((a["subject"], a["status"], a["owner"]) for a in activities(app, origin="process"))


def test_an_owner_change_by_import_moves_the_open_step_activities(app: App, crm, cli, tmp_path: Path) -> None:
    with transaction(app.sessions) as session:  # Rockets: Alice's, Corporate sale at Interest verification
        session.get_one(Opportunity, crm["rockets"]).stage = "Interest verification"
        service.start_process(session, "Corporate sale", NOW - timedelta(days=1), opportunity_id=crm["rockets"])
    [first] = activities(app, origin="process", status="planned")
    assert cli("activity", "complete", str(first["id"]), "--result", "Redial later").code == 0
    assert owners(app) == [("Call", "completed", REP), ("Call", "planned", REP)]

    path = tmp_path / "opps.csv"
    path.write_text(OPP_HEADER + f"Rockets,ACME,,{REP2},,,,\n", encoding="utf-8")
    done = cli("import", "opportunities", str(path))
    assert done.code == 0, done.err
    assert done.out.startswith(
        "opportunities: 1 rows — 0 created, 1 updated, 0 unchanged; "
        f"Rockets: 1 open step activity moved to the new owner {REP2}\n"
    )
    assert owners(app) == [("Call", "completed", REP), ("Call", "planned", REP2)]

    again = cli("import", "opportunities", str(path))  # SPEC §5: the same file changes nothing
    assert again.out == "opportunities: 1 rows — 0 created, 0 updated, 1 unchanged\n"
    # The next step's activity is the new owner's too (the engine's own rule, unchanged).
    [planned] = activities(app, origin="process", status="planned")
    assert cli("activity", "complete", str(planned["id"]), "--result", "Redial later").code == 0
    assert [a["owner"] for a in activities(app, origin="process", status="planned")] == [REP2]


def test_a_leads_owner_change_by_import_moves_its_open_step_activities(app: App, crm, cli, tmp_path: Path) -> None:
    with transaction(app.sessions) as session:
        service.start_process(session, "Lead management", NOW - timedelta(days=1), lead_id=crm["lead"])
    planned = activities(app, origin="process", status="planned")
    assert planned and {a["owner"] for a in planned} != {REP2}
    path = tmp_path / "leads.csv"
    path.write_text(
        "Name,Company,Email,Phone,Status,Source,Owner\n" f"Rita Lead,Initrode,,,,,{REP2}\n", encoding="utf-8"
    )
    done = cli("import", "leads", str(path))
    assert done.code == 0, done.err
    assert f"Rita Lead: {len(planned)} open step activit" in done.out and f"moved to the new owner {REP2}" in done.out
    assert {a["owner"] for a in activities(app, origin="process", status="planned")} == {REP2}
