"""Importing the same opportunities or leads file again changes nothing (SPEC §5), also after the process moved
the records on — and a stage or status changed in the file is still applied (``importers.last_import``).

Through the real CLI, on both databases: import, start the process, let a synced meeting (or completed steps)
move it on, import the unchanged file again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from crm_store.db import transaction
from crm_store.models import Lead, Opportunity
from sync_service.bootstrap import App
from tests.support.process_helpers import activities, history, lead, opportunity

REP = "alice@northwind-sales.example"
OPPS = "Title,Account,Stage,Owner,Contacts,Amount,Close Date,Source\n"
LEADS = "Name,Company,Email,Phone,Status,Source,Owner\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def edited(path: str, old: str, new: str) -> str:
    return Path(path).read_text(encoding="utf-8").replace(old, new)


def ok(cli: Any, *args: str) -> str:
    done = cli(*args)
    assert done.code == 0, done.err
    return str(done.out)


def meeting_yesterday(tmp_path: Path) -> str:
    """An .ics with one meeting of the rep with John that ended yesterday: it completes the Call step."""
    start = (datetime.now(UTC) - timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    stamp = "%Y%m%dT%H%M%SZ"
    path = tmp_path / "cal.ics"
    path.write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:intro@t\r\n"
        f"DTSTAMP:{start.strftime(stamp)}\r\nDTSTART:{start.strftime(stamp)}\r\n"
        f"DTEND:{(start + timedelta(hours=1)).strftime(stamp)}\r\nSUMMARY:Acme intro\r\n"
        f"ORGANIZER:mailto:{REP}\r\nATTENDEE:mailto:john.doe@acme.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        encoding="utf-8",
    )
    return f"ics://{path}"


def acme_moved_on(cli: Any, tmp_path: Path) -> str:
    """Acme ERP imported at Interest verification, its sale started, a synced meeting moved it to Qualification.
    Returns the opportunities file."""
    ok(cli, "import", "accounts", write(tmp_path, "a.csv", f"Name,Type,Domains,Territory,Owner\nAcme,customer,"
                                                           f"acme.example,East,{REP}\n"))
    ok(cli, "import", "contacts", write(tmp_path, "c.csv", "First Name,Last Name,Company,E-mail Address\n"
                                                           "John,Doe,Acme,john.doe@acme.example\n"))
    opps = write(tmp_path, "o.csv", f"{OPPS}Acme ERP,Acme,Interest verification,{REP},john.doe@acme.example,"
                                    "50000,2027-03-31,Referral\n")
    ok(cli, "import", "opportunities", opps)
    ok(cli, "process", "start", "Corporate sale", "--opportunity", "1")
    ok(cli, "mailbox", "add", "alice", "--owner", REP, "--source", meeting_yesterday(tmp_path))
    ok(cli, "sync", "--once")
    return opps


def planned(app: App) -> list[str]:
    return [a["subject"] for a in activities(app, origin="process", status="planned")]


def test_the_same_opportunities_file_again_keeps_the_stage_the_process_reached(
    app: App, cli: Any, tmp_path: Path
) -> None:
    opps = acme_moved_on(cli, tmp_path)
    moved = opportunity(app, "Acme ERP")
    assert (moved["stage"], moved["current_step"]["title"]) == ("Qualification", "Qualify the opportunity")
    steps, was_planned = history(app, "Acme ERP"), planned(app)

    again = ok(cli, "import", "opportunities", opps)
    assert "0 created, 0 updated, 1 unchanged; 1 kept the stage set in the CRM since the file's last import" in again
    assert opportunity(app, "Acme ERP") == moved  # stage, step, history: nothing went back
    assert history(app, "Acme ERP") == steps and planned(app) == was_planned == ["Qualify the opportunity"]

    # Sales ops change the stage in the file: that is applied, through the process engine.
    changed = write(tmp_path, "o2.csv", edited(opps, "Interest verification", "Negotiations"))
    assert "0 created, 1 updated, 0 unchanged" in ok(cli, "import", "opportunities", changed)
    now = opportunity(app, "Acme ERP")
    assert (now["stage"], now["current_step"]["title"]) == ("Negotiations", "Discuss tactics with the manager")
    assert history(app, "Acme ERP")[-1] == ("Negotiations", None, None, False)
    assert "Qualify the opportunity" not in planned(app) and "Discuss tactics with the manager" in planned(app)
    same = ok(cli, "import", "opportunities", changed)
    assert same.strip().endswith("0 created, 0 updated, 1 unchanged")  # nothing kept: the stored stage is the file's


def test_a_stage_set_back_in_the_file_is_applied(app: App, cli: Any, tmp_path: Path) -> None:
    """The file's stage differs from what it set last time: a deliberate change, even backwards."""
    opps = acme_moved_on(cli, tmp_path)
    ok(cli, "opportunity", "stage", "1", "Needs analysis")  # by hand; the file still says Interest verification
    assert "1 kept the stage" in ok(cli, "import", "opportunities", opps)
    assert opportunity(app, "Acme ERP")["stage"] == "Needs analysis"
    back = write(tmp_path, "o2.csv", edited(opps, "Interest verification", "Qualification"))
    assert "1 updated" in ok(cli, "import", "opportunities", back)
    assert opportunity(app, "Acme ERP")["stage"] == "Qualification"
    assert planned(app) == ["Qualify the opportunity"]


