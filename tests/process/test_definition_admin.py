"""`crm-sync process export NAME` / `process load FILE`: an admin edits a stored process definition (SPEC §2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from crm_store.models import ProcessDefinition
from crm_store.seed import definition_sha256, shipped_processes
from sync_service.bootstrap import App

CORPORATE = "Corporate sale"


def stored(app: App, name: str = CORPORATE) -> ProcessDefinition:
    with app.sessions() as session:
        row = session.scalars(select(ProcessDefinition).where(ProcessDefinition.name == name)).one()
        session.expunge(row)
        return row


def export(cli, tmp_path: Path, name: str = CORPORATE) -> Path:  # type: ignore[no-untyped-def]
    result = cli("process", "export", name)
    assert result.code == 0, result.err
    path = tmp_path / f"{name.replace(' ', '_').lower()}.yaml"
    path.write_text(result.out, encoding="utf-8")
    return path


def write(tmp_path: Path, definition: dict[str, Any], name: str = "edited.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(definition, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def stage_of(definition: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in definition["stages"] if s["name"] == name)


def start_skates(cli) -> int:  # type: ignore[no-untyped-def]
    """A new opportunity running the Corporate sale, at Interest verification (step interest-verification.call)."""
    result = cli("process", "start", CORPORATE, "--title", "Skates", "--account", "ACME")
    assert result.code == 0, result.err
    return int(result.out.split()[1])  # "opportunity ID 'Skates': …"


def assert_refused(result, app: App, before: ProcessDefinition, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.code == 1, result.out
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("crm-sync: error: ")
    for word in words:
        assert word in lines[0]
    after = stored(app)
    assert after.definition == before.definition
    assert definition_sha256(after.definition) == definition_sha256(before.definition)
    assert after.shipped_sha256 == before.shipped_sha256


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("process", "export", "--help"), ["YAML", "load"]),
        (("process", "load", "--help"), ["FILE.yaml", "crm-sync init", "changes nothing"]),
        (("process", "--help"), ["export", "load"]),
    ],
)
def test_help(cli, args: tuple[str, ...], words: list[str]) -> None:
    result = cli(*args)
    assert result.code == 0
    for word in words:
        assert word in result.out


@pytest.mark.parametrize("name", [CORPORATE, "Lead management", "corporate SALE"])
def test_export_then_load_changes_nothing(app: App, cli, tmp_path: Path, name: str) -> None:
    canonical = name if name != "corporate SALE" else CORPORATE
    before = stored(app, canonical)
    path = export(cli, tmp_path, name)
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == before.definition
    shipped = next(d for d in shipped_processes() if d["name"] == canonical)
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == shipped  # the shape of the shipped YAML

    result = cli("process", "load", str(path))

    assert result.code == 0, result.err
    assert result.out.strip() == f"process {canonical!r}: unchanged ({path} is the stored definition)"
    after = stored(app, canonical)
    assert (after.definition, after.shipped_sha256, after.updated_at) == (
        before.definition,
        before.shipped_sha256,
        before.updated_at,
    )
    assert cli("process", "export", name).out == path.read_text(encoding="utf-8")


def test_export_of_an_unknown_process_is_one_line(app: App, cli) -> None:
    result = cli("process", "export", "Retail sale")
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        "crm-sync: error: no process named 'Retail sale' (known: Corporate sale, Lead management)"
    ]


def test_an_edited_hint_is_shown_and_kept_by_init(app: App, crm: dict[str, int], cli, tmp_path: Path) -> None:
    opportunity_id = start_skates(cli)
    assert "hint: Is there a real need?" in cli("opportunity", "show", str(opportunity_id)).out
    path = export(cli, tmp_path)
    text = path.read_text(encoding="utf-8")
    assert text.count("Is there a real need?") == 1
    path.write_text(text.replace("Is there a real need?", "Is the need budgeted this year?"), encoding="utf-8")

    result = cli("process", "load", str(path))

    assert result.code == 0, result.err
    assert "loaded" in result.out and "crm-sync init` keeps it" in result.out
    shown = cli("opportunity", "show", str(opportunity_id)).out
    assert "hint: Is the need budgeted this year?" in shown and "real need" not in shown
    row = stored(app)
    assert row.shipped_sha256 == definition_sha256(next(d for d in shipped_processes() if d["name"] == CORPORATE))
    assert definition_sha256(row.definition) != row.shipped_sha256  # what `init` reads as "edited by a person"

    assert cli("init").code == 0

    assert stored(app).definition == row.definition
    assert "Is the need budgeted this year?" in cli("process", "export", CORPORATE).out
    assert "hint: Is the need budgeted this year?" in cli("opportunity", "show", str(opportunity_id)).out
    assert "unchanged" in cli("process", "load", str(path)).out


def test_loading_the_shipped_file_again_undoes_the_edit(app: App, cli, tmp_path: Path) -> None:
    shipped = next(d for d in shipped_processes() if d["name"] == CORPORATE)
    edited = yaml.safe_load(yaml.safe_dump(shipped))
    stage_of(edited, "Qualification")["steps"][0]["hints"].append("Competition")
    assert cli("process", "load", str(write(tmp_path, edited))).code == 0

    result = cli("process", "load", str(write(tmp_path, shipped, "shipped.yaml")))

    assert result.code == 0, result.err
    assert "shipped definition again" in result.out
    assert stored(app).definition == shipped


def _unknown_key(d: dict[str, Any]) -> None:
    stage_of(d, "Qualification")["steps"][0]["colour"] = "red"


def _unknown_result(d: dict[str, Any]) -> None:
    stage_of(d, "Qualification")["steps"][0]["on_result"] = {"Maybe": "end_stage"}


def _unknown_default_result(d: dict[str, Any]) -> None:
    stage_of(d, "Qualification")["steps"][0]["default_result"] = "Maybe"


def _unknown_back_step(d: dict[str, Any]) -> None:
    stage_of(d, "Qualification")["steps"][0]["on_result"] = {"Not qualified": {"back": "qualification.nope"}}


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_unknown_key, ["stage 'Qualification': step 'qualification.qualify': unknown key 'colour'"]),
        (_unknown_result, ["on_result names 'Maybe', which is not one of its results"]),
        (_unknown_default_result, ["default_result 'Maybe' is not one of its results"]),
        (_unknown_back_step, ["goes back to 'qualification.nope'"]),
    ],
)
def test_a_bad_definition_is_rejected_whole(app: App, cli, tmp_path: Path, edit, words: list[str]) -> None:  # type: ignore[no-untyped-def]
    before = stored(app)
    definition = yaml.safe_load(export(cli, tmp_path).read_text(encoding="utf-8"))
    stage_of(definition, "Interest verification")["steps"][0]["hints"] = ["A new hint that must not be stored"]
    edit(definition)
    path = write(tmp_path, definition)

    assert_refused(cli("process", "load", str(path)), app, before, f"{path}: process 'Corporate sale': ", *words)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: Corporate sale\nstages: [\n", ["not valid YAML at line 3"]),
        ("name: Corporate sale\n  applies_to: opportunity\n", ["not valid YAML at line 2"]),
        ("just words\n", ["expected a mapping, got str"]),
        ("", ["expected a mapping, got NoneType"]),
    ],
)
def test_a_file_that_is_not_a_definition_is_rejected(
    app: App, cli, tmp_path: Path, text: str, words: list[str]
) -> None:
    before = stored(app)
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    assert_refused(cli("process", "load", str(path)), app, before, str(path), *words)


def test_a_missing_file_is_one_line(app: App, cli, tmp_path: Path) -> None:
    before = stored(app)
    assert_refused(cli("process", "load", str(tmp_path / "nope.yaml")), app, before, "No such file", "nope.yaml")


def test_a_load_cannot_rename_or_add_a_process(app: App, cli, tmp_path: Path) -> None:
    before = stored(app)
    definition = yaml.safe_load(export(cli, tmp_path).read_text(encoding="utf-8"))
    definition["name"] = "corporate sale"
    assert_refused(cli("process", "load", str(write(tmp_path, definition))), app, before, "cannot rename")
    definition["name"] = "Retail sale"
    assert_refused(
        cli("process", "load", str(write(tmp_path, definition))), app, before, "no process named 'Retail sale'"
    )
    with app.sessions() as session:
        assert len(session.scalars(select(ProcessDefinition)).all()) == 2


def test_a_stage_in_use_cannot_be_dropped(app: App, crm: dict[str, int], cli, tmp_path: Path) -> None:
    skates = start_skates(cli)
    assert cli("opportunity", "stage", str(skates), "Id. decision makers").code == 0
    assert cli("process", "start", CORPORATE, "--opportunity", str(crm["lamp"])).code == 0  # at Qualification
    assert cli("process", "start", CORPORATE, "--opportunity", str(crm["rockets"])).code == 0  # at Presentation
    assert cli("opportunity", "stage", str(crm["rockets"]), "Id. decision makers").code == 0
    before = stored(app)
    definition = yaml.safe_load(export(cli, tmp_path).read_text(encoding="utf-8"))
    definition["stages"] = [s for s in definition["stages"] if s["name"] != "Id. decision makers"]
    stage_of(definition, "Presentation")["next"] = ["Proposal submission"]

    result = cli("process", "load", str(write(tmp_path, definition)))

    assert_refused(
        result,
        app,
        before,
        "the new Corporate sale definition has no stage 'Id. decision makers', "
        "and 2 opportunities running it are in that stage",
    )
    assert "Id. decision makers" in cli("opportunity", "show", str(skates)).out

    # once they have moved on, the stage may go
    for opportunity_id in (skates, crm["rockets"]):
        assert cli("opportunity", "stage", str(opportunity_id), "Proposal submission").code == 0
    result = cli("process", "load", str(write(tmp_path, definition)))
    assert result.code == 0, result.err
    assert "Id. decision makers" not in [s["name"] for s in stored(app).definition["stages"]]


def test_a_step_in_use_cannot_be_dropped(app: App, crm: dict[str, int], cli, tmp_path: Path) -> None:
    skates = start_skates(cli)  # at the step interest-verification.call
    before = stored(app)
    definition = yaml.safe_load(export(cli, tmp_path).read_text(encoding="utf-8"))
    stage_of(definition, "Interest verification")["steps"][0]["key"] = "interest-verification.phone"

    assert_refused(
        cli("process", "load", str(write(tmp_path, definition))),
        app,
        before,
        "no step 'interest-verification.call' in stage 'Interest verification', "
        "and 1 opportunity running it is at that step",
    )
    assert "step Call" in cli("opportunity", "show", str(skates)).out


def test_a_stage_nobody_is_in_may_be_dropped(app: App, crm: dict[str, int], cli, tmp_path: Path) -> None:
    start_skates(cli)
    definition = yaml.safe_load(export(cli, tmp_path).read_text(encoding="utf-8"))
    definition["stages"] = [s for s in definition["stages"] if s["name"] != "Id. decision makers"]
    stage_of(definition, "Presentation")["next"] = ["Proposal submission"]

    result = cli("process", "load", str(write(tmp_path, definition)))

    assert result.code == 0, result.err
    assert stored(app).definition == definition
    listed = cli("process", "list").out
    assert "Presentation → Proposal submission" in listed


def test_a_step_with_a_planned_activity_cannot_be_dropped(app: App, crm: dict[str, int], cli, tmp_path: Path) -> None:
    """At Negotiations the optional "Discuss tactics" step is current and "Negotiate a deal" is planned too."""
    assert cli("process", "start", CORPORATE, "--opportunity", str(crm["domes"])).code == 0
    shown = cli("opportunity", "show", str(crm["domes"])).out
    assert "step Discuss tactics with the manager" in shown and "Negotiate a deal" in shown
    before = stored(app)
    definition = yaml.safe_load(export(cli, tmp_path).read_text(encoding="utf-8"))
    stage_of(definition, "Negotiations")["steps"][1]["key"] = "negotiations.deal"

    assert_refused(
        cli("process", "load", str(write(tmp_path, definition))),
        app,
        before,
        "no step 'negotiations.negotiate', and 1 planned activity is waiting for it",
    )
