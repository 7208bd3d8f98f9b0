"""Process definitions: the shipped YAML carries SPEC §2, and malformed definitions fail with one clear line."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from crm_store.seed import shipped_processes
from sync_service.process.definition import BACK, END_STAGE, REPEAT, parse_process
from sync_service.process.errors import DefinitionError

CORPORATE = [
    "Interest verification",
    "Qualification",
    "Needs analysis",
    "Presentation",
    "Id. decision makers",
    "Proposal submission",
    "Negotiations",
    "Contracting",
]


def raw(name: str) -> dict[str, Any]:
    return copy.deepcopy(next(d for d in shipped_processes() if d["name"] == name))


def test_the_corporate_sale_has_the_spec_stages_steps_and_branches() -> None:
    sale = parse_process(raw("Corporate sale"))
    assert [s.name for s in sale.stages] == CORPORATE and sale.start_stage == "Interest verification"
    assert [(t.name, t.status) for t in sale.terminal_stages] == [
        ("Closed won", "won"),
        ("Closed lost", "lost"),
        ("Closed rerouted", "rerouted"),
        ("Closed rejected", "rejected"),
    ]
    lost = sale.terminal("Closed lost")
    assert lost is not None and lost.requires == ("lost_reason",) and lost.allows == ("competitor",)
    titles = {s.name: [step.title for step in s.steps] for s in sale.stages}
    assert titles["Interest verification"] == ["Call"]
    assert titles["Needs analysis"] == ["Collect customer information", "Call"]
    assert titles["Presentation"] == ["Prepare presentation", "Conduct presentation"]
    assert titles["Proposal submission"] == ["Prepare materials for submitting the proposal", "Submit the proposal"]
    assert titles["Negotiations"] == ["Discuss tactics with the manager", "Negotiate a deal"]
    stage = sale.stage("Needs analysis")
    assert stage is not None and stage.steps[1].outcome("Redial later").kind == REPEAT
    proposal = sale.stage("Proposal submission")
    assert proposal is not None and proposal.steps[1].outcome("Postponed").kind == BACK
    assert proposal.steps[1].outcome("Postponed").target == "proposal.prepare"
    assert sale.stage("Negotiations").steps[0].optional  # type: ignore[union-attr]
    assert sale.stage("Presentation").next == ("Id. decision makers", "Proposal submission")  # type: ignore[union-attr]
    assert sale.stage("Proposal submission").next == ("Negotiations", "Contracting")  # type: ignore[union-attr]
    assert sale.start_on_lead_status == "Awaiting sale"
    assert all(step.hints for s in sale.stages for step in s.steps)
    submit = proposal.steps[1].satisfied_by
    assert submit is not None and (submit.types, submit.direction, submit.has_attachment, submit.with_participant) == (
        ("email",),
        "outbound",
        True,
        True,
    )
    assert submit.from_owner  # SPEC §2: "when the owner sends the opportunity's contact an email …"
    rules = [(step.key, step.satisfied_by) for s in sale.stages for step in s.steps]
    from_owner = [key for key, rule in rules if rule is not None and rule.from_owner]
    assert from_owner == ["proposal.submit"]


def test_the_lead_process_has_the_spec_stages() -> None:
    leads = parse_process(raw("Lead management"))
    assert [s.name for s in leads.stages] == [
        "Register prospect",
        "Initial meeting / phone interview",
        "Needs analysis",
        "Pre-sales resource request",
        "Design solution",
        "Present / demo",
        "Negotiate",
        "Contract",
        "Project hand-off",
        "Assure satisfaction",
    ]
    first = leads.stage("Initial meeting / phone interview").steps[0]  # type: ignore[union-attr]
    assert first.lead_status == {"Prospect": "Prospect", "Bad Lead": "Bad Lead"}
    assert first.outcome("Bad Lead").kind == END_STAGE
    assert leads.stage("Pre-sales resource request").set_lead_status == "Awaiting sale"  # type: ignore[union-attr]
    assert leads.auto_start_on_lead_status == ("Initial Lead",)


def _sale_stage(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in data["stages"] if s["name"] == name)


def _break(change: str) -> dict[str, Any]:
    data = raw("Corporate sale")
    presentation = _sale_stage(data, "Presentation")
    conduct = presentation["steps"][1]
    if change == "unknown next":
        presentation["next"] = ["Id. decision makers", "Proposal"]
    elif change == "duplicate key":
        _sale_stage(data, "Needs analysis")["steps"][1]["key"] = "needs-analysis.collect"
    elif change == "default result":
        conduct["default_result"] = "Done"
    elif change == "on_result result":
        conduct["on_result"] = {"Cancelled": "repeat"}
    elif change == "outcome":
        conduct["on_result"] = {"Postponed": "again"}
    elif change == "back target":
        conduct["on_result"] = {"Postponed": {"back": "proposal.prepare"}}
    elif change == "unknown key":
        conduct["satisfied_by"]["participant"] = True
    elif change == "type":
        conduct["satisfied_by"]["type"] = ["visit"]
    elif change == "direction":
        conduct["satisfied_by"]["direction"] = "sideways"
    elif change == "from_owner":
        conduct["satisfied_by"]["from_owner"] = "yes"
    elif change == "start stage":
        data["start_stage"] = "Closed won"
    elif change == "duplicate stage":
        data["terminal_stages"].append({"name": "Presentation", "status": "lost"})
    elif change == "terminal field":
        data["terminal_stages"][1]["requires"] = ["reason"]
    elif change == "lead status":
        conduct["lead_status"] = {"Held": "Prospect"}
    elif change == "results":
        conduct["results"] = []
    elif change == "no stages":
        data["stages"] = []
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("unknown next", "stage 'Presentation': next names unknown stage 'Proposal'"),
        ("duplicate key", "step key 'needs-analysis.collect' is used twice"),
        ("default result", "step 'presentation.conduct': default_result 'Done' is not one of its results"),
        ("on_result result", "on_result names 'Cancelled', which is not one of its results"),
        ("outcome", "outcome 'again' is not one of: next, repeat, end_stage"),
        ("back target", "goes back to 'proposal.prepare', which is not a step of this stage"),
        ("unknown key", "satisfied_by: unknown key 'participant'"),
        ("type", "type 'visit' is not one of: email, meeting, call, task"),
        ("direction", "direction 'sideways' is not one of: inbound, outbound"),
        ("from_owner", "step 'presentation.conduct': satisfied_by: from_owner must be true or false"),
        ("start stage", "start_stage 'Closed won' is not one of its (non-terminal) stages"),
        ("duplicate stage", "stage 'Presentation' is defined twice"),
        ("terminal field", "field 'reason' is not one of: lost_reason, won_reason, competitor"),
        ("lead status", "lead_status is only for lead processes"),
        ("results", "missing 'results'"),
        ("no stages", "missing 'stages'"),
    ],
)
def test_malformed_definitions_fail_with_one_line_saying_where(change: str, message: str) -> None:
    with pytest.raises(DefinitionError) as error:
        parse_process(_break(change))
    text = str(error.value)
    assert message in text and "\n" not in text and text.startswith("process 'Corporate sale'")


def test_lead_only_and_opportunity_only_keys_are_checked() -> None:
    leads = raw("Lead management")
    leads["terminal_stages"] = [{"name": "Lost", "status": "lost"}]
    with pytest.raises(DefinitionError, match="a lead process has no terminal_stages"):
        parse_process(leads)
    leads = raw("Lead management")
    leads["stages"][1]["steps"][0]["satisfied_by"]["with_participant"] = True
    with pytest.raises(DefinitionError, match="with_participant needs an opportunity"):
        parse_process(leads)
    sale = raw("Corporate sale")
    sale["auto_start_on_lead_status"] = ["Initial Lead"]
    with pytest.raises(DefinitionError, match="auto_start_on_lead_status is only for lead processes"):
        parse_process(sale)


def test_not_a_mapping() -> None:
    with pytest.raises(DefinitionError, match="process: expected a mapping, got list"):
        parse_process([])