def test_first_import_after_the_upgrade_keeps_a_stage_the_process_moved_on_to(
    app: App, cli: Any, tmp_path: Path
) -> None:
    """No import recorded (an opportunity stored before revision 0016): a stage the history shows it at before
    is taken as the file's last one and stands; a stage it was never at is a change and is applied."""
    opps = acme_moved_on(cli, tmp_path)
    with transaction(app.sessions) as session:
        session.execute(update(Opportunity).values(imported_stage=None))
    assert "1 kept the stage" in ok(cli, "import", "opportunities", opps)
    assert opportunity(app, "Acme ERP")["stage"] == "Qualification"
    with transaction(app.sessions) as session:
        session.execute(update(Opportunity).values(imported_stage=None))
    never = write(tmp_path, "o2.csv", edited(opps, "Interest verification", "Presentation"))
    assert "1 updated" in ok(cli, "import", "opportunities", never)
    assert opportunity(app, "Acme ERP")["stage"] == "Presentation"


def gina_awaiting_sale(app: App, cli: Any, tmp_path: Path) -> str:
    """Gina imported as an Initial Lead; her Lead management process set `Awaiting sale`. Returns the file."""
    leads = write(tmp_path, "l.csv", f"{LEADS}Gina Gmail,,gina.lead@gmail.com,,Initial Lead,Web form,{REP}\n")
    ok(cli, "import", "leads", leads)
    ok(cli, "process", "start", "Lead management", "--lead", "1")
    for _ in range(3):  # initial meeting, needs analysis, pre-sales request (this stage sets Awaiting sale)
        step = next(a for a in activities(app, status="planned") if a["lead"] == "Gina Gmail")
        ok(cli, "activity", "complete", str(step["id"]))
    assert lead(app, "Gina Gmail")["status"] == "Awaiting sale"
    return leads


def test_the_same_leads_file_again_keeps_the_status_the_process_set(app: App, cli: Any, tmp_path: Path) -> None:
    leads = gina_awaiting_sale(app, cli, tmp_path)
    before = lead(app, "Gina Gmail")
    sales = [o["title"] for o in opportunity_list(app)]

    again = ok(cli, "import", "leads", leads)
    assert "0 created, 0 updated, 1 unchanged; 1 kept the status set in the CRM since the file's last import" in again
    assert lead(app, "Gina Gmail") == before and [o["title"] for o in opportunity_list(app)] == sales

    # A status changed in the file is applied.
    bad = write(tmp_path, "l2.csv", edited(leads, "Initial Lead", "Bad Lead"))
    assert "1 updated" in ok(cli, "import", "leads", bad)
    assert lead(app, "Gina Gmail")["status"] == "Bad Lead"
    assert ok(cli, "import", "leads", bad).strip().endswith("0 created, 0 updated, 1 unchanged")


def test_first_leads_import_after_the_upgrade_keeps_the_status_of_a_lead_in_process(
    app: App, cli: Any, tmp_path: Path
) -> None:
    leads = gina_awaiting_sale(app, cli, tmp_path)
    with transaction(app.sessions) as session:
        session.execute(update(Lead).values(imported_status=None))
    assert "1 kept the status" in ok(cli, "import", "leads", leads)
    assert lead(app, "Gina Gmail")["status"] == "Awaiting sale"
    # From now on the file's last status is known: the next change in the file is applied.
    bad = write(tmp_path, "l2.csv", edited(leads, "Initial Lead", "Bad Lead"))
    assert "1 updated" in ok(cli, "import", "leads", bad)
    assert lead(app, "Gina Gmail")["status"] == "Bad Lead"


def opportunity_list(app: App) -> list[dict[str, Any]]:
    from sync_service.exports import export_opportunities

    with app.sessions() as session:
        return export_opportunities(session)


def test_first_leads_import_after_the_upgrade_keeps_awaiting_sale_set_by_hand(
    app: App, cli: Any, tmp_path: Path
) -> None:
    """`lead status 1 "Awaiting sale"` on the earlier version (no process on the lead, nothing remembered of the
    file): the lead has its sale, so the unchanged file must not take it back to Initial Lead."""
    leads = write(tmp_path, "l.csv", f"{LEADS}Gina Gmail,,gina.lead@gmail.com,,Initial Lead,Web form,{REP}\n")
    ok(cli, "import", "leads", leads)
    ok(cli, "lead", "status", "1", "Awaiting sale")
    with transaction(app.sessions) as session:
        session.execute(update(Lead).values(imported_status=None))  # as stored before revision 0016
    assert "1 kept the status" in ok(cli, "import", "leads", leads)
    assert lead(app, "Gina Gmail")["status"] == "Awaiting sale"
    bad = write(tmp_path, "l2.csv", edited(leads, "Initial Lead", "Bad Lead"))
    assert "1 updated" in ok(cli, "import", "leads", bad)  # a change in the file still applies
    assert lead(app, "Gina Gmail")["status"] == "Bad Lead"
