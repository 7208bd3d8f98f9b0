"""`crm-sync init` loads the shipped processes and updates them later only while nobody edited them."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import select

from crm_store.db import transaction
from crm_store.models import ProcessDefinition
from crm_store.seed import definition_sha256, seed_defaults, shipped_processes
from sync_service.bootstrap import App

DATA = Path(__file__).with_name("data")


def rows(app: App) -> dict[str, ProcessDefinition]:
    with app.sessions() as session:
        return {r.name: r for r in session.scalars(select(ProcessDefinition))}


def test_init_stores_the_shipped_definitions_with_their_hash(app: App) -> None:
    stored = rows(app)
    for definition in shipped_processes():
        row = stored[definition["name"]]
        assert row.definition == definition and row.shipped_sha256 == definition_sha256(definition)
    with transaction(app.sessions) as session:
        assert seed_defaults(session) == {"lookups": 0, "processes": 0, "processes_updated": 0}


def test_rows_seeded_from_the_first_release_are_upgraded(app: App) -> None:
    old = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in DATA.glob("*_0001.yaml")}
    with transaction(app.sessions) as session:
        for row in session.scalars(select(ProcessDefinition)):
            row.definition = old["corporate_sale_0001" if row.name == "Corporate sale" else "lead_management_0001"]
            row.shipped_sha256 = None  # schema 0001 did not remember it
    with transaction(app.sessions) as session:
        assert seed_defaults(session)["processes_updated"] == 2
    current = {d["name"]: d for d in shipped_processes()}
    assert {name: row.definition for name, row in rows(app).items()} == current


def test_an_edited_definition_is_never_overwritten(app: App) -> None:
    with transaction(app.sessions) as session:
        row = session.scalars(select(ProcessDefinition).where(ProcessDefinition.name == "Corporate sale")).one()
        edited = dict(row.definition, start_stage="Qualification")
        row.definition = edited
        row.shipped_sha256 = "0" * 64  # seeded from an older shipped version, then edited
    with transaction(app.sessions) as session:
        assert seed_defaults(session)["processes_updated"] == 0
    assert rows(app)["Corporate sale"].definition["start_stage"] == "Qualification"


def test_an_unedited_older_shipped_version_is_updated(app: App) -> None:
    with transaction(app.sessions) as session:
        row = session.scalars(select(ProcessDefinition).where(ProcessDefinition.name == "Lead management")).one()
        older = dict(row.definition, start_stage="Initial meeting / phone interview")
        row.definition, row.shipped_sha256 = older, definition_sha256(older)
    with transaction(app.sessions) as session:
        assert seed_defaults(session)["processes_updated"] == 1
    assert rows(app)["Lead management"].definition["start_stage"] == "Register prospect"


def _submit_rule(definition: dict) -> dict:
    stage = next(s for s in definition["stages"] if s["name"] == "Proposal submission")
    return next(step for step in stage["steps"] if step["key"] == "proposal.submit")["satisfied_by"]


def test_a_database_seeded_before_from_owner_gets_it_unless_edited(app: App) -> None:
    """SPEC §2: "Submit the proposal" completes when the *owner* sends the email — the rule shipped later than
    the first databases were seeded: `init` brings it to the definitions nobody edited."""
    before = yaml.safe_load((DATA / "corporate_sale_before_from_owner.yaml").read_text(encoding="utf-8"))
    assert "from_owner" not in _submit_rule(before)
    with transaction(app.sessions) as session:
        row = session.scalars(select(ProcessDefinition).where(ProcessDefinition.name == "Corporate sale")).one()
        row.definition, row.shipped_sha256 = before, definition_sha256(before)  # as that release's init left it
    with transaction(app.sessions) as session:
        assert seed_defaults(session)["processes_updated"] == 1
    assert _submit_rule(rows(app)["Corporate sale"].definition)["from_owner"] is True

    edited = dict(before, start_stage="Qualification")  # an admin's edit of that older version is kept as it is
    with transaction(app.sessions) as session:
        row = session.scalars(select(ProcessDefinition).where(ProcessDefinition.name == "Corporate sale")).one()
        row.definition, row.shipped_sha256 = edited, definition_sha256(before)
    with transaction(app.sessions) as session:
        assert seed_defaults(session)["processes_updated"] == 0
    assert "from_owner" not in _submit_rule(rows(app)["Corporate sale"].definition)
