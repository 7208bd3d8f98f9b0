"""`crm-sync never-log add|remove|list` (SPEC §3.1): the list a person keeps, and what matching does with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.builders import REP, maildir, message

ACCOUNTS = "Name,Type,Domains,Territory,Owner\nACME,customer,acme.example,West,{rep}\n"


def _activities(cli: Any) -> list[str]:
    result = cli("export", "activities", "--format", "json")
    assert result.code == 0, result.err
    return sorted(a["subject"] for a in json.loads(result.out))


def test_entries_are_checked_normalised_and_listed(cli: Any) -> None:
    assert cli("init").code == 0
    assert cli("never-log", "list").out.startswith("the never-log list is empty")
    added = cli("never-log", "add", "CEO@Acme.Example", "hr.acme.example", "hr.acme.example")
    assert (added.code, added.out.strip()) == (0, "added 2 never-log entries")
    assert cli("never-log", "add", "ceo@acme.example").out.strip() == "added 0 never-log entries"
    assert cli("never-log", "list").out.split() == ["ceo@acme.example", "hr.acme.example"]
    for bad in ("not valid", "@acme.example", "acme", "ceo@acme"):
        result = cli("never-log", "add", "ok.example", bad)
        assert result.code == 1 and result.err.count("\n") == 1 and repr(bad) in result.err, bad
    assert "ok.example" not in cli("never-log", "list").out  # a bad value anywhere adds nothing
    missing = cli("never-log", "remove", "ceo@acme.example", "nobody@acme.example")
    assert (missing.code, missing.err) == (1, "crm-sync: error: not on the never-log list: nobody@acme.example\n")
    assert "ceo@acme.example" in cli("never-log", "list").out  # nothing was removed
    assert cli("never-log", "add").code == 2


def test_mail_is_held_back_while_listed_and_logged_once_removed(cli: Any, tmp_path: Path) -> None:
    assert cli("init").code == 0
    (tmp_path / "accounts.csv").write_text(ACCOUNTS.format(rep=REP), encoding="utf-8")
    assert cli("import", "accounts", str(tmp_path / "accounts.csv")).code == 0
    box = maildir(
        tmp_path / "mail",
        [
            message("n1@acme.example", "ceo@acme.example", [REP], "Board matters"),
            message("n2@acme.example", "anna@hr.acme.example", [REP], "Salary review"),
            message("n3@acme.example", "wile@acme.example", [REP], "Specs"),
        ],
    )
    assert cli("never-log", "add", "ceo@acme.example", "hr.acme.example").code == 0
    assert cli("mailbox", "add", "alice", "--owner", REP, "--source", f"maildir://{box}").code == 0
    assert cli("sync", "--once").code == 0
    assert _activities(cli) == ["Specs"]
    contacts = json.loads(cli("export", "contacts", "--format", "json").out)
    assert [c["emails"] for c in contacts] == [["wile@acme.example"]]  # no contact made from a listed address

    removed = cli("never-log", "remove", "hr.acme.example")
    assert removed.code == 0 and "1 newly logged" in removed.out
    assert _activities(cli) == ["Salary review", "Specs"]
    assert cli("sync", "--once").code == 0
    assert _activities(cli) == ["Salary review", "Specs"]  # still listed: ceo@; nothing doubled
