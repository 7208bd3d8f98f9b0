"""`crm-sync process|opportunity|lead|activity …`: what a rep types, exit codes, one-line errors, help."""

from __future__ import annotations

import pytest

from sync_service.bootstrap import App
from tests.support.process_helpers import activities, opportunity


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("process", "start", "--help"), ["--opportunity", "--title", "--account", "--owner", "current stage"]),
        (("activity", "complete", "--help"), ["--result", "default result"]),
        (("activity", "cancel", "--help"), ["ends its stage early"]),
        (("opportunity", "stage", "--help"), ["--lost-reason", "--won-reason", "--competitor"]),
        (("lead", "status", "--help"), ["Awaiting sale"]),
    ],
)
def test_help(cli, args: tuple[str, ...], words: list[str]) -> None:
    result = cli(*args)
    assert result.code == 0
    for word in words:
        assert word in result.out


def test_process_list_shows_the_loaded_processes(app: App, cli) -> None:
    result = cli("process", "list")
    assert result.code == 0
    assert "Corporate sale (for opportunitys)" not in result.out  # plural is spelt out below
    assert "Corporate sale (for opportunities): Interest verification → Qualification" in result.out
    assert "closing stages: Closed won, Closed lost, Closed rerouted, Closed rejected" in result.out
    assert "Lead management (for leads): Register prospect →" in result.out


def test_start_a_new_opportunity(app: App, crm, cli) -> None:
    result = cli(
        "process",
        "start",
        "corporate sale",
        "--title",
        "Rocket skates",
        "--account",
        "acme",
        "--owner",
        "carol@northwind-sales.example",
    )
    assert result.code == 0, result.err
    assert "opportunity" in result.out and "'Rocket skates': Corporate sale, stage Interest verification" in result.out
    opp = opportunity(app, "Rocket skates")
    assert (opp["account"], opp["owner"], opp["stage"], opp["status"]) == (
        "ACME",
        "carol@northwind-sales.example",
        "Interest verification",
        "open",
    )
    call = activities(app, origin="process")[0]
    assert (call["type"], call["subject"], call["status"], call["owner"], call["opportunity"], call["account"]) == (
        "call",
        "Call",
        "planned",
        "carol@northwind-sales.example",
        "Rocket skates",
        "ACME",
    )


def test_the_owner_defaults_to_the_account_owner(app: App, crm, cli) -> None:
    assert cli("process", "start", "Corporate sale", "--title", "Skates", "--account", "Globex").code == 0
    assert opportunity(app, "Skates")["owner"] == "bob@northwind-sales.example"


@pytest.mark.parametrize(
    "args",
    [
        ("process", "start", "Corporate sale"),
        ("process", "start", "Corporate sale", "--opportunity", "1", "--title", "X", "--account", "ACME"),
        ("process", "start", "Corporate sale", "--title", "X"),
        ("process", "start", "Corporate sale", "--opportunity", "1", "--owner", "a@b.example"),
        ("activity", "complete"),
    ],
)
def test_usage_errors_exit_2(app: App, crm, cli, args: tuple[str, ...]) -> None:
    assert cli(*args).code == 2


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("process", "start", "Retail sale", "--opportunity", "1"), "no process named 'Retail sale' (known: "),
        (("process", "start", "Lead management", "--opportunity", "1"), "Lead management runs for leads"),
        (("process", "start", "Corporate sale", "--lead", "1"), "Corporate sale runs for opportunities"),
        (("process", "start", "Corporate sale", "--opportunity", "99"), "no opportunity with id 99"),
        (("process", "start", "Corporate sale", "--title", "X", "--account", "Nope"), "no account named 'Nope'"),
        (("activity", "complete", "99"), "no activity with id 99"),
        (("opportunity", "stage", "1", "Lunch"), "'Lunch' is not a stage of Corporate sale"),
        (("lead", "status", "99", "Prospect"), "no lead with id 99"),
    ],
)
def test_failures_exit_1_with_one_line(app: App, crm, cli, args: tuple[str, ...], error: str) -> None:
    result = cli(*args)
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("crm-sync: error: ") and error in result.err and result.err.count("\n") == 1


def test_step_activities_by_hand(app: App, crm, cli) -> None:
    rockets = str(crm["rockets"])  # at Presentation in the seed
    assert cli("process", "start", "Corporate sale", "--opportunity", rockets).code == 0
    again = cli("process", "start", "Corporate sale", "--opportunity", rockets)
    assert again.code == 1 and "already running" in again.err
    prepare = activities(app, subject="Prepare presentation")[0]["id"]
    wrong = cli("activity", "complete", str(prepare), "--result", "Held")
    assert wrong.code == 1 and "'Held' is not a result of step 'Prepare presentation' (one of: Done)" in wrong.err
    done = cli("activity", "complete", str(prepare))
    assert done.code == 0 and "step Conduct presentation" in done.out and "hint: Who attended?" in done.out
    assert activities(app, id=prepare)[0]["result"] == "Done"
    twice = cli("activity", "complete", str(prepare))
    assert twice.code == 1 and f"activity {prepare} is already completed" in twice.err
    conduct = activities(app, subject="Conduct presentation")[0]["id"]
    cancelled = cli("activity", "cancel", str(conduct))
    assert cancelled.code == 0 and "no open step" in cancelled.out
    shown = cli("opportunity", "show", rockets)
    assert "stage Presentation, no open step" in shown.out


def test_activities_outside_a_process_complete_and_cancel_plainly(app: App, crm, cli) -> None:
    from crm_store.db import transaction
    from crm_store.models import Activity

    with transaction(app.sessions) as session:
        task = Activity(type="task", subject="Send brochure", status="planned", origin="user")
        other = Activity(type="task", subject="Book a room", status="planned", origin="user")
        session.add_all([task, other])
        session.flush()
        ids = task.id, other.id
    assert cli("activity", "complete", str(ids[0]), "--result", "sent by post").code == 0
    assert cli("activity", "cancel", str(ids[1])).code == 0
    rows = {a["id"]: (a["status"], a["result"]) for a in activities(app)}
    assert rows == {ids[0]: ("completed", "sent by post"), ids[1]: ("cancelled", None)}


def test_a_stage_set_without_a_process_is_recorded(app: App, crm, cli) -> None:
    result = cli("opportunity", "stage", str(crm["lamp"]), "Closed won", "--won-reason", "price")
    assert result.code == 0, result.err
    assert "no process running" in result.out
    opp = opportunity(app, "Hammock lamps")
    assert (opp["stage"], opp["status"], opp["won_reason"], opp["process"]) == ("Closed won", "won", "Price", None)
    assert [(h["stage"], h["result"], h["automatic"]) for h in opp["history"]] == [("Closed won", "Price", False)]


def test_a_reader_that_goes_away_cannot_roll_the_started_process_back(
    app: App, crm, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`crm-sync process start … | head -1`: the output is printed after the commit, so a closed pipe while
    printing does not undo what it reports."""
    from sync_service.cli import sales

    def closed_pipe(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sales.console, "print", closed_pipe)
    result = cli("process", "start", "Corporate sale", "--title", "Skates", "--account", "Globex")
    assert result.code != 0  # the pipe broke while printing
    assert opportunity(app, "Skates")["stage"] == "Interest verification"  # the process started all the same
    assert [a["subject"] for a in activities(app, origin="process")] == ["Call"]
