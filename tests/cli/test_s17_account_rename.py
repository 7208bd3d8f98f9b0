"""`crm-sync account rename OLD_NAME NEW_NAME` (audit 17b F2): the accounts CSV keys accounts by Name, so a
renamed row would make a second account; the command renames the stored one, and the file with the new name
then updates it. Errors are one line on stderr, exit 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HEADER = "Name,Type,Domains,Territory,Owner\n"


def ok(result: Any) -> str:
    assert result.code == 0, (result.out, result.err)
    return str(result.out)


def accounts(cli: Any) -> list[tuple[int, str, list[str]]]:
    return [(a["id"], a["name"], a["domains"]) for a in json.loads(ok(cli("export", "accounts", "--format", "json")))]


def test_rename_then_import_the_renamed_row(cli, tmp_path: Path) -> None:
    ok(cli("init"))
    (tmp_path / "a1.csv").write_text(HEADER + "Globex,prospect,globex.example,,\nInitech,,initech.example,,\n")
    ok(cli("import", "accounts", str(tmp_path / "a1.csv")))

    assert ok(cli("account", "rename", "globex", "  Globex   Corporation ")) == (
        "account 1 renamed: globex → Globex Corporation\n"
    )
    (tmp_path / "a2.csv").write_text(HEADER + "Globex Corporation,customer,globex.example,,\n")
    out = ok(cli("import", "accounts", str(tmp_path / "a2.csv")))
    assert out.startswith("accounts: 1 rows — 0 created, 1 updated, 0 unchanged\n")  # the same account: its Type
    assert accounts(cli) == [(1, "Globex Corporation", ["globex.example"]), (2, "Initech", ["initech.example"])]
    assert ok(cli("account", "rename", "Globex Corporation", "GLOBEX CORPORATION")).endswith(
        "→ GLOBEX CORPORATION\n"
    )  # a change of case only is a rename too


def test_rename_errors_are_one_line(cli, tmp_path: Path) -> None:
    ok(cli("init"))
    (tmp_path / "a.csv").write_text(HEADER + "Globex,,,,\nInitech,,,,\n")
    ok(cli("import", "accounts", str(tmp_path / "a.csv")))
    for args, err in (
        (("Umbrella", "X"), "crm-sync: error: no account named 'Umbrella'\n"),
        (("Globex", "initech"), "crm-sync: error: an account named 'Initech' already exists (id 2)\n"),
        (("Globex", "  "), "crm-sync: error: the new name is empty\n"),
    ):
        result = cli("account", "rename", *args)
        assert (result.code, result.out, result.err) == (1, "", err)
    usage = cli("account", "rename", "Globex")
    assert usage.code == 2
    assert [name for _, name, _ in accounts(cli)] == ["Globex", "Initech"]


def test_help_says_why_the_command_exists(cli) -> None:
    out = ok(cli("account", "rename", "--help"))
    assert "OLD_NAME" in out and "NEW_NAME" in out and "second account" in out
    assert "rename" in ok(cli("account", "--help"))
